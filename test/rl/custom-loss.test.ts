// A loss registered from user code trains through runRl by name, with no change to klear's files.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { loadModel, saveCheckpoint } from "../../src/model/checkpoint.js";
import { Region } from "../../src/rl/objectives/clip.js";
import { registerPolicyLoss } from "../../src/rl/objectives/registry.js";
import { runRl } from "../../src/rl/trainer.js";
import { resolveRlConfig } from "../../src/rl/trainer-config.js";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { rlTaskFromConfig } from "../../src/tasks/rl-tasks.js";
import { eosByteTokenizer, tinyTestModel } from "../helpers/tiny-model.js";

const root = mkdtempSync(join(tmpdir(), "klear-rl-custom-loss-"));
after(() => rmSync(root, { recursive: true, force: true }));

it("a user-registered loss trains through runRl", async () => {
  // The user's few lines: REINFORCE with the importance weight capped at 1 + ε_high.
  registerPolicyLoss({
    name: "test-capped-is",
    summary: "REINFORCE with the detached importance weight min(δ, 1+ε_high)",
    options: ["epsHigh"],
    defaults: { epsHigh: 1 },
    tokenRule: (cfg) => (ratio, adv, out) => {
      const capped = ratio > 1 + cfg.epsHigh;
      out.weight = capped ? 1 + cfg.epsHigh : ratio;
      out.value = -adv * out.weight;
      out.region = capped ? Region.high : Region.inside;
      return out;
    },
  });

  const tokenizer = eosByteTokenizer();
  const model = tinyTestModel(tokenizer, 7);
  const init = join(root, "init");
  await saveCheckpoint(init, model, tokenizer);

  const out = join(root, "run");
  const result = await runRl({
    config: resolveRlConfig({
      overrides: {
        "loss.name": "test-capped-is",
        steps: "1",
        "task.testSize": "2",
        "rollout.genBatchPrompts": "4",
        "rollout.trainBatchPrompts": "4",
        "rollout.n": "4",
        "rollout.maxNewTokens": "6",
        "update.miniBatchPrompts": "4",
        "eval.maxNewTokens": "4",
        "optimizer.warmupSteps": "0",
        "optimizer.lr": "0.01",
        "groupFilter.enabled": "false",
      },
    }),
    task: rlTaskFromConfig,
    // The length parity of the response decides "correct", so the advantages are not all zero.
    scorer: (_p, response) => {
      const correct = response.length % 2 === 1;
      return { reward: correct ? 1 : -1, correct };
    },
    init,
    out,
    quiet: true,
    log: () => {},
  });
  assert.equal(result.steps, 1);
  const [m] = readMetrics(runPaths(out)).filter((r) => r.phase === undefined);
  assert.equal(m.optimizerSteps, 1);
  assert.ok(Number.isFinite(m.pgLoss as number));
  const trained = (await loadModel(result.checkpoint)).model;
  const moved = [...model.parameters()].filter(([k, p]) =>
    p.data.some((v, i) => v !== trained.parameters().get(k)?.data[i]),
  );
  assert.equal(moved.length, model.parameters().size, "every parameter moved");
});
