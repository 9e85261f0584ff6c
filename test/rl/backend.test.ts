// runRl trains through the backend it is handed: every forward/backward and optimizer step goes through
// the PolicyTrainer seam (here the local backend, wrapped to count its calls).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { localBackend } from "../../src/backend/local.js";
import type { PolicyTrainer, TrainingBackend } from "../../src/backend/types.js";
import { saveCheckpoint } from "../../src/model/checkpoint.js";
import { runRl } from "../../src/rl/trainer.js";
import { resolveRlConfig } from "../../src/rl/trainer-config.js";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { rlTaskFromConfig } from "../../src/tasks/rl-tasks.js";
import { eosByteTokenizer, tinyTestModel } from "../helpers/tiny-model.js";

const root = mkdtempSync(join(tmpdir(), "klear-rl-backend-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** The local backend, with every policy call counted. */
function countingBackend(counts: Record<string, number>): TrainingBackend {
  /** Counts a call under `k`, then makes it. */
  const counted =
    <A extends unknown[], R>(k: string, f: (...args: A) => R) =>
    (...args: A): R => {
      counts[k] = (counts[k] ?? 0) + 1;
      return f(...args);
    };
  const count = (k: string) => counted(k, () => {})();
  return {
    ...localBackend,
    name: "counting-local",
    async openPolicy(checkpoint, opts) {
      count("openPolicy");
      const inner = await localBackend.openPolicy(checkpoint, opts);
      const policy: PolicyTrainer = {
        tokenizer: inner.tokenizer,
        parameterCount: inner.parameterCount,
        sampler: counted("sampler", () => inner.sampler()),
        logprobs: counted("logprobs", inner.logprobs.bind(inner)),
        forwardBackward: counted("forwardBackward", inner.forwardBackward.bind(inner)),
        optimizerStep: counted("optimizerStep", inner.optimizerStep.bind(inner)),
        save: counted("save", inner.save.bind(inner)),
      };
      return policy;
    },
    async openSampler(checkpoint) {
      count("openSampler");
      return localBackend.openSampler(checkpoint);
    },
  };
}

it("runRl opens, samples, trains and saves through the backend it is handed", async () => {
  const tokenizer = eosByteTokenizer();
  const model = tinyTestModel(tokenizer, 11);
  const init = join(root, "init");
  await saveCheckpoint(init, model, tokenizer);
  const counts: Record<string, number> = {};
  const out = join(root, "run");
  await runRl({
    config: resolveRlConfig({
      overrides: {
        steps: "2",
        checkpointEvery: "1",
        "task.testSize": "2",
        "rollout.genBatchPrompts": "2",
        "rollout.trainBatchPrompts": "2",
        "rollout.n": "4",
        "rollout.maxNewTokens": "5",
        "update.miniBatchPrompts": "1",
        "update.microBatchSize": "3",
        "eval.maxNewTokens": "3",
        "groupFilter.enabled": "false",
      },
    }),
    task: rlTaskFromConfig,
    backend: countingBackend(counts),
    init,
    out,
    quiet: true,
    log: () => {},
  });
  const steps = readMetrics(runPaths(out)).filter((m) => m.phase === undefined);
  const optimizerSteps = steps.reduce((a, m) => a + (m.optimizerSteps as number), 0);
  assert.equal(optimizerSteps, 4, "2 steps × 2 one-prompt mini-batches");
  assert.equal(counts.openPolicy, 1);
  assert.equal(counts.optimizerStep, optimizerSteps);
  // 4 responses per mini-batch in micro-batches of 3: two forward/backward calls per optimizer step.
  assert.equal(counts.forwardBackward, 2 * optimizerSteps);
  assert.equal(counts.save, 2, "one checkpoint per step");
  assert.equal(counts.openSampler, 1, "the final evaluation reads the saved checkpoint");
  assert.equal(counts.sampler, 3, "the before-training evaluation and one rollout per step");
});
