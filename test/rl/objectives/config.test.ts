import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { advantages } from "../../../src/rl/advantages.js";
import { DynamicSampler, filterGroups } from "../../../src/rl/filters.js";
import {
  KLEAR_RL_PRESETS,
  klearCodeRlPreset,
  klearMathRlPreset,
  POLICY_LOSS_NAMES,
  policyLoss,
  resolvePolicyLossConfig,
} from "../../../src/rl/objectives/index.js";
import { ConfigError } from "../../../src/util/errors.js";

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(err.fix.length > 0);
    return true;
  });
}

describe("bad configs give a clear ConfigError", () => {
  test("unknown loss name lists every valid loss", () => {
    rejects(
      () => policyLoss("grpo"),
      new RegExp(`unknown policy loss "grpo"[\\s\\S]*${POLICY_LOSS_NAMES.join(", ")}`),
    );
  });
  test("unknown aggregation lists the four modes", () => {
    rejects(
      () => policyLoss("gppo", { aggregation: "mean" as never }),
      /unknown aggregation "mean"[\s\S]*token-mean, seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm/,
    );
  });
  test("ε_low ≥ 1 (and < 0)", () => {
    rejects(() => policyLoss("gppo", { epsLow: 1 }), /epsLow = 1 must be in \[0, 1\)/);
    rejects(() => policyLoss("ppo-clip", { epsLow: 1.5 }), /epsLow/);
    rejects(() => policyLoss("cispo", { epsLow: -0.1 }), /epsLow/);
  });
  test("c ≤ 1", () => {
    rejects(() => policyLoss("dual-clip", { clipRatioC: 1 }), /clipRatioC = 1 must be > 1/);
    rejects(() => policyLoss("gppo", { clipRatioC: 0.5 }), /clipRatioC/);
    rejects(() => policyLoss("dual-clip", { clipRatioC: null }), /dual-clip: clipRatioC is null/);
  });
  test("options a loss does not use, and malformed numbers", () => {
    rejects(
      () => policyLoss("ppo-clip", { beta1: 0.5 }),
      /unknown option "beta1"[\s\S]*epsLow, epsHigh, clipRatioC/,
    );
    rejects(() => policyLoss("cispo", { clipRatioC: 3 }), /unknown option "clipRatioC"/);
    rejects(() => policyLoss("gppo", { epsHigh: Number.NaN }), /epsHigh = NaN is not a finite number/);
    rejects(() => policyLoss("gppo", { beta1: -1 }), /beta1\/beta2 must be ≥ 0/);
    rejects(() => policyLoss("gppo", { klCoeff: -1 }), /klCoeff/);
    rejects(
      () => policyLoss("gppo", { klEstimator: "k4" as never }),
      /unknown klEstimator "k4"[\s\S]*k1, k2, k3/,
    );
    rejects(() => policyLoss("gppo", { aggregation: "seq-mean-token-sum-norm" }), /lengthDivisor/);
  });
  test("unknown advantage estimator, group-filter metric and dynamic-sampling values", () => {
    rejects(
      () => advantages("gae"),
      /unknown advantage estimator "gae"[\s\S]*grpo, dr-grpo, rloo, reinforce\+\+/,
    );
    rejects(() => advantages("grpo", { std: "sample" as never }), /unknown advantage std/);
    rejects(() => filterGroups({ groupIds: [1], rewards: [1] }, { metric: "score" as never }), /acc, reward/);
    rejects(
      () =>
        new DynamicSampler({
          trainBatchPrompts: 0,
          responsesPerPrompt: 8,
          genBatchPrompts: 256,
          maxGenBatches: 1,
          onShortfall: "truncate",
        }),
      /trainBatchPrompts/,
    );
  });
  test("inputs that disagree in shape name the field", () => {
    const loss = policyLoss("gppo");
    rejects(
      () => loss({ logp: [[0, 0]], oldLogp: [[0]], advantages: [1] }),
      /oldLogp\[0\] has 1 tokens, expected 2/,
    );
    rejects(
      () => loss({ logp: [0, 0, 0], oldLogp: [0, 0, 0], advantages: [1, 1], lengths: [2, 2] }),
      /lengths sum to 4/,
    );
    rejects(
      () => loss({ logp: [[0, 0], [0]], oldLogp: [[0, 0], [0]], advantages: [1, 1, 1, 1] }),
      /expected 2 \(one per sequence\) or 3/,
    );
    assert.throws(
      () => loss({ logp: [Number.NaN], oldLogp: [0], advantages: [1] }),
      /logp\[0\]\[0\] = NaN on an unmasked token/,
    );
    assert.throws(
      () => policyLoss("gppo", { klCoeff: 0.1 })({ logp: [0], oldLogp: [0], advantages: [1] }),
      /no refLogp/,
    );
  });
});

describe("defaults and presets", () => {
  test("defaults per loss", () => {
    assert.deepEqual(
      (({ epsLow, epsHigh, clipRatioC, beta1, beta2, aggregation }) => ({
        epsLow,
        epsHigh,
        clipRatioC,
        beta1,
        beta2,
        aggregation,
      }))(resolvePolicyLossConfig("gppo")),
      { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10, beta1: 1, beta2: 1, aggregation: "token-mean" },
    );
    assert.equal(resolvePolicyLossConfig("ppo-clip", { epsLow: 0.1 }).epsHigh, 0.1);
    assert.equal(resolvePolicyLossConfig("ppo-clip").clipRatioC, null);
    assert.equal(resolvePolicyLossConfig("dual-clip").clipRatioC, 3);
    assert.equal(resolvePolicyLossConfig("gspo").epsLow, 3e-4);
    assert.equal(resolvePolicyLossConfig("gppo").klCoeff, 0);
  });
  test("every preset builds; math and code differ only where the recipe scripts do (§8)", () => {
    for (const preset of Object.values(KLEAR_RL_PRESETS)) {
      policyLoss(preset.loss.name, preset.loss.config);
      advantages(preset.advantage.name, preset.advantage.config);
      new DynamicSampler(preset.dynamicSampling);
    }
    assert.equal(klearMathRlPreset.optimizer.lr, 1e-6);
    assert.equal(klearCodeRlPreset.optimizer.lr, 5e-7);
    assert.equal(klearMathRlPreset.miniBatchPrompts, 16);
    assert.equal(klearCodeRlPreset.miniBatchPrompts, 32);
    assert.equal(klearMathRlPreset.positiveSft.alpha, 0.1);
    assert.deepEqual(
      { ...klearCodeRlPreset, name: "", optimizer: null, miniBatchPrompts: 0 },
      { ...klearMathRlPreset, name: "", optimizer: null, miniBatchPrompts: 0 },
    );
    assert.equal(KLEAR_RL_PRESETS["klear-math-general-gppo"].loss.config.beta1, 0.25);
  });
});
