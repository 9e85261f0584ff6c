/**
 * The loss and estimator registries: each entry carries its own defaults, allowed keys and needs, and a
 * user-registered loss works by name exactly as a built-in one (the example of docs/objectives.md).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ADVANTAGE_ESTIMATORS,
  advantageConfigFrom,
  advantageEstimatorSpec,
  advantages,
  registerAdvantageEstimator,
} from "../../../src/rl/advantages.js";
import {
  POLICY_LOSS_NAMES,
  policyLoss,
  policyLossConfigFrom,
  policyLossNames,
  policyLossSpec,
  Region,
  registerPolicyLoss,
  resolvePolicyLossConfig,
  type TokenRule,
} from "../../../src/rl/objectives/index.js";
import { ConfigError } from "../../../src/util/errors.js";

describe("how to add a loss (docs/objectives.md)", () => {
  test("a registered loss is built by name and gives its rule's gradient", () => {
    // --- the docs example, verbatim ---
    registerPolicyLoss({
      name: "capped-is",
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
    const loss = policyLoss("capped-is", { epsHigh: 0.5 });
    // --- end of the example ---
    const out = loss({ logp: [[Math.log(2), Math.log(1.2)]], oldLogp: [[0, 0]], advantages: [1] });
    // token-mean over 2 tokens: dLogp = −A·w/2, w = 1.5 (capped) and 1.2.
    assert.deepEqual(
      Array.from(out.dLogp, (g) => Math.round(g * 1e12) / 1e12),
      [-0.75, -0.6],
    );
    assert.equal(out.metrics.clipFracHigh, 0.5);
    assert.ok(policyLossNames().includes("capped-is"));
    assert.deepEqual(policyLossNames().slice(0, POLICY_LOSS_NAMES.length), [...POLICY_LOSS_NAMES]);
    assert.equal(resolvePolicyLossConfig("capped-is").epsHigh, 1);
    assert.throws(() => policyLoss("capped-is", { beta1: 2 }), /capped-is: unknown option "beta1"/);
  });

  test("bad registrations are ConfigErrors", () => {
    const rule = (): TokenRule => (_ratio, _adv, out) => out;
    assert.throws(
      () => registerPolicyLoss({ name: "gppo", summary: "", options: [], tokenRule: rule }),
      ConfigError,
    );
    assert.throws(
      () => registerPolicyLoss({ name: "x-loss", summary: "", options: ["gamma" as never], tokenRule: rule }),
      /unknown option "gamma"/,
    );
    assert.throws(
      () => registerPolicyLoss({ name: "Bad Name", summary: "", options: [], tokenRule: rule }),
      ConfigError,
    );
    assert.throws(() => policyLossSpec("nope"), /unknown policy loss "nope"[\s\S]*gppo, gppo-only-high/);
  });
});

describe("loss specs hold what a trainer needs", () => {
  test("gspo's own defaults: seq-mean-token-mean and ε 3e-4 / 4e-4; sequence-level", () => {
    const gspo = policyLossSpec("gspo");
    assert.deepEqual(gspo.defaults, {
      epsLow: 3e-4,
      epsHigh: 4e-4,
      clipRatioC: null,
      aggregation: "seq-mean-token-mean",
    });
    assert.equal(gspo.sequenceLevel, true);
    assert.equal(resolvePolicyLossConfig("gspo").aggregation, "seq-mean-token-mean");
    assert.equal(resolvePolicyLossConfig("gspo", { aggregation: "token-mean" }).aggregation, "token-mean");
    assert.equal(policyLossSpec("gppo").sequenceLevel, false);
  });
  test("a trainer's flat config becomes each loss's own options; null = the loss's default", () => {
    const flat = {
      epsLow: null,
      epsHigh: null,
      clipRatioC: null,
      beta1: 1,
      beta2: 1,
      aggregation: undefined,
      klCoeff: 0,
      tisCap: null,
    } as const;
    assert.deepEqual(policyLossConfigFrom("gspo", flat), { klCoeff: 0 });
    assert.deepEqual(policyLossConfigFrom("gppo", flat), { beta1: 1, beta2: 1, klCoeff: 0 });
    assert.equal(resolvePolicyLossConfig("gspo", policyLossConfigFrom("gspo", flat)).epsHigh, 4e-4);
    assert.deepEqual(advantageConfigFrom("dr-grpo", { std: "unbiased", eps: null }), {});
    assert.deepEqual(advantageConfigFrom("reinforce++", { std: "population", singleton: "zero" }), {
      std: "population",
    });
  });
  test("allowed keys: a loss's own options, then the common ones", () => {
    assert.deepEqual(policyLossSpec("gppo").options, ["epsLow", "epsHigh", "clipRatioC", "beta1", "beta2"]);
    assert.deepEqual(policyLossSpec("cispo").options, ["epsLow", "epsHigh"]);
    assert.ok(policyLossSpec("cispo").allowedKeys.includes("aggregation"));
    assert.ok(!policyLossSpec("gspo").allowedKeys.includes("clipRatioC"));
    for (const name of POLICY_LOSS_NAMES) {
      const spec = policyLossSpec(name);
      assert.equal(spec.name, name);
      assert.ok(spec.summary.length > 0);
    }
  });
});

describe("advantage estimator specs", () => {
  test("which estimators need token counts and groups", () => {
    const needs = Object.fromEntries(ADVANTAGE_ESTIMATORS.map((n) => [n, advantageEstimatorSpec(n).needs]));
    assert.deepEqual(needs, {
      grpo: { groups: true, tokenCounts: false },
      "dr-grpo": { groups: true, tokenCounts: false },
      rloo: { groups: true, tokenCounts: false },
      "reinforce++": { groups: false, tokenCounts: true },
      "reinforce++-baseline": { groups: true, tokenCounts: true },
    });
    assert.deepEqual(advantageEstimatorSpec("grpo").options, ["std", "eps", "singleton"]);
    assert.throws(() => advantages("dr-grpo", { std: "population" }), /dr-grpo: unknown option "std"/);
  });
  test("a registered estimator works by name", () => {
    registerAdvantageEstimator({
      name: "raw-reward",
      summary: "Â = R (no baseline)",
      options: [],
      needs: { groups: false, tokenCounts: false },
      estimate: (input) => Float64Array.from(input.rewards),
    });
    assert.deepEqual(Array.from(advantages("raw-reward")({ rewards: [1, -2] })), [1, -2]);
    assert.throws(() => advantages("raw-reward")({ rewards: [Number.NaN] }), /not finite/);
    assert.throws(() => advantageEstimatorSpec("gae"), /unknown advantage estimator "gae"[\s\S]*raw-reward/);
  });
});
