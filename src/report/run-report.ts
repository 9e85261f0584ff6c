import { escapeHtml, jsonForScript, loadUplot } from "./html.js";

/**
 * The training-run report behind `klear report RUN [RUN…]`: one self-contained HTML file (uPlot inlined, data
 * embedded) that opens offline. Curves of every logged scalar over steps, grouped into panels, with several
 * runs overlaid on shared axes; eval tables with confidence intervals; sample responses with their rewards
 * and verdicts; each run's resolved config. The input is plain data, so the report knows nothing of where
 * runs are stored.
 */

export interface RunReportSample {
  step: number;
  kind: string;
  problemId: string;
  prompt: string;
  completion: string;
  reward: number | null;
  correct: boolean | null;
  finishReason: string | null;
  numTokens: number | null;
  meta?: Record<string, unknown>;
}

/** One benchmark row of an eval: avg@n with its 95% CI, pass@1 and the largest pass@k / maj@k measured. */
export interface RunReportEvalRow {
  benchmark: string;
  problems: number;
  n: number;
  avg: number;
  ci95: [number | null, number | null];
  passAt1: number | null;
  passAtMax: { k: number; value: number } | null;
  majAtN: number | null;
}

export interface RunReportRun {
  name: string;
  /** Runs of one group (e.g. one loss over several seeds) are drawn as their mean when `groupRuns` is set. */
  group?: string;
  kind: string;
  inProgress: boolean;
  config: unknown;
  metrics: ({ step: number } & Record<string, unknown>)[];
  samples: RunReportSample[];
  eval?: RunReportEvalRow[];
}

/** A table computed across runs (e.g. an experiment's mean ± std per loss). */
export interface RunReportTable {
  title: string;
  columns: string[];
  rows: (string | number)[][];
}

export interface RunReportInput {
  title?: string;
  runs: RunReportRun[];
  tables?: RunReportTable[];
  /** Draw each group's per-step mean instead of every run (an experiment's seeds). */
  groupRuns?: boolean;
}

/** Panels in reading order; a key goes to the first panel that claims it, the rest to "other". */
export const REPORT_PANELS: readonly { title: string; keys?: readonly string[]; match?: RegExp }[] = [
  { title: "loss", keys: ["loss", "heldOutLoss", "pgLoss", "sftLoss", "klLoss"] },
  { title: "reward", keys: ["rewardMean", "trainRewardMean"] },
  { title: "accuracy", keys: ["accuracy", "heldOutAccuracy"], match: /accuracy|avg@|pass@/i },
  { title: "entropy", keys: ["entropy"] },
  { title: "clip fractions (high / low / dual)", keys: ["clipFracHigh", "clipFracLow", "dualClipFrac"] },
  { title: "bounded-gradient fraction", keys: ["boundedGradFrac"] },
  { title: "KL estimates", keys: ["approxKlK1", "approxKlK3", "approxKlK2"], match: /^approxKl/ },
  { title: "importance ratio", keys: ["ratioMean", "ratioMax"] },
  { title: "response length", keys: ["responseLengthMean", "responseLengthMax"] },
  { title: "truncation", keys: ["truncatedFrac", "overlongDropped", "promptsTruncated"], match: /truncat/i },
  {
    title: "kept / dropped groups",
    keys: ["keptGroups", "droppedAllCorrect", "droppedAllWrong", "droppedZeroVariance"],
  },
  { title: "grad norm", keys: ["gradNorm", "gradNormMax"] },
  { title: "learning rate", keys: ["lr"] },
  { title: "tokens/s", match: /tokens?(Per|\/)S(ec(ond)?)?$|^tps$/i },
  { title: "padding fraction", match: /padding/i },
  { title: "sampler vs trainer log-probs", keys: ["logprobDiffMax", "logprobDiffMean"] },
  { title: "reward calls", match: /(verifier|sandbox|scorer)Calls?$/i },
];

interface ChartSpec {
  title: string;
  x: number[];
  series: { label: string; run: number; values: (number | null)[] }[];
}

