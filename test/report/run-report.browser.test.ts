import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { reportInput } from "../../src/report/run-input.js";
import { renderRunReport } from "../../src/report/run-report.js";
import { loadRuns } from "../../src/store/run-data.js";
import { withChromiumPage } from "../helpers/browser.js";
import { makeRlRun, makeSftRun } from "./run-fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "klear-run-report-browser-"));
after(() => rmSync(dir, { recursive: true, force: true }));
/** Screenshots kept for CI (KLEAR_ARTIFACTS overrides; the folder is git-ignored). */
const ARTIFACTS = resolve(process.env.KLEAR_ARTIFACTS ?? "test-artifacts");

test("klear report opens offline in Chromium: every chart drawn with data, runs overlaid, no errors", async (t) => {
  const exp = join(dir, "exp");
  makeRlRun(join(exp, "gppo", "seed-0"), { steps: 12, seed: 0 });
  makeRlRun(join(exp, "clip-higher", "seed-0"), { steps: 12, seed: 1 });
  makeSftRun(join(dir, "sft"), 10);
  const file = join(dir, "report.html");
  writeFileSync(file, renderRunReport(reportInput(loadRuns([exp, join(dir, "sft")]))));
  await withChromiumPage(t, async ({ page, errors, requests }) => {
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector("body[data-charts-ready='1']", { timeout: 20_000 });
    assert.deepEqual(errors, []);
    assert.deepEqual(requests, [], "the report loads nothing from the network");
    assert.equal(await page.locator("script").count(), 3, "text from runs never becomes a script");
    const charts = (await page.evaluate(`[...document.querySelectorAll(".chart")].map((el) => {
        const canvas = el.querySelector("canvas");
        if (!canvas) return { id: el.id, painted: 0, points: 0 };
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
        return { id: el.id, painted, points: Number(el.getAttribute("data-points")) };
      })`)) as { id: string; painted: number; points: number }[];
    assert.ok(charts.length >= 15, `${charts.length} charts`);
    for (const c of charts)
      assert.ok(c.points > 0 && c.painted > 300, `${c.id}: ${c.points} points, ${c.painted} px`);
    const legend = await page.locator("#chart-1 .u-legend").innerText();
    assert.match(legend, /exp\/gppo\/seed-0/);
    assert.match(legend, /exp\/clip-higher\/seed-0/);
    assert.equal(await page.locator("table.summary tbody tr").count(), 3);
    assert.equal(await page.locator("table.samples tbody tr").count(), 6);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "run-report.png"), fullPage: true });
  });
});

test("an experiment's report (klear experiment losses --preset ci) opens offline with every chart drawn", async (t) => {
  const { main } = await import("../../src/cli/main.js");
  const out = join(dir, "experiment");
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(
      await main(["experiment", "losses", "--preset", "ci", "--seeds", "1", "--out", out, "--quiet"]),
      0,
    );
  } finally {
    console.log = log;
  }
  await withChromiumPage(t, async ({ page, errors, requests }) => {
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(pathToFileURL(join(out, "report.html")).href);
    await page.waitForSelector("body[data-charts-ready='1']", { timeout: 20_000 });
    assert.deepEqual(errors, []);
    assert.deepEqual(requests, []);
    const points = (await page.evaluate(
      `[...document.querySelectorAll(".chart")].map((el) => Number(el.getAttribute("data-points")))`,
    )) as number[];
    assert.ok(points.length >= 8 && points.every((p) => p > 0), JSON.stringify(points));
    assert.equal(await page.locator("table.extra tbody tr").count(), 3, "one summary row per loss");
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "experiment-report.png"), fullPage: true });
  });
});
