import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { main } from "../../src/cli/main.js";
import { reportInput } from "../../src/report/run-input.js";
import { chartSpecs, renderRunReport } from "../../src/report/run-report.js";
import { loadRuns } from "../../src/store/run-data.js";
import { makeRlRun, makeSftRun } from "./run-fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "klear-run-report-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("runs nested in a folder are found; a torn metrics line reads as a run in progress", () => {
  const exp = join(dir, "exp");
  mkdirSync(exp);
  makeRlRun(join(exp, "gppo", "seed-0"), { steps: 5, seed: 0 });
  makeRlRun(join(exp, "cispo", "seed-0"), { steps: 3, seed: 1, finished: false });
  makeSftRun(join(dir, "sft"), 6);
  const runs = loadRuns([exp, join(dir, "sft")]);
  assert.deepEqual(
    runs.map((r) => [r.name, r.kind, r.inProgress]),
    [
      ["exp/cispo/seed-0", "rl", true],
      ["exp/gppo/seed-0", "rl", false],
      ["sft", "sft", true],
    ],
  );
  assert.equal(runs[2].metrics.length, 9, "the torn line is skipped");
  assert.equal(runs[1].samples.length, 3);
  assert.equal(runs[1].samples[0].meta?.reason, "equal");
});

test("panels group related metrics and overlay runs on one x axis", () => {
  const runs = loadRuns([join(dir, "exp")]);
  const specs = chartSpecs(reportInput(runs).runs);
  const titles = specs.map((s) => s.title);
  for (const t of [
    "reward",
    "accuracy",
    "entropy",
    "clip fractions (high / low / dual)",
    "bounded-gradient fraction",
    "KL estimates",
    "response length",
    "truncation",
    "kept / dropped groups",
    "grad norm",
    "learning rate",
    "tokens/s",
    "reward calls",
  ]) {
    assert.ok(titles.includes(t), `panel ${t}`);
  }
  const reward = specs.find((s) => s.title === "reward");
  assert.deepEqual(reward?.x, [1, 2, 3, 4, 5]);
  assert.equal(reward?.series.length, 2, "one series per run");
  assert.equal(reward?.series[0].values[4], null, "the shorter run has no value at step 5");
  const clip = specs.find((s) => s.title.startsWith("clip"));
  assert.equal(clip?.series.length, 6, "3 keys × 2 runs");
  const acc = specs.find((s) => s.title === "accuracy");
  assert.ok(acc?.series.some((s) => s.label.endsWith("heldOutAccuracy") && s.values[0] === 0.3));
});

test("the report escapes text from runs and embeds no external resource", () => {
  const html = renderRunReport(reportInput(loadRuns([join(dir, "exp")])));
  assert.ok(!html.includes("<script>alert(1)"));
  assert.ok(!/src="http|href="http/.test(html));
  assert.match(html, /in progress/);
});

test("klear report RUN writes RUN/report.html; an empty folder is a clear error", async () => {
  const code = await main(["report", join(dir, "sft")]);
  assert.equal(code, 0);
  assert.ok(existsSync(join(dir, "sft", "report.html")));
  assert.match(readFileSync(join(dir, "sft", "report.html"), "utf8"), /padding fraction/);
  const empty = join(dir, "empty");
  mkdirSync(empty);
  await assert.rejects(main(["report", empty]), /holds no klear run.*\n?|RUN_NOT_FOUND/);
});

test("grouped runs draw as the per-step mean of their members", async () => {
  const { groupMeans } = await import("../../src/report/run-report.js");
  const run = (name: string, group: string, values: number[]) => ({
    name,
    group,
    kind: "rl",
    inProgress: false,
    config: {},
    samples: [],
    metrics: values.map((v, i) => ({ step: i + 1, accuracy: v })),
  });
  const merged = groupMeans([run("a/1", "a", [0, 1]), run("a/2", "a", [1, 1, 1]), run("b/1", "b", [0.5])]);
  assert.deepEqual(
    merged.map((r) => [r.name, r.metrics]),
    [
      [
        "a (mean of 2)",
        [
          { step: 1, accuracy: 0.5 },
          { step: 2, accuracy: 1 },
          { step: 3, accuracy: 1 },
        ],
      ],
      ["b (mean of 1)", [{ step: 1, accuracy: 0.5 }]],
    ],
  );
});
