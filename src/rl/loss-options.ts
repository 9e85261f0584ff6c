/**
 * The objective of a run, built from its config: the policy-loss function with the options the chosen
 * loss takes, the advantage estimator with its inputs, and the positive-sample SFT term.
 */
import { type AdvantageConfig, type AdvantageFn, advantages } from "./advantages.js";
import type { PolicyLossConfig, PolicyLossName } from "./objectives/config.js";
import { type PolicyLossFn, policyLoss } from "./objectives/policy-loss.js";
import type { PositiveSftConfig } from "./sft-term.js";
import type { RlConfig } from "./trainer-config.js";

/** The config of `policyLoss` for this run: only the options the chosen loss accepts. */
export function rlPolicyLossConfig(config: RlConfig): PolicyLossConfig {
  const l = config.loss;
  const name: PolicyLossName = l.name;
  const cfg: PolicyLossConfig = {
    aggregation: l.aggregation,
    klCoeff: l.klCoeff,
    klEstimator: l.klEstimator,
  };
  if (l.entropyCoeff !== 0) cfg.entropyCoeff = l.entropyCoeff;
  if (l.tisCap !== null) cfg.tisCap = l.tisCap;
  if (l.entropyRatioClip !== null) cfg.entropyRatioClip = l.entropyRatioClip;
  if (l.aggregation === "seq-mean-token-sum-norm") cfg.lengthDivisor = config.rollout.maxNewTokens;
  if (l.epsLow !== null) cfg.epsLow = l.epsLow;
  if (l.epsHigh !== null) cfg.epsHigh = l.epsHigh;
  if (name !== "cispo" && name !== "gspo" && l.clipRatioC !== null) cfg.clipRatioC = l.clipRatioC;
  if (name === "gppo") {
    cfg.beta1 = l.beta1;
    cfg.beta2 = l.beta2;
  }
  return cfg;
}

/** The run's objective, ready for `policyUpdate`. */
export interface RlObjective {
  loss: PolicyLossFn;
  advantage: AdvantageFn;
  advantageTokenCounts: boolean;
  sft: PositiveSftConfig & { alpha: number };
  /** The loss reads the current policy's entropy (entropy bonus or ERC). */
  needEntropy: boolean;
  /** The loss reads the sampler's log-probs (truncated IS). */
  useRolloutLogp: boolean;
}

export function rlObjective(config: RlConfig): RlObjective {
  const estimator = config.advantage.estimator;
  const usesStd = estimator === "grpo" || estimator.startsWith("reinforce");
  const advantageConfig: AdvantageConfig = usesStd ? { std: config.advantage.std } : {};
  return {
    loss: policyLoss(config.loss.name, rlPolicyLossConfig(config)),
    advantage: advantages(estimator, advantageConfig),
    advantageTokenCounts: estimator.startsWith("reinforce"),
    sft: {
      alpha: config.loss.sftAlpha,
      correctScore: 1,
      aggregation: config.loss.aggregation,
      lengthDivisor:
        config.loss.aggregation === "seq-mean-token-sum-norm" ? config.rollout.maxNewTokens : undefined,
    },
    needEntropy: config.loss.entropyCoeff !== 0 || config.loss.entropyRatioClip !== null,
    useRolloutLogp: config.loss.tisCap !== null,
  };
}
