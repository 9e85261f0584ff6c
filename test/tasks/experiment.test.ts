import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, test } from "node:test";
import { readMetrics, runPaths } from "../../src/store/run.js";
import {
  type ExperimentResult,
  type ExperimentRunOutcome,
  experimentResultLine,
  runExperiment,
  summarise,
} from "../../src/tasks/experiment.js";
import { parseExperimentConfig, resolveExperimentConfig } from "../../src/tasks/experiment-config.js";
import { recipeExperiment } from "../../src/tasks/experiment-recipe.js";
import { recipeRlConfig, resolveRecipeDemoConfig } from "../../src/tasks/recipe-demo-config.js";

const root = mkdtempSync(join(tmpdir(), "klear-experiment-unit-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("the experiment adapter: RL config with the loss and seed swapped, the demo's eval sampling", () => {
  const config = resolveRecipeDemoConfig({ preset: "smoke" });
  const e = recipeExperiment(config);
  const c = e.rlConfig("/ckpt", "cispo", {}, 7);
  assert.equal(c.loss.name, "cispo");
  assert.equal(c.seed, 7);
  assert.equal(c.init, "/ckpt");
  assert.equal(c.eval.temperature, config.eval.temperature);
  assert.deepEqual(recipeRlConfig(config, "/ckpt").task.testSize, config.data.heldOutSize);
});

test("presets carry the demo's own: tiny-cpu is klear demo's settings, ci and smoke are 3 losses × 2 seeds", () => {
  const tiny = resolveExperimentConfig({});
  assert.deepEqual(tiny.demo, resolveRecipeDemoConfig({}));
  assert.deepEqual(
    [tiny.losses, tiny.seeds],
    [
      ["gppo", "clip-higher", "cispo"],
      [1, 2, 3],
    ],
  );
  const ci = resolveExperimentConfig({ preset: "ci" });
  assert.deepEqual(ci.seeds, [1, 2]);
  assert.equal(ci.demo.sft.steps, resolveRecipeDemoConfig({ preset: "ci" }).sft.steps);
  assert.throws(
    () => parseExperimentConfig({ losses: ["gppo", "nope"] }, "test"),
    /"nope".*not a registered/,
  );
});

test("summarise: mean ± sample std per loss and per part; the RESULT line compares GPPO with the best other", () => {
  const run = (loss: string, acc: number, math: number): ExperimentRunOutcome => ({
    loss,
    seed: 1,
    dir: "",
    steps: 1,
    accuracyBefore: 0.1,
    accuracyAfter: acc,
    partsAfter: { math, code: 0 },
    rlAccuracyBefore: 0,
    rlAccuracyAfter: 0,
    finalEntropy: 0.5,
  });
  const s = summarise(
    [run("gppo", 0.4, 0.2), run("gppo", 0.6, 0.4), run("cispo", 0.3, 0.1)],
    ["gppo", "cispo"],
  );
  assert.equal(s[0].accuracyMean, 0.5);
  assert.ok(Math.abs(s[0].accuracyStd - Math.SQRT2 / 10) < 1e-12);
  assert.ok(Math.abs(s[0].parts.math[0] - 0.3) < 1e-12);
  assert.deepEqual([s[1].runs, s[1].accuracyStd], [1, 0]);
  assert.equal(
    experimentResultLine(s),
    "RESULT experiment-losses klear=0.5000 peer=0.3000 unit=accuracy ratio=1.6667 peer_loss=cispo",
  );
});

describe("runExperiment on the smoke preset (3 losses × 2 seeds)", () => {
  const config = resolveExperimentConfig({ preset: "smoke" });
  let reference: ExperimentResult;

  it("one SFT checkpoint, one RL run per (loss, seed), each evaluated by the eval harness; table and report", async () => {
    const out = join(root, "ref");
    reference = await runExperiment(config, { out, quiet: true, log: () => {} });
    assert.equal(reference.interrupted, false);
    assert.deepEqual(
      reference.runs.map((r) => `${r.loss}/${r.seed}`),
      ["gppo/1", "gppo/2", "clip-higher/1", "clip-higher/2", "cispo/1", "cispo/2"],
    );
    assert.ok(existsSync(join(out, "sft", "result.json")), "the demo's SFT run in OUT/sft");
    assert.ok(existsSync(join(out, "eval-sft", "results.json")), "the SFT checkpoint through the harness");
    for (const r of reference.runs) {
      const cfg = JSON.parse(readFileSync(join(r.dir, "config.json"), "utf8"));
      assert.deepEqual([cfg.init, cfg.loss.name, cfg.seed], [reference.sftCheckpoint, r.loss, r.seed]);
      if (r.loss === "clip-higher") assert.deepEqual([cfg.loss.epsHigh, cfg.loss.clipRatioC], [0.28, 10]);
      assert.ok(existsSync(join(r.dir, "eval", "results.json")), `${r.dir}: no harness evaluation`);
      assert.ok(Number.isFinite(r.accuracyAfter) && Number.isFinite(r.finalEntropy));
      assert.deepEqual(Object.keys(r.partsAfter), ["math", "code"]);
      assert.equal(r.accuracyBefore, reference.before?.overall);
      const harness = readMetrics(runPaths(r.dir)).filter((m) => m.phase === "eval-harness");
      assert.deepEqual(
        harness.map((m) => [m.step, m.harnessAccuracy]),
        [
          [0, r.accuracyBefore],
          [r.steps, r.accuracyAfter],
        ],
      );
    }
    assert.deepEqual(
      reference.summary.map((s) => [s.loss, s.runs]),
      [
        ["gppo", 2],
        ["clip-higher", 2],
        ["cispo", 2],
      ],
    );
    const report = readFileSync(reference.report, "utf8");
    assert.match(report, /Loss ablation/);
    assert.match(report, /gppo \(mean of 2\)/);
    assert.match(report, /math accuracy/);
  });

  it("stopped mid-run and resumed as a whole: the uninterrupted experiment's numbers", async () => {
    const out = join(root, "stopped");
    // Asked at every SFT and RL step boundary and between runs: this stops inside the RL runs.
    let asked = 0;
    const lines: string[] = [];
    const stopped = await runExperiment(config, {
      out,
      quiet: true,
      log: (l) => lines.push(l),
      shouldStop: () => ++asked > 12,
    });
    assert.ok(stopped.interrupted);
    assert.ok(stopped.runs.length < 6, `stopped after ${stopped.runs.length} runs`);
    assert.ok(
      lines.includes(`continue with: klear experiment losses --out ${out} --resume`),
      lines.join("\n"),
    );
    const resumed = await runExperiment(config, { out, resume: true, quiet: true, log: () => {} });
    assert.equal(resumed.interrupted, false);
    const numbers = (r: ExperimentResult) => r.runs.map(({ dir: _dir, ...rest }) => rest);
    assert.deepEqual(numbers(resumed), numbers(reference));
    assert.deepEqual(resumed.summary, reference.summary);
    for (const r of resumed.runs) {
      const steps = readMetrics(runPaths(r.dir))
        .filter((m) => "rewardMean" in m)
        .map((m) => m.step);
      assert.deepEqual(steps, [1, 2], `${r.dir}: steps ${steps}`);
    }
    // Resuming a finished experiment trains and evaluates nothing again.
    const again = await runExperiment(config, { out, resume: true, quiet: true, log: () => {} });
    assert.deepEqual(again.summary, reference.summary);
  });
});
