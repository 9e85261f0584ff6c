/**
 * The positive-sample SFT term Klear adds during RL (paper §3.2.3, Eq. 13–14): NLL on the responses that
 * were fully correct, weighted by α, so total loss = policy loss + α·L_LM. It is its own function so the
 * caller adds its dLogp to the policy loss's; the two use separate normalisers (here: positive tokens).
 */
import { ConfigError } from "../util/errors.js";
import {
  type AggregationMode,
  aggregationScales,
  checkAggregation,
  weightedSum,
} from "./objectives/aggregate.js";
import {
  flattenMask,
  flattenTokens,
  type NumberList,
  rowViews,
  type TokenMask,
  type TokenValues,
  tokenLayout,
} from "./objectives/layout.js";

export interface PositiveSftConfig {
  /** Weight α of the term. Default 0.1 (positive_loss_coeff). */
  alpha?: number;
  /** Reward that marks a response as fully correct when `rewards` are given. Default 1.0. */
  correctScore?: number;
  /** Aggregation over positive tokens. Default "token-mean" (the recipe's). */
  aggregation?: AggregationMode;
  lengthDivisor?: number;
}

export interface PositiveSftInput {
  /** log π_θ of the response tokens, at the rollout temperature (as the policy loss sees them). */
  logp: TokenValues;
  mask?: TokenMask;
  lengths?: NumberList;
  /** Per response: fully correct? Either this or rewards. */
  positive?: ArrayLike<boolean>;
  /** Per response reward; positive means reward === correctScore exactly (code: every sampled test passed). */
  rewards?: ArrayLike<number>;
  /** Positive tokens in the whole mini-batch, for gradient accumulation over micro-batches. */
  globalTokenCount?: number;
  /** Positive sequences in the whole mini-batch (seq-mean-* modes). */
  globalSeqCount?: number;
}

export interface PositiveSftResult {
  /** α·NLL; 0 when no response is positive. */
  loss: number;
  /** The unweighted NLL (for logging). */
  nll: number;
  /** dLoss/dlogp per token, flat in input order: −α·scale on positive tokens, 0 elsewhere. */
  dLogp: Float64Array;
  dLogpRows: Float64Array[];
  positiveTokens: number;
  positiveSequences: number;
}

export function positiveSftTerm(input: PositiveSftInput, cfg: PositiveSftConfig = {}): PositiveSftResult {
  for (const key of Object.keys(cfg)) {
    if (!["alpha", "correctScore", "aggregation", "lengthDivisor"].includes(key)) {
      throw new ConfigError(
        `positive SFT term: unknown option "${key}"`,
        "the options are: alpha, correctScore, aggregation, lengthDivisor",
      );
    }
  }
  const alpha = cfg.alpha ?? 0.1;
  if (!Number.isFinite(alpha) || alpha < 0) {
    throw new ConfigError(
      `positive SFT term: alpha = ${alpha} must be ≥ 0`,
      "use 0.1 (the paper) or 0 to turn it off",
    );
  }
  const correctScore = cfg.correctScore ?? 1;
  const aggregation = checkAggregation(cfg.aggregation ?? "token-mean", cfg.lengthDivisor);

  const layout = tokenLayout(input.logp, input.lengths, "logp");
  let positive: ArrayLike<boolean>;
  if (input.positive !== undefined) positive = input.positive;
  else if (input.rewards !== undefined) positive = Array.from(input.rewards, (r) => r === correctScore);
  else
    throw new ConfigError(
      "positive SFT term needs positive or rewards",
      "pass one flag or reward per response",
    );
  if (positive.length !== layout.rows) {
    throw new ConfigError(
      `positive SFT term: ${positive.length} flags for ${layout.rows} responses`,
      "give one positive flag (or reward) per response",
    );
  }

  const mask = flattenMask(input.mask, layout);
  let positiveSequences = 0;
  for (let i = 0; i < layout.rows; i++) {
    if (!positive[i]) mask.fill(0, layout.offsets[i], layout.offsets[i + 1]);
    else if (mask.subarray(layout.offsets[i], layout.offsets[i + 1]).includes(1)) positiveSequences++;
  }
  let positiveTokens = 0;
  for (let k = 0; k < mask.length; k++) positiveTokens += mask[k];

  const logp = flattenTokens(input.logp, layout, "logp");
  const nllValues = new Float64Array(layout.tokens);
  for (let k = 0; k < logp.length; k++) {
    if (!mask[k]) continue;
    if (!Number.isFinite(logp[k])) {
      throw new ConfigError(
        `positive SFT term: logp has ${logp[k]} at flat token ${k}`,
        "check the model's log-probs",
      );
    }
    nllValues[k] = -logp[k];
  }
  const scales = aggregationScales(aggregation, mask, layout, {
    globalTokenCount: input.globalTokenCount,
    globalSeqCount: input.globalSeqCount,
    lengthDivisor: cfg.lengthDivisor,
  });
  const nll = weightedSum(nllValues, scales, mask);
  const dLogp = new Float64Array(layout.tokens);
  for (let k = 0; k < dLogp.length; k++) if (mask[k]) dLogp[k] = -alpha * scales[k] + 0;
  return {
    loss: alpha * nll,
    nll,
    dLogp,
    dLogpRows: rowViews(dLogp, layout),
    positiveTokens,
    positiveSequences,
  };
}