function panelOf(key: string): string {
  for (const p of REPORT_PANELS) {
    if (p.keys?.includes(key) || p.match?.test(key)) return p.title;
  }
  return "other";
}

/** Per run, per numeric key, the value at each step (a later record at the same step wins). */
function seriesByKey(run: RunReportRun): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const rec of run.metrics) {
    for (const [key, value] of Object.entries(rec)) {
      if (key === "step" || typeof value !== "number" || !Number.isFinite(value)) continue;
      let m = out.get(key);
      if (!m) out.set(key, (m = new Map()));
      m.set(rec.step, value);
    }
  }
  return out;
}

/** Runs of each group merged into one pseudo-run whose value at a step is the mean over the group's runs. */
export function groupMeans(runs: readonly RunReportRun[]): RunReportRun[] {
  const groups = new Map<string, RunReportRun[]>();
  for (const r of runs) {
    const g = r.group ?? r.name;
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(r);
  }
  return [...groups].map(([group, members]) => {
    const sums = new Map<number, Map<string, { sum: number; n: number }>>();
    for (const r of members) {
      for (const [key, byStep] of seriesByKey(r)) {
        for (const [step, v] of byStep) {
          let atStep = sums.get(step);
          if (!atStep) sums.set(step, (atStep = new Map()));
          const acc = atStep.get(key) ?? { sum: 0, n: 0 };
          acc.sum += v;
          acc.n += 1;
          atStep.set(key, acc);
        }
      }
    }
    const metrics = [...sums]
      .sort((a, b) => a[0] - b[0])
      .map(([step, keys]) => ({ step, ...Object.fromEntries([...keys].map(([k, a]) => [k, a.sum / a.n])) }));
    return { ...members[0], name: `${group} (mean of ${members.length})`, metrics };
  });
}

export function chartSpecs(runsIn: readonly RunReportRun[], groupRuns = false): ChartSpec[] {
  const runs = groupRuns ? groupMeans(runsIn) : runsIn;
  const perRun = runs.map(seriesByKey);
  const panels = new Map<string, { key: string; run: number }[]>();
  perRun.forEach((keys, run) => {
    for (const key of keys.keys()) {
      const title = panelOf(key);
      let list = panels.get(title);
      if (!list) panels.set(title, (list = []));
      list.push({ key, run });
    }
  });
  const order = [...REPORT_PANELS.map((p) => p.title), "other"];
  const specs: ChartSpec[] = [];
  for (const title of order) {
    const members = panels.get(title);
    if (!members) continue;
    if (title === "other") {
      // One chart per leftover key, so unrelated scales never share an axis.
      const keys = [...new Set(members.map((m) => m.key))].sort();
      for (const key of keys)
        specs.push(
          buildSpec(
            key,
            members.filter((m) => m.key === key),
            runs,
            perRun,
          ),
        );
    } else {
      specs.push(buildSpec(title, members, runs, perRun));
    }
  }
  return specs;
}

function buildSpec(
  title: string,
  members: { key: string; run: number }[],
  runs: readonly RunReportRun[],
  perRun: Map<string, Map<number, number>>[],
): ChartSpec {
  const steps = new Set<number>();
  for (const m of members) for (const s of perRun[m.run].get(m.key)?.keys() ?? []) steps.add(s);
  const x = [...steps].sort((a, b) => a - b);
  const multiRun = new Set(members.map((m) => m.run)).size > 1 || runs.length > 1;
  const multiKey = new Set(members.map((m) => m.key)).size > 1;
  const series = members.map((m) => {
    const values = perRun[m.run].get(m.key) ?? new Map<number, number>();
    const label = [multiRun ? runs[m.run].name : "", multiKey || !multiRun ? m.key : ""]
      .filter(Boolean)
      .join(" · ");
    return { label, run: m.run, values: x.map((s) => values.get(s) ?? null) };
  });
  return { title, x, series };
}

