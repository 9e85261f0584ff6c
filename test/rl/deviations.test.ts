// The fixes to where klear's RL used to differ from the paper and its code, one test each.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { LocalPolicyTrainer } from "../../src/backend/local.js";
import { BWRAP_PATH, PYTHON_PATH } from "../../src/rewards/code/local.js";
import { KLEAR_RL_RULES } from "../../src/rewards/score.js";
import { advantages } from "../../src/rl/advantages.js";
import { rlObjective, rlResolvedLossConfig } from "../../src/rl/loss-options.js";
import { klearMathRlPreset } from "../../src/rl/objectives/presets.js";
import type { Trajectory } from "../../src/rl/rollout.js";
import { collectRollouts } from "../../src/rl/rollout.js";
import { codeRlTask } from "../../src/rl/row-tasks.js";
import type { RlPrompt, RlTask } from "../../src/rl/task.js";
import { heldOutSampling } from "../../src/rl/trainer.js";
import { type RlConfig, resolveRlConfig } from "../../src/rl/trainer-config.js";
import { assignAdvantages, oldLogprobs } from "../../src/rl/update.js";
import { eosByteTokenizer, tinyTestModel } from "../helpers/tiny-model.js";

const tokenizer = eosByteTokenizer();

function tinyPolicy(): LocalPolicyTrainer {
  const model = tinyTestModel(tokenizer, 5);
  return new LocalPolicyTrainer(model, tokenizer, {
    lr: 0,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
  });
}

function small(overrides: Record<string, string>): RlConfig {
  return resolveRlConfig({
    overrides: {
      "rollout.genBatchPrompts": "2",
      "rollout.trainBatchPrompts": "2",
      "rollout.n": "4",
      "rollout.maxNewTokens": "8",
      "update.miniBatchPrompts": "2",
      "groupFilter.enabled": "false",
      ...overrides,
    },
  });
}

const promptAt = (i: number): RlPrompt => ({
  id: `p${i}`,
  text: `p${i}`,
  tokens: tokenizer.encode(`p${i}:`),
  answer: "",
});
const anyTask: RlTask = {
  name: "any",
  heldOut: [],
  prompts: (cursor, count) => Array.from({ length: count }, (_, i) => promptAt(cursor + i)),
  score: () => ({ reward: 0, correct: false }),
};

describe("training log-probs at the rollout temperature (logits / T, as verl)", () => {
  it("the trainer's old log-probs equal the sampler's at T = 0.5, and differ from the untempered ones", async () => {
    const policy = tinyPolicy();
    const config = small({ "rollout.temperature": "0.5" });
    const { generated } = await collectRollouts({
      config,
      task: anyTask,
      score: anyTask.score,
      sampler: policy.sampler(),
      tokenizer,
      cursor: 0,
    });
    const atT = await oldLogprobs(policy, null, generated, { microBatchSize: 8, temperature: 0.5 });
    assert.ok(atT.metrics.logprobDiffMax < 1e-3, `at T: ${atT.metrics.logprobDiffMax}`);
    const atOne = await oldLogprobs(policy, null, generated, { microBatchSize: 8, temperature: 1 });
    assert.ok(
      atOne.metrics.logprobDiffMax > 0.05,
      `ignoring T would differ: ${atOne.metrics.logprobDiffMax}`,
    );
  });
});

