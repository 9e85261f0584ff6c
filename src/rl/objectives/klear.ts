/**
 * The paper's full per-mini-batch objective in one call: policy loss (GPPO by default) plus the
 * positive-sample SFT term, L = L_policy + α·L_LM (spec §5.9), with one combined dLogp for backward.
 */
import { type PositiveSftResult, positiveSftTerm } from "../sft-term.js";
import { resolvePolicyLossConfig } from "./config.js";
import {
  type PolicyLossInput,
  type PolicyLossMetrics,
  type PolicyLossResult,
  policyLoss,
} from "./policy-loss.js";
import { type KlearRlPreset, klearMathRlPreset } from "./presets.js";

export interface KlearObjectiveInput extends PolicyLossInput {
  /** One reward per response: those equal to the preset's correctScore feed the SFT term. */
  rewards: ArrayLike<number>;
  /** Positive (fully correct) tokens in the whole mini-batch, for gradient accumulation over micro-batches. */
  globalPositiveTokenCount?: number;
  /** Positive sequences in the whole mini-batch (seq-mean-* aggregation). */
  globalPositiveSeqCount?: number;
}

export interface KlearObjectiveMetrics extends PolicyLossMetrics {
  /** α·NLL over fully correct responses. */
  sftLoss: number;
  /** Unweighted NLL over fully correct responses. */
  sftNll: number;
  positiveTokens: number;
  positiveSequences: number;
}

export interface KlearObjectiveResult extends Omit<PolicyLossResult, "metrics"> {
  metrics: KlearObjectiveMetrics;
}

/** Builds the objective of a preset (default Klear math): `klearObjective()(input)`. */
export function klearObjective(preset: KlearRlPreset = klearMathRlPreset) {
  const loss = policyLoss(preset.loss.name, preset.loss.config);
  // The SFT term aggregates as the policy loss does, including a loss's own default (GSPO: seq-mean-token-mean).
  const resolved = resolvePolicyLossConfig(preset.loss.name, preset.loss.config);
  const sftConfig = {
    alpha: preset.positiveSft.alpha,
    correctScore: preset.positiveSft.correctScore,
    aggregation: resolved.aggregation,
    lengthDivisor: resolved.lengthDivisor,
  };
  return (input: KlearObjectiveInput): KlearObjectiveResult => {
    const policy = loss(input);
    const sft: PositiveSftResult | null =
      sftConfig.alpha === 0
        ? null
        : positiveSftTerm(
            {
              logp: input.logp,
              mask: input.mask,
              lengths: input.lengths,
              rewards: input.rewards,
              globalTokenCount: input.globalPositiveTokenCount,
              globalSeqCount: input.globalPositiveSeqCount,
            },
            sftConfig,
          );
    if (sft !== null) for (let k = 0; k < policy.dLogp.length; k++) policy.dLogp[k] += sft.dLogp[k];
    return {
      ...policy,
      loss: policy.loss + (sft?.loss ?? 0),
      metrics: {
        ...policy.metrics,
        sftLoss: sft?.loss ?? 0,
        sftNll: sft?.nll ?? 0,
        positiveTokens: sft?.positiveTokens ?? 0,
        positiveSequences: sft?.positiveSequences ?? 0,
      },
    };
  };
}