const fmt = (v: unknown): string => {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—";
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 0.01 ? v.toFixed(4) : v.toExponential(2);
};
const pct = (v: number | null | undefined) =>
  v === null || v === undefined || !Number.isFinite(v) ? "—" : `${(100 * v).toFixed(1)}%`;

function lastValue(run: RunReportRun, key: string): number | undefined {
  for (let i = run.metrics.length - 1; i >= 0; i--) {
    const v = run.metrics[i][key];
    if (typeof v === "number") return v;
  }
  return undefined;
}

function summaryTable(runs: readonly RunReportRun[]): string {
  const keys = ["loss", "heldOutLoss", "rewardMean", "accuracy", "heldOutAccuracy", "entropy"];
  const rows = runs
    .map((r) => {
      const steps = r.metrics.reduce((m, x) => Math.max(m, x.step), 0);
      const cells = keys.map((k) => `<td>${fmt(lastValue(r, k))}</td>`).join("");
      const status = r.inProgress ? `<span class="live">in progress</span>` : "finished";
      return `<tr><td>${escapeHtml(r.name)}</td><td>${escapeHtml(r.kind)}</td><td>${status}</td><td>${steps}</td>${cells}</tr>`;
    })
    .join("");
  return `<table class="summary"><thead><tr><th>run</th><th>kind</th><th>status</th><th>last step</th>${keys
    .map((k) => `<th>${k}</th>`)
    .join("")}</tr></thead><tbody>${rows}</tbody></table>`;
}

function evalTables(runs: readonly RunReportRun[]): string {
  const withEval = runs.filter((r) => r.eval && r.eval.length > 0);
  if (withEval.length === 0) return "";
  const body = withEval
    .map((r) => {
      const rows = (r.eval ?? [])
        .map(
          (e) =>
            `<tr><td>${escapeHtml(e.benchmark)}</td><td>${e.problems}</td><td>${e.n}</td><td><b>${pct(e.avg)}</b></td><td>${pct(e.ci95[0])}–${pct(e.ci95[1])}</td><td>${pct(e.passAt1)}</td><td>${e.passAtMax ? `${pct(e.passAtMax.value)} (k=${e.passAtMax.k})` : "—"}</td><td>${pct(e.majAtN)}</td></tr>`,
        )
        .join("");
      return `<h3>${escapeHtml(r.name)}</h3><table class="eval"><thead><tr><th>benchmark</th><th>problems</th><th>n</th><th>avg@n</th><th>95% CI</th><th>pass@1</th><th>pass@max</th><th>maj@n</th></tr></thead><tbody>${rows}</tbody></table>`;
    })
    .join("");
  return `<h2>Evaluation</h2>${body}`;
}

function extraTables(tables: readonly RunReportTable[]): string {
  return tables
    .map(
      (t) =>
        `<h2>${escapeHtml(t.title)}</h2><table class="extra"><thead><tr>${t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr></thead><tbody>${t.rows
          .map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(String(c))}</td>`).join("")}</tr>`)
          .join("")}</tbody></table>`,
    )
    .join("");
}

function verdictOf(s: RunReportSample): string {
  const m = s.meta ?? {};
  const parts = [m.verdict, m.reason, m.extracted]
    .filter((v) => v !== undefined && v !== null && v !== "")
    .map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  const correct = s.correct === null ? "" : s.correct ? "✓" : "✗";
  return [correct, ...parts].filter(Boolean).join(" · ");
}

