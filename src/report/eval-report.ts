import { readFileSync } from "node:fs";
import { KlearError } from "../util/errors.js";
import { escapeHtml, jsonForScript, loadUplot } from "./html.js";

/**
 * The eval run's static report: one self-contained HTML file (uPlot and its CSS inlined, data embedded
 * as JSON) that opens offline from disk. Charts: score per benchmark with 95% CIs, pass@k curves,
 * response-length histograms, and a per-problem grid of sample outcomes.
 */

/** An estimate with its 95% interval, as results.json stores it. */
interface ReportEstimate {
  value: number;
  ci95: readonly [number | null, number | null];
}

/**
 * The parts of an eval results.json (`klear-eval/1`) the report reads. report/ sits below eval/, so the
 * shape is stated here and eval's `EvalResults` satisfies it structurally (eval imports report, never
 * the other way).
 */
export interface EvalReportInput {
  format: "klear-eval/1";
  model: string;
  sampling: { temperature: number; topP: number; topK?: number; maxTokens: number };
  promptTemplate: string;
  seed: number;
  benchmarks: readonly {
    name: string;
    description: string;
    n: number;
    problems: number;
    missingSamples: number;
    metrics: Record<string, ReportEstimate>;
    passAtK: readonly { k: number; estimate: ReportEstimate }[];
    majAtK: readonly { k: number; estimate: ReportEstimate }[];
    breakdown: Record<
      "difficulty" | "subject",
      readonly { group: string; problems: number; avg: ReportEstimate }[]
    >;
    lengths: {
      unit: string;
      mean: number;
      truncated: number;
      histogram: { edges: readonly number[]; counts: readonly number[] };
    };
    perProblem: readonly {
      id: string;
      difficulty?: string;
      gold?: string;
      n: number;
      correct: number;
      avg: number;
      majAnswer: string | null;
      meanLength: number;
      outcomes: string;
    }[];
  }[];
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "—" : (100 * x).toFixed(1);

function summaryTable(results: EvalReportInput): string {
  const rows = results.benchmarks
    .map((b) => {
      const avg = b.metrics[`avg@${b.n}`];
      const p1 = b.passAtK[0]?.estimate.value;
      const last = b.passAtK[b.passAtK.length - 1];
      const maj = b.majAtK[b.majAtK.length - 1];
      return `<tr><td>${escapeHtml(b.name)}</td><td>${b.problems}</td><td>${b.n}</td><td><b>${pct(avg.value)}</b></td><td>${pct(avg.ci95[0])}–${pct(avg.ci95[1])}</td><td>${pct(p1)}</td><td>${last ? `${pct(last.estimate.value)} (k=${last.k})` : "—"}</td><td>${maj ? pct(maj.estimate.value) : "—"}</td><td>${Number.isFinite(b.lengths.mean) ? Math.round(b.lengths.mean) : "—"} ${b.lengths.unit}</td><td>${pct(b.lengths.truncated)}</td><td>${b.missingSamples}</td></tr>`;
    })
    .join("\n");
  return `<table class="summary"><thead><tr><th>benchmark</th><th>problems</th><th>n</th><th>avg@n</th><th>95% CI</th><th>pass@1</th><th>pass@max</th><th>maj@n</th><th>mean length</th><th>truncated %</th><th>missing</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function breakdownTables(results: EvalReportInput): string {
  let html = "";
  for (const b of results.benchmarks) {
    for (const key of ["difficulty", "subject"] as const) {
      const groups = b.breakdown[key];
      if (groups.length < 2) continue;
      html += `<h3>${escapeHtml(b.name)} by ${key}</h3><table><thead><tr><th>${key}</th><th>problems</th><th>avg@${b.n}</th><th>95% CI</th></tr></thead><tbody>${groups
        .map(
          (g) =>
            `<tr><td>${escapeHtml(g.group)}</td><td>${g.problems}</td><td>${pct(g.avg.value)}</td><td>${pct(g.avg.ci95[0])}–${pct(g.avg.ci95[1])}</td></tr>`,
        )
        .join("")}</tbody></table>`;
    }
  }
  return html;
}

function problemTables(results: EvalReportInput): string {
  return results.benchmarks
    .map((b) => {
      const rows = b.perProblem
        .map(
          (p) =>
            `<tr><td>${escapeHtml(p.id)}</td><td>${escapeHtml(p.difficulty ?? "")}</td><td>${escapeHtml(p.gold ?? "")}</td><td>${p.correct}/${p.n}</td><td>${pct(p.avg)}</td><td>${escapeHtml(p.majAnswer ?? "")}</td><td>${Number.isFinite(p.meanLength) ? Math.round(p.meanLength) : "—"}</td></tr>`,
        )
        .join("");
      return `<details><summary>${escapeHtml(b.name)}: ${b.perProblem.length} problems</summary><table><thead><tr><th>id</th><th>difficulty</th><th>gold</th><th>correct</th><th>avg %</th><th>majority answer</th><th>mean length</th></tr></thead><tbody>${rows}</tbody></table></details>`;
    })
    .join("\n");
}

/** Browser-side drawing; kept as plain ES2017 so any Chromium/Firefox runs it. */
const CLIENT_SCRIPT = `
(function () {
  var R = JSON.parse(document.getElementById("klear-data").textContent);
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];
  var width = function (el) { return Math.max(320, Math.min(900, el.clientWidth || 800)); };
  var bars = uPlot.paths.bars({ size: [0.6, 80] });
  var pct = function (u, v) { return v == null ? "" : (100 * v).toFixed(1) + "%"; };

  // Score per benchmark: bars of avg@n, whiskers for the 95% CI drawn in a hook.
  (function () {
    var el = document.getElementById("chart-scores");
    var xs = R.benchmarks.map(function (_, i) { return i; });
    var ys = R.benchmarks.map(function (b) { return b.metrics["avg@" + b.n].value; });
    new uPlot({
      width: width(el), height: 300, title: "avg@n per benchmark (95% CI)",
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] }, y: { range: [0, 1] } },
      axes: [
        { values: function (u, splits) { return splits.map(function (s) { return Number.isInteger(s) && R.benchmarks[s] ? R.benchmarks[s].name : ""; }); }, splits: function () { return xs; } },
        { values: function (u, splits) { return splits.map(function (s) { return (100 * s).toFixed(0) + "%"; }); } },
      ],
      series: [{}, { label: "avg@n", fill: "#1f77b4aa", stroke: "#1f77b4", paths: bars, points: { show: false }, value: pct }],
      hooks: { draw: [function (u) {
        var ctx = u.ctx; ctx.save(); ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
        R.benchmarks.forEach(function (b, i) {
          var ci = b.metrics["avg@" + b.n].ci95; if (ci[0] == null) return;
          var x = u.valToPos(i, "x", true), y0 = u.valToPos(ci[0], "y", true), y1 = u.valToPos(ci[1], "y", true);
          ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y1); ctx.moveTo(x - 6, y0); ctx.lineTo(x + 6, y0); ctx.moveTo(x - 6, y1); ctx.lineTo(x + 6, y1); ctx.stroke();
        });
        ctx.restore();
      }] },
    }, [xs, ys], el);
  })();

  // pass@k curves: one series per benchmark over the union of k values (log2 x axis).
  (function () {
    var el = document.getElementById("chart-passk");
    var kset = {};
    R.benchmarks.forEach(function (b) { b.passAtK.forEach(function (p) { kset[p.k] = 1; }); });
    var ks = Object.keys(kset).map(Number).sort(function (a, b) { return a - b; });
    if (!ks.length) { el.textContent = "no pass@k values"; return; }
    var data = [ks];
    var series = [{ label: "k" }];
    R.benchmarks.forEach(function (b, i) {
      var m = {}; b.passAtK.forEach(function (p) { m[p.k] = p.estimate.value; });
      data.push(ks.map(function (k) { return k in m ? m[k] : null; }));
      series.push({ label: b.name, stroke: COLORS[i % COLORS.length], width: 2, value: pct, points: { show: true, size: 6 } });
    });
    new uPlot({
      width: width(el), height: 300, title: "pass@k",
      scales: { x: { time: false, distr: ks.length > 1 ? 3 : 1, log: 2 }, y: { range: [0, 1] } },
      axes: [{}, { values: function (u, splits) { return splits.map(function (s) { return (100 * s).toFixed(0) + "%"; }); } }],
      series: series,
    }, data, el);
  })();

  // Response-length histograms, one per benchmark.
  R.benchmarks.forEach(function (b, i) {
    var el = document.getElementById("chart-len-" + i);
    var h = b.lengths.histogram;
    if (!h.counts.length) { el.textContent = "no samples"; return; }
    var mids = h.counts.map(function (_, j) { return (h.edges[j] + h.edges[j + 1]) / 2; });
    new uPlot({
      width: width(el), height: 220, title: b.name + ": response length (" + b.lengths.unit + ")",
      scales: { x: { time: false } },
      series: [{}, { label: "samples", fill: COLORS[i % COLORS.length] + "99", stroke: COLORS[i % COLORS.length], paths: bars, points: { show: false } }],
    }, [mids, h.counts], el);
  });

  // Per-problem grid: one row per problem, one cell per sample (green correct, red wrong).
  R.benchmarks.forEach(function (b, i) {
    var canvas = document.getElementById("grid-" + i);
    var rows = b.perProblem.length, cols = 0;
    b.perProblem.forEach(function (p) { cols = Math.max(cols, p.outcomes.length); });
    var cell = Math.max(3, Math.min(14, Math.floor(860 / Math.max(1, cols))));
    var rowH = Math.max(3, Math.min(14, cell));
    canvas.width = Math.max(1, cols * cell); canvas.height = Math.max(1, rows * rowH);
    var ctx = canvas.getContext("2d");
    b.perProblem.forEach(function (p, r) {
      for (var c = 0; c < p.outcomes.length; c++) {
        ctx.fillStyle = p.outcomes[c] === "1" ? "#2ca02c" : "#d62728";
        ctx.fillRect(c * cell, r * rowH, cell - (cell > 4 ? 1 : 0), rowH - (rowH > 4 ? 1 : 0));
      }
    });
    var tip = document.getElementById("grid-tip-" + i);
    canvas.addEventListener("mousemove", function (e) {
      var rect = canvas.getBoundingClientRect();
      var r = Math.floor((e.clientY - rect.top) / rowH), c = Math.floor((e.clientX - rect.left) / cell);
      var p = b.perProblem[r];
      tip.textContent = p ? p.id + " — sample " + c + ": " + (p.outcomes[c] === "1" ? "correct" : p.outcomes[c] === "0" ? "wrong" : "none") + " · " + p.correct + "/" + p.n + (p.gold ? " · gold " + p.gold : "") : "";
    });
  });
  document.body.setAttribute("data-charts-ready", "1");
})();
`;

export function renderEvalReport(results: EvalReportInput): string {
  const { js, css } = loadUplot();
  const s = results.sampling;
  const perBench = results.benchmarks
    .map(
      (b, i) => `<section><h3>${escapeHtml(b.name)} <small>${escapeHtml(b.description)}</small></h3>
