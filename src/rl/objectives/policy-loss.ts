/**
 * The policy-loss registry: every loss has one signature, `(input) → { loss, dLogp, metrics }`, and
 * goes through the one aggregation function. dLogp is the gradient coefficient on each token's
 * log π_θ(a_t|s_t), ready for the model's backward; for GPPO it is the paper's surrogate gradient, not
 * the derivative of the reported loss value.
 */
import { KlearError } from "../../util/errors.js";
import { aggregationScales, weightedSum } from "./aggregate.js";
import { MAX_LOG_RATIO, Region, safeRatio, type TokenTerm } from "./clip.js";
import { type PolicyLossConfig, resolvePolicyLossConfig } from "./config.js";
import { klToken } from "./kl.js";
import {
  broadcastPerSequence,
  flattenMask,
  flattenTokens,
  type NumberList,
  rowViews,
  type TokenLayout,
  type TokenMask,
  type TokenValues,
  tokenLayout,
} from "./layout.js";
import { policyLossSpec } from "./registry.js";

// Plain module constants: reading the imported Region object in the token loop costs a binding lookup per token.
const REGION_INSIDE = Region.inside;
const REGION_LOW = Region.low;
const REGION_HIGH = Region.high;
const REGION_DUAL = Region.dual;
const LOG_RATIO_LIMIT = MAX_LOG_RATIO;

export interface PolicyLossInput {
  /** log π_θ of the sampled tokens (the values the model will backpropagate from). */
  logp: TokenValues;
  /** log π_old of the same tokens, recomputed by the training model before the update (spec §16.1). */
  oldLogp: TokenValues;
  /** One advantage per sequence, or one per token. */
  advantages: TokenValues;
  /** Loss mask; default every token. Masked tokens get exactly zero gradient and are never read. */
  mask?: TokenMask;
  /** Row lengths when the arrays are flat. */
  lengths?: NumberList;
  /** log π_ref, needed only when klCoeff > 0. */
  refLogp?: TokenValues;
  /** Per-token entropy of π_θ: logged, and with entropyCoeff ≠ 0 also part of the loss (see dEntropy). */
  entropy?: TokenValues;
  /** Active tokens in the whole optimizer mini-batch, for gradient accumulation over micro-batches. */
  globalTokenCount?: number;
  /** Non-empty sequences in the whole mini-batch (seq-mean-* aggregation), for the same reason. */
  globalSeqCount?: number;
  /** log-probs reported by the sampler that generated the tokens; needed only when tisCap is set. */
  rolloutLogp?: TokenValues;
  /** Per-token entropy of π_old, stored with oldLogp; needed only for entropyRatioClip (ERC). */
  oldEntropy?: TokenValues;
}

export interface PolicyLossMetrics {
  /** The aggregated policy-gradient term (value as the code reports it, spec §5.3). */
  pgLoss: number;
  /** The aggregated KL estimate against refLogp (before klCoeff); 0 when no refLogp. */
  klLoss: number;
  /** Mean entropy over active tokens; NaN when no entropy was given. */
  entropy: number;
  /** Fraction of active tokens clipped on the high side (A>0, ratio>1+ε_h; CISPO: any A). */
  clipFracHigh: number;
  /** Fraction of active tokens clipped on the low side (A<0, ratio<1−ε_l; CISPO: any A). */
  clipFracLow: number;
  /** Fraction of active tokens capped by dual-clip (A<0, ratio>c): zero gradient. */
  dualClipFrac: number;
  /** Fraction of active tokens in a clipped region that still get a bounded, non-zero gradient (GPPO's point). */
  boundedGradFrac: number;
  /** k1 estimate of KL(π_old‖π_θ): mean of log π_old − log π_θ. */
  approxKlK1: number;
  /** k3 estimate of KL(π_old‖π_θ): mean of δ − 1 − log δ (non-negative, low variance). */
  approxKlK3: number;
  /** Mean and max of the importance ratio the loss used (GSPO: the sequence ratio). */
  ratioMean: number;
  ratioMax: number;
  /** Active tokens and non-empty sequences in this call, to weight metrics across micro-batches. */
  tokens: number;
  sequences: number;
  /** Mean truncated-IS weight min(π_old/π_rollout, tisCap) over active tokens; 1 when TIS is off. */
  tisWeightMean: number;
  /** Fraction of active tokens whose policy gradient ERC removed; 0 when ERC is off. */
  entropyRatioClipFrac: number;
}