describe("the code reward's test subset is drawn per response", () => {
  it("the same response scores differently as the per-response seed picks different tests", async (t) => {
    if (!existsSync(BWRAP_PATH) || !existsSync(PYTHON_PATH)) {
      t.skip(`code sandbox not available (${BWRAP_PATH}, ${PYTHON_PATH})`);
      return;
    }
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "klear-code-subset-"));
    try {
      const rows = join(dir, "rows.jsonl");
      const gt = JSON.stringify({ inputs: ["1 2\n", "5 7\n"], outputs: ["3\n", "12\n"] });
      const row = (i: number) =>
        JSON.stringify({ prompt: `Add (${i}).`, reward_model: { ground_truth: gt } });
      writeFileSync(rows, `${[0, 1, 2].map(row).join("\n")}\n`);
      const config = small({
        "task.kind": "code",
        "task.trainFile": rows,
        "task.testSize": "1",
        "task.chatTemplate": "false",
      });
      // One test per response: `print(3)` passes exactly one of the two.
      const task = await codeRlTask({ config, tokenizer }, { rules: { ...KLEAR_RL_RULES, maxTests: 1 } });
      const [prompt] = task.prompts(0, 1);
      const rewards = new Set<number>();
      for (let seed = 0; seed < 12; seed++) {
        rewards.add(
          (await task.score(prompt, "<think>x</think>\n```python\nprint(3)\n```", { seed })).reward,
        );
      }
      assert.deepEqual([...rewards].sort(), [-1, 1], "both tests get drawn across responses");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a preset whose loss name is switched gets that loss's own defaults", () => {
  it("klear-math keeps the recipe's GPPO numbers; with loss.name gspo, GSPO's ε and seq-mean-token-mean", () => {
    const gppo = rlResolvedLossConfig(resolveRlConfig({ preset: "klear-math" }));
    const recipe = klearMathRlPreset.loss.config;
    assert.equal(gppo.epsLow, recipe.epsLow);
    assert.equal(gppo.epsHigh, recipe.epsHigh);
    assert.equal(gppo.clipRatioC, recipe.clipRatioC);
    assert.equal(gppo.aggregation, recipe.aggregation ?? "token-mean");
    const gspo = rlResolvedLossConfig(
      resolveRlConfig({ preset: "klear-math", overrides: { "loss.name": "gspo" } }),
    );
    assert.equal(gspo.epsLow, 3e-4);
    assert.equal(gspo.epsHigh, 4e-4);
    assert.equal(gspo.clipRatioC, null);
    assert.equal(gspo.aggregation, "seq-mean-token-mean");
    const explicit = rlResolvedLossConfig(
      resolveRlConfig({
        overrides: { "loss.name": "gspo", "loss.aggregation": "token-mean", "loss.epsHigh": "1e-3" },
      }),
    );
    assert.equal(explicit.aggregation, "token-mean", "a configured value still wins");
    assert.equal(explicit.epsHigh, 1e-3);
  });
});

describe("REINFORCE++ receives token counts", () => {
  it("the trainer passes each response's length, so whitening weighs responses by their tokens", () => {
    const config = small({ "advantage.estimator": "reinforce++" });
    const objective = rlObjective(config);
    assert.equal(objective.advantageTokenCounts, true);
    assert.equal(rlObjective(small({})).advantageTokenCounts, false, "grpo needs none");
    const traj = (uid: string, reward: number, len: number): Trajectory => ({
      prompt: promptAt(0),
      promptTokens: [1],
      uid,
      sampleIndex: 0,
      completion: new Array(len).fill(1),
      samplerLogp: new Array(len).fill(0),
      text: "",
      finishReason: "stop",
      reward,
      correct: false,
      advantage: 0,
    });
    const batch = [traj("a", 1, 2), traj("a", -1, 10), traj("b", 1, 3), traj("b", 0, 1)];
    const adv = assignAdvantages(batch, objective);
    const expected = advantages("reinforce++", { std: "unbiased" })({
      rewards: [1, -1, 1, 0],
      tokenCounts: [2, 10, 3, 1],
    });
    assert.deepEqual([...adv], [...expected]);
    const unweighted = advantages("reinforce++", { std: "unbiased" })({ rewards: [1, -1, 1, 0] });
    assert.notDeepEqual([...adv], [...unweighted]);
  });
});

describe("lengths, held-out sampling and step counts", () => {
  it("RL's held-out evaluation samples at T 0.6 / top-p 0.95 unless configured", () => {
    const s = heldOutSampling(resolveRlConfig({}));
    assert.equal(s.temperature, 0.6);
    assert.equal(s.topP, 0.95);
    const greedy = heldOutSampling(resolveRlConfig({ overrides: { "eval.temperature": "0" } }));
    assert.equal(greedy.temperature, 0);
  });

  it("the Klear presets cap prompts at the recipe's 4096 tokens; klear-code's steps fit its 18K prompts", () => {
    const math = resolveRlConfig({ preset: "klear-math" });
    assert.equal(math.rollout.maxPromptTokens, klearMathRlPreset.lengths.maxPromptTokens);
    assert.equal(math.steps, 1715, "5 epochs × ⌊88000 / 256⌋");
    const code = resolveRlConfig({ preset: "klear-code" });
    assert.equal(code.rollout.maxPromptTokens, 4096);
    assert.equal(code.steps, 350, "5 epochs × ⌊18000 / 256⌋");
  });
});
