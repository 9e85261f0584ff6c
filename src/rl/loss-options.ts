/**
 * The objective of a run, built from its config through the registries: the policy-loss function with
 * the options the chosen loss accepts (the rest are its own defaults), the advantage estimator with the
 * inputs its registry entry says it needs, and the positive-sample SFT term. No loss or estimator name is
 * tested here, so a loss added with `registerPolicyLoss` trains like a built-in one.
 */
import { type AdvantageFn, advantageConfigFrom, advantageEstimatorSpec, advantages } from "./advantages.js";
import {
  type PolicyLossConfig,
  policyLossConfigFrom,
  type ResolvedPolicyLossConfig,
  resolvePolicyLossConfig,
} from "./objectives/config.js";
import { type PolicyLossFn, policyLoss } from "./objectives/policy-loss.js";
import type { PositiveSftConfig } from "./sft-term.js";
import type { RlConfig } from "./trainer-config.js";

/**
 * The config of `policyLoss` for this run: the config's values for the options the chosen loss accepts
 * (by its registry entry); null fields and options it does not take are left to the loss's defaults.
 */
export function rlPolicyLossConfig(config: RlConfig): PolicyLossConfig {
  const l = config.loss;
  return policyLossConfigFrom(l.name, {
    epsLow: l.epsLow,
    epsHigh: l.epsHigh,
    clipRatioC: l.clipRatioC,
    beta1: l.beta1,
    beta2: l.beta2,
    aggregation: l.aggregation,
    // Dr.GRPO's constant divisor is the longest response; passed whenever the loss takes it, used only
    // by seq-mean-token-sum-norm.
    lengthDivisor: config.rollout.maxNewTokens,
    groupSequences: l.groupSequences,
    klCoeff: l.klCoeff,
    klEstimator: l.klEstimator,
    entropyCoeff: l.entropyCoeff,
    tisCap: l.tisCap,
    entropyRatioClip: l.entropyRatioClip,
  });
}

/** The loss options of this run with every default filled in (what the loss will use). */
export function rlResolvedLossConfig(config: RlConfig): ResolvedPolicyLossConfig {
  return resolvePolicyLossConfig(config.loss.name, rlPolicyLossConfig(config));
}

/** The run's objective, ready for `policyUpdate`. */
export interface RlObjective {
  loss: PolicyLossFn;
  advantage: AdvantageFn;
  /** The estimator needs each response's token count (REINFORCE++'s token-weighted whitening). */
  advantageTokenCounts: boolean;
  sft: PositiveSftConfig & { alpha: number };
  /** The loss reads the current policy's entropy (entropy bonus or ERC). */
  needEntropy: boolean;
  /** The loss reads the sampler's log-probs (truncated IS). */
  useRolloutLogp: boolean;
}

export function rlObjective(config: RlConfig): RlObjective {
  const resolved = rlResolvedLossConfig(config);
  const estimator = config.advantage.estimator;
  return {
    loss: policyLoss(config.loss.name, rlPolicyLossConfig(config)),
    advantage: advantages(estimator, advantageConfigFrom(estimator, { std: config.advantage.std })),
    advantageTokenCounts: advantageEstimatorSpec(estimator).needs.tokenCounts,
    sft: {
      alpha: config.loss.sftAlpha,
      correctScore: 1,
      aggregation: resolved.aggregation,
      lengthDivisor: resolved.aggregation === "seq-mean-token-sum-norm" ? resolved.lengthDivisor : undefined,
    },
    needEntropy: resolved.entropyCoeff !== 0 || resolved.entropyRatioClip !== null,
    useRolloutLogp: resolved.tisCap !== null,
  };
}