export interface PolicyLossResult {
  /** Total loss: aggregated policy term + klCoeff·KL − entropyCoeff·entropy. */
  loss: number;
  /** dLoss/dlogp per token, flat in input token order (zero on masked tokens). */
  dLogp: Float64Array;
  /** The same gradient as zero-copy views, one per row. */
  dLogpRows: Float64Array[];
  /** dLoss/dentropy per token when entropyCoeff ≠ 0 and entropy was given, for the model's entropy backward. */
  dEntropy?: Float64Array;
  metrics: PolicyLossMetrics;
}

export type PolicyLossFn = (input: PolicyLossInput) => PolicyLossResult;

function requireFinite(values: Float64Array, mask: Uint8Array, layout: TokenLayout, field: string): void {
  for (let k = 0; k < values.length; k++) {
    if (mask[k] && !Number.isFinite(values[k])) {
      let row = 0;
      while (layout.offsets[row + 1] <= k) row++;
      throw new KlearError(
        "NON_FINITE_INPUT",
        `${field}[${row}][${k - layout.offsets[row]}] = ${values[k]} on an unmasked token`,
        `check the model's log-probs and the advantages for this row, or mask the token out`,
      );
    }
  }
}

/** Per-row sequence ratio exp(mean_t(logp − oldLogp)) over active tokens (GSPO), broadcast to tokens. */
function sequenceRatios(
  logp: Float64Array,
  oldLogp: Float64Array,
  mask: Uint8Array,
  layout: TokenLayout,
): Float64Array {
  const out = new Float64Array(layout.tokens);
  for (let i = 0; i < layout.rows; i++) {
    let sum = 0;
    let n = 0;
    for (let k = layout.offsets[i]; k < layout.offsets[i + 1]; k++) {
      if (!mask[k]) continue;
      sum += logp[k] - oldLogp[k];
      n++;
    }
    out.fill(n > 0 ? safeRatio(sum / n) : 1, layout.offsets[i], layout.offsets[i + 1]);
  }
  return out;
}

/** Detached per-token min(exp(oldLogp − rolloutLogp), cap), or null when truncated IS is off. */
function truncatedIsWeights(
  input: PolicyLossInput,
  cap: number | null,
  oldLogp: Float64Array,
  mask: Uint8Array,
  layout: TokenLayout,
): Float64Array | null {
  if (cap === null) return null;
  if (input.rolloutLogp === undefined) {
    throw new KlearError(
      "MISSING_INPUT",
      `tisCap = ${cap} but no rolloutLogp was given`,
      "pass the sampler's log-probs of the same tokens as rolloutLogp, or set tisCap to null",
    );
  }
  const rollout = flattenTokens(input.rolloutLogp, layout, "rolloutLogp");
  requireFinite(rollout, mask, layout, "rolloutLogp");
  const weights = new Float64Array(layout.tokens);
  for (let k = 0; k < weights.length; k++) {
    if (mask[k]) weights[k] = Math.min(safeRatio(oldLogp[k] - rollout[k]), cap);
  }
  return weights;
}

