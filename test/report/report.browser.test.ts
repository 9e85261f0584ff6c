import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { BENCHMARKS, computeBenchResult, type EvalResults } from "../../src/eval/index.js";
import { renderEvalReport } from "../../src/report/index.js";
import { withChromiumPage } from "../helpers/browser.js";

const dir = mkdtempSync(join(tmpdir(), "klear-report-browser-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Two benchmarks' worth of stored samples, enough to fill every chart. */
function sampleResults(): EvalResults {
  const bench = (name: "aime24" | "livecodebench_v5", problems: number, n: number) => {
    const spec = BENCHMARKS[name];
    const ps = Array.from({ length: problems }, (_, i) => ({
      id: `${name}-${i}`,
      kind: spec.kind,
      question: `Q${i} <script>alert(1)</script>`,
      answer: spec.kind === "math" ? String(i) : undefined,
      difficulty: ["easy", "medium", "hard"][i % 3],
    }));
    const samples = [];
    const verdicts = [];
    for (const p of ps) {
      for (let s = 0; s < n; s++) {
        const correct = (s * 7 + p.id.length * 3 + Number(p.id.split("-").pop())) % 5 < 2;
        samples.push({
          bench: name,
          problemId: p.id,
          sampleIdx: s,
          response: "x".repeat(100 + s * 37),
          finishReason: s % 9 === 0 ? "length" : "stop",
          completionTokens: 500 + ((s * 997) % 4000),
          latencyMs: 1,
          attempts: 1,
        });
        verdicts.push({
          bench: name,
          problemId: p.id,
          sampleIdx: s,
          score: correct ? 1 : 0,
          correct,
          extracted: correct ? (p.answer ?? null) : `w${s % 3}`,
          reason: "",
        });
      }
    }
    return computeBenchResult(spec, ps, ["test"], samples, verdicts, { n, bootstrap: 200 });
  };
  return {
    format: "klear-eval/1",
    model: "test-model </script>",
    sampling: { temperature: 0.6, topP: 0.95, maxTokens: 32768 },
    promptTemplate: "r1",
    seed: 0,
    benchmarks: [bench("aime24", 30, 16), bench("livecodebench_v5", 12, 8)],
  };
}

test("report.html opens offline in headless Chromium: charts drawn, no console errors", async (t) => {
  await withChromiumPage(t, async ({ page, errors, requests }) => {
    const file = join(dir, "report.html");
    writeFileSync(file, renderEvalReport(sampleResults()));
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector("body[data-charts-ready='1']", { timeout: 20_000 });
    assert.deepEqual(errors, []);
    assert.deepEqual(requests, [], "the report loads nothing from the network");
    // Embedded text is escaped: the injected <script> never ran or became an element.
    assert.equal(await page.locator("script").count(), 3);

    // uPlot charts: score per benchmark, pass@k curves, one length histogram per benchmark.
    // Browser-side code as strings: the project compiles without DOM types.
    const charts = (await page.evaluate(`[...document.querySelectorAll(".chart")].map((el) => {
        const canvas = el.querySelector("canvas");
        if (!canvas) return { id: el.id, painted: 0, w: 0 };
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
        return { id: el.id, painted, w: canvas.width };
      })`)) as { id: string; painted: number; w: number }[];
    assert.deepEqual(
      charts.map((c) => c.id),
      ["chart-scores", "chart-passk", "chart-len-0", "chart-len-1"],
    );
    for (const c of charts) assert.ok(c.w > 0 && c.painted > 500, `${c.id} drawn (${c.painted} px)`);
    // pass@k legend lists both benchmarks
    const legend = await page.locator("#chart-passk .u-legend").innerText();
    assert.match(legend, /aime24/);
    assert.match(legend, /livecodebench_v5/);

    // Per-problem grids: one row per problem, one cell per sample, green and red both present.
    const grids = (await page.evaluate(`[0, 1].map((i) => {
        const c = document.getElementById("grid-" + i);
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let green = 0;
        let red = 0;
        for (let p = 0; p < d.length; p += 4) {
          if (d[p + 1] > 140 && d[p] < 80) green++;
          if (d[p] > 180 && d[p + 1] < 80) red++;
        }
        return { w: c.width, h: c.height, green, red };
      })`)) as { w: number; h: number; green: number; red: number }[];
    for (const g of grids) assert.ok(g.w > 0 && g.h > 0 && g.green > 0 && g.red > 0, JSON.stringify(g));
    // Hovering a grid cell names the problem and sample.
    await page.locator("#grid-0").hover({ position: { x: 2, y: 2 } });
    assert.match(await page.locator("#grid-tip-0").innerText(), /aime24-0 — sample 0/);
    // Summary and breakdown tables.
    assert.equal(await page.locator("table.summary tbody tr").count(), 2);
    assert.ok((await page.locator("h3", { hasText: "aime24 by difficulty" }).count()) === 1);
  });
});