function sampleTables(runs: readonly RunReportRun[]): string {
  const withSamples = runs.filter((r) => r.samples.length > 0);
  if (withSamples.length === 0) return "";
  const body = withSamples
    .map((r) => {
      const rows = r.samples
        .map(
          (s) =>
            `<tr class="${s.correct === true ? "ok" : s.correct === false ? "bad" : ""}"><td>${s.step}</td><td>${escapeHtml(s.kind)}</td><td>${escapeHtml(s.problemId)}</td><td>${fmt(s.reward)}</td><td>${escapeHtml(verdictOf(s))}</td><td>${escapeHtml(s.finishReason ?? "")}</td><td>${fmt(s.numTokens)}</td><td><details><summary>show</summary><pre class="prompt">${escapeHtml(s.prompt)}</pre><pre>${escapeHtml(s.completion)}</pre></details></td></tr>`,
        )
        .join("");
      return `<h3>${escapeHtml(r.name)}</h3><table class="samples"><thead><tr><th>step</th><th>kind</th><th>problem</th><th>reward</th><th>verdict</th><th>finish</th><th>tokens</th><th>text</th></tr></thead><tbody>${rows}</tbody></table>`;
    })
    .join("");
  return `<h2>Sample responses</h2>${body}`;
}

function configBlocks(runs: readonly RunReportRun[]): string {
  return `<h2>Resolved configs</h2>${runs
    .map(
      (r) =>
        `<details><summary>${escapeHtml(r.name)}</summary><pre>${escapeHtml(JSON.stringify(r.config, null, 2) ?? "null")}</pre></details>`,
    )
    .join("")}`;
}

/** Browser-side drawing; plain ES2017. Each chart records how many points it drew in data-points. */
const CLIENT_SCRIPT = `
(function () {
  var D = JSON.parse(document.getElementById("klear-run-data").textContent);
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  var width = function (el) { return Math.max(300, el.clientWidth || 460); };
  D.charts.forEach(function (c, i) {
    var el = document.getElementById("chart-" + i);
    var points = 0;
    c.series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null) points++; }); });
    var series = [{ label: "step" }];
    c.series.forEach(function (s, j) {
      var color = COLORS[(D.runs > 1 ? s.run : j) % COLORS.length];
      var dash = D.runs > 1 && c.series.filter(function (t) { return t.run === s.run; }).indexOf(s) > 0 ? [6, 4] : undefined;
      series.push({ label: s.label, stroke: color, width: 2, dash: dash, spanGaps: true, points: { show: c.x.length < 40, size: 5 } });
    });
    var tick = function (u, splits) { return splits.map(function (v) { return v !== 0 && Math.abs(v) < 0.01 ? v.toExponential(1) : String(+v.toPrecision(4)); }); };
    new uPlot({ width: width(el), height: 220, title: c.title, scales: { x: { time: false } }, axes: [{}, { values: tick, size: 60 }], series: series },
      [c.x].concat(c.series.map(function (s) { return s.values; })), el);
    el.setAttribute("data-points", String(points));
  });
  document.body.setAttribute("data-charts-ready", "1");
})();
`;

export function renderRunReport(input: RunReportInput): string {
  const { js, css } = loadUplot();
  const charts = chartSpecs(input.runs, input.groupRuns === true);
  const title = input.title ?? `klear report: ${input.runs.map((r) => r.name).join(", ")}`;
  const live = input.runs.some((r) => r.inProgress)
    ? `<p class="live">Some runs are still in progress (or stopped before their end): this shows what existed when the report was written.</p>`
    : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>${css}
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:8px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
td:first-child,th:first-child{text-align:left}.chart{margin:12px 0}pre{white-space:pre-wrap;max-width:900px;text-align:left;margin:4px 0}
pre.prompt{color:#555}tr.ok td:nth-child(5){color:#2ca02c}tr.bad td:nth-child(5){color:#d62728}.live{color:#b35c00}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
${live}
${summaryTable(input.runs)}
${extraTables(input.tables ?? [])}
<h2>Curves</h2>
${charts.length === 0 ? "<p>No metrics logged yet.</p>" : `<div class="charts">${charts.map((_, i) => `<div class="chart" id="chart-${i}"></div>`).join("\n")}</div>`}
${evalTables(input.runs)}
${sampleTables(input.runs)}
${configBlocks(input.runs)}
<script id="klear-run-data" type="application/json">${jsonForScript({ charts, runs: input.groupRuns ? groupMeans(input.runs).length : input.runs.length })}</script>
<script>${js}</script>
<script>${CLIENT_SCRIPT}</script>
</body></html>
`;
}