/** 1 where ERC keeps the token's policy gradient (H_θ/H_old inside the open interval), or null when off. */
function entropyRatioKeep(
  input: PolicyLossInput,
  bounds: readonly [number, number] | null,
  mask: Uint8Array,
  layout: TokenLayout,
): Uint8Array | null {
  if (bounds === null) return null;
  if (input.entropy === undefined || input.oldEntropy === undefined) {
    throw new KlearError(
      "MISSING_INPUT",
      "entropyRatioClip is set but entropy or oldEntropy is missing",
      "store π_old's per-token entropy with the old log-probs and pass both entropy and oldEntropy",
    );
  }
  const entropy = flattenTokens(input.entropy, layout, "entropy");
  const oldEntropy = flattenTokens(input.oldEntropy, layout, "oldEntropy");
  requireFinite(oldEntropy, mask, layout, "oldEntropy");
  const keep = new Uint8Array(layout.tokens);
  for (let k = 0; k < keep.length; k++) {
    if (!mask[k]) continue;
    // +1e-8 on both sides as ERC does, so zero-entropy (deterministic) positions give a ratio of 1.
    const rho = (entropy[k] + 1e-8) / (oldEntropy[k] + 1e-8);
    keep[k] = rho > bounds[0] && rho < bounds[1] ? 1 : 0;
  }
  return keep;
}

/**
 * Builds a registered policy loss by name, e.g. `policyLoss("gppo", { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 })`.
 * Built-ins: gppo (β1, β2 general form; β1=β2=1 is the paper's), gppo-only-high, ppo-clip, dual-clip,
 * clip-higher, cispo, gspo; more via registerPolicyLoss. Throws ConfigError listing the valid choices on an
 * unknown name or option.
 */