<div class="chart" id="chart-len-${i}"></div>
<p>Per-problem outcomes (rows: problems in benchmark order; columns: samples). <span class="tip" id="grid-tip-${i}"></span></p>
<div class="grid"><canvas id="grid-${i}"></canvas></div></section>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>klear eval: ${escapeHtml(results.model)}</title>
<style>${css}
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.chart{margin:12px 0}.grid{overflow:auto;max-height:600px}
.tip{color:#555;font-family:monospace}small{color:#777;font-weight:normal}</style></head>
<body>
<h1>klear eval</h1>
<p>model <b>${escapeHtml(results.model)}</b> · temperature ${s.temperature} · top-p ${s.topP}${s.topK ? ` · top-k ${s.topK}` : ""} · max tokens ${s.maxTokens} · prompt ${escapeHtml(results.promptTemplate)} · seed ${results.seed}</p>
${summaryTable(results)}
<div class="chart" id="chart-scores"></div>
<div class="chart" id="chart-passk"></div>
${breakdownTables(results)}
<h2>Per benchmark</h2>
${perBench}
<h2>Per-problem tables</h2>
${problemTables(results)}
<script id="klear-data" type="application/json">${jsonForScript(results)}</script>
<script>${js}</script>
<script>${CLIENT_SCRIPT}</script>
</body></html>
`;
}

/** Reads an eval run's results.json (for `klear report` and other tools), checking its format. */
export function readEvalResults(path: string): EvalReportInput {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new KlearError(
      "RESULTS_UNREADABLE",
      `cannot read ${path}: ${(e as Error).message}`,
      "point at a klear eval results.json",
    );
  }
  if ((value as { format?: string })?.format !== "klear-eval/1") {
    throw new KlearError(
      "RESULTS_FORMAT",
      `${path} is not a klear eval results file (format "${(value as { format?: string })?.format}")`,
      "use the results.json that `klear eval` wrote",
    );
  }
  return value as EvalReportInput;
}