export function policyLoss(name: string, cfg: PolicyLossConfig = {}): PolicyLossFn {
  const resolved = resolvePolicyLossConfig(name, cfg);
  const spec = policyLossSpec(name);
  const tokenRule = spec.tokenRule(resolved);
  const sequenceLevel = spec.sequenceLevel;

  return (input: PolicyLossInput): PolicyLossResult => {
    const layout = tokenLayout(input.logp, input.lengths, "logp");
    const mask = flattenMask(input.mask, layout);
    const logp = flattenTokens(input.logp, layout, "logp");
    const oldLogp = flattenTokens(input.oldLogp, layout, "oldLogp");
    const adv = broadcastPerSequence(input.advantages, layout, "advantages");
    requireFinite(logp, mask, layout, "logp");
    requireFinite(oldLogp, mask, layout, "oldLogp");
    requireFinite(adv, mask, layout, "advantages");

    const scales = aggregationScales(resolved.aggregation, mask, layout, {
      globalTokenCount: input.globalTokenCount,
      globalSeqCount: input.globalSeqCount,
      lengthDivisor: resolved.lengthDivisor,
      groupSequences: resolved.groupSequences,
    });
    const lossRatios = sequenceLevel ? sequenceRatios(logp, oldLogp, mask, layout) : null;
    const tis = truncatedIsWeights(input, resolved.tisCap, oldLogp, mask, layout);
    let tisSum = 0;
    const ercKeep = entropyRatioKeep(input, resolved.entropyRatioClip, mask, layout);
    let ercClipped = 0;

    const dLogp = new Float64Array(layout.tokens);
    const values = new Float64Array(layout.tokens);
    const term: TokenTerm = { value: 0, weight: 0, region: REGION_INSIDE };
    let active = 0;
    let high = 0;
    let low = 0;
    let dual = 0;
    let bounded = 0;
    let k1 = 0;
    let k3 = 0;
    let ratioSum = 0;
    let ratioMax = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < layout.tokens; k++) {
      if (!mask[k]) continue;
      active++;
      const logRatio = Math.min(LOG_RATIO_LIMIT, Math.max(-LOG_RATIO_LIMIT, logp[k] - oldLogp[k]));
      const tokenRatio = Math.exp(logRatio);
      k1 -= logRatio;
      k3 += tokenRatio - 1 - logRatio;
      const ratio = lossRatios === null ? tokenRatio : lossRatios[k];
      ratioSum += ratio;
      if (ratio > ratioMax) ratioMax = ratio;
      tokenRule(ratio, adv[k], term);
      const tisWeight = tis === null ? 1 : tis[k];
      tisSum += tisWeight;
      values[k] = term.value * tisWeight;
      let weight = term.weight * tisWeight;
      if (ercKeep !== null && !ercKeep[k]) {
        weight = 0;
        ercClipped++;
      }
      // `+ 0` turns −0 into +0, so a zero gradient compares equal to 0 everywhere.
      dLogp[k] = scales[k] * (-adv[k] * weight) + 0;
      if (term.region === REGION_HIGH) high++;
      else if (term.region === REGION_LOW) low++;
      else if (term.region === REGION_DUAL) dual++;
      if ((term.region === REGION_HIGH || term.region === REGION_LOW) && term.weight !== 0) bounded++;
    }
    const pgLoss = weightedSum(values, scales, mask);

    let klLoss = 0;
    if (input.refLogp !== undefined) {
      const ref = flattenTokens(input.refLogp, layout, "refLogp");
      requireFinite(ref, mask, layout, "refLogp");
      const klValues = new Float64Array(layout.tokens);
      for (let k = 0; k < layout.tokens; k++) {
        if (!mask[k]) continue;
        const kl = klToken(resolved.klEstimator, logp[k], ref[k]);
        klValues[k] = kl.value;
        if (resolved.klCoeff !== 0) dLogp[k] += resolved.klCoeff * scales[k] * kl.grad;
      }
      klLoss = weightedSum(klValues, scales, mask);
    } else if (resolved.klCoeff !== 0) {
      throw new KlearError(
        "MISSING_INPUT",
        `klCoeff = ${resolved.klCoeff} but no refLogp was given`,
        "pass refLogp (the reference policy's log-probs of the same tokens), or set klCoeff to 0",
      );
    }

    let entropyMean = Number.NaN;
    let entropyAgg = 0;
    let dEntropy: Float64Array | undefined;
    if (input.entropy !== undefined) {
      const entropy = flattenTokens(input.entropy, layout, "entropy");
      requireFinite(entropy, mask, layout, "entropy");
      let sum = 0;
      for (let k = 0; k < layout.tokens; k++) if (mask[k]) sum += entropy[k];
      entropyMean = active > 0 ? sum / active : 0;
      entropyAgg = weightedSum(entropy, scales, mask);
      if (resolved.entropyCoeff !== 0) {
        dEntropy = new Float64Array(layout.tokens);
        for (let k = 0; k < layout.tokens; k++) if (mask[k]) dEntropy[k] = -resolved.entropyCoeff * scales[k];
      }
    } else if (resolved.entropyCoeff !== 0) {
      throw new KlearError(
        "MISSING_INPUT",
        `entropyCoeff = ${resolved.entropyCoeff} but no entropy was given`,
        "pass the per-token entropy of π_θ, or set entropyCoeff to 0",
      );
    }

    let sequences = 0;
    for (let i = 0; i < layout.rows; i++) {
      for (let k = layout.offsets[i]; k < layout.offsets[i + 1]; k++) {
        if (mask[k]) {
          sequences++;
          break;
        }
      }
    }
    const frac = (n: number) => (active > 0 ? n / active : 0);
    return {
      loss: pgLoss + resolved.klCoeff * klLoss - resolved.entropyCoeff * entropyAgg,
      dLogp,
      dLogpRows: rowViews(dLogp, layout),
      ...(dEntropy === undefined ? {} : { dEntropy }),
      metrics: {
        pgLoss,
        klLoss,
        entropy: entropyMean,
        clipFracHigh: frac(high),
        clipFracLow: frac(low),
        dualClipFrac: frac(dual),
        boundedGradFrac: frac(bounded),
        approxKlK1: frac(k1),
        approxKlK3: frac(k3),
        ratioMean: frac(ratioSum),
        ratioMax: active > 0 ? ratioMax : 0,
        tokens: active,
        sequences,
        tisWeightMean: active > 0 ? tisSum / active : 1,
        entropyRatioClipFrac: frac(ercClipped),
      },
    };
  };
}
