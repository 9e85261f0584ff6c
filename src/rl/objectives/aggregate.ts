/**
 * The one loss aggregation every objective goes through: no loss normalises itself. Aggregation is
 * linear in the per-token values, so it is fully described by one weight per token (its "scale");
 * the loss is Σ scale·value and the chain rule multiplies each token's gradient by the same scale.
 */
import { ConfigError, checkChoice } from "../../util/errors.js";
import {
  flattenMask,
  flattenTokens,
  type TokenLayout,
  type TokenMask,
  type TokenValues,
  tokenLayout,
} from "./layout.js";

export const AGGREGATION_MODES = [
  "token-mean",
  "seq-mean-token-sum",
  "seq-mean-token-mean",
  "seq-mean-token-sum-norm",
  "seq-group-token-mean",
] as const;
export type AggregationMode = (typeof AGGREGATION_MODES)[number];

export interface AggregationOptions {
  /**
   * Active tokens in the whole optimizer mini-batch (token-mean). Pass it when the mini-batch is split
   * into micro-batches for gradient accumulation: summing the micro-batch losses then gives exactly the
   * whole-batch loss and gradient. Default: the active tokens of this call.
   */
  globalTokenCount?: number;
  /**
   * Sequences with at least one active token in the whole mini-batch (the seq-mean-* modes), for the
   * same reason. Default: those of this call. A row whose mask is empty is not counted, so masking a
   * response out (e.g. the overlong filter) is the same as dropping it.
   */
  globalSeqCount?: number;
  /** seq-mean-token-sum-norm's constant divisor (Dr.GRPO's max response length; keep it fixed for a run). */
  lengthDivisor?: number;
  /**
   * seq-group-token-mean: how many consecutive non-empty sequences share one token mean (default 1).
   * The authors' verl runs take one token mean per data-parallel rank's micro-batch: 2 responses per
   * rank in the math recipe (128 per mini-batch over 64 ranks), 4 in the code recipe (docs/objectives.md).
   */
  groupSequences?: number;
  /** Row lengths when values and mask are flat. */
  lengths?: ArrayLike<number>;
}

/** Checks an aggregation name and the options it needs. */
export function checkAggregation(
  mode: string,
  lengthDivisor: number | undefined,
  where = "aggregation",
  groupSequences?: number,
): AggregationMode {
  const checked = checkChoice(where, mode, AGGREGATION_MODES);
  if (groupSequences !== undefined && !(Number.isInteger(groupSequences) && groupSequences >= 1)) {
    throw new ConfigError(
      `groupSequences = ${groupSequences} is not a whole number ≥ 1`,
      "use the responses per token mean, e.g. 2 (the authors' math runs: responses per data-parallel rank)",
    );
  }
  if (checked === "seq-mean-token-sum-norm") {
    if (lengthDivisor === undefined || !(lengthDivisor > 0) || !Number.isFinite(lengthDivisor)) {
      throw new ConfigError(
        `seq-mean-token-sum-norm needs lengthDivisor > 0 (got ${lengthDivisor})`,
        "set lengthDivisor to the fixed maximum response length of the run, e.g. 32768",
      );
    }
  }
  return checked;
}

function checkCount(name: string, value: number | undefined, local: number): number {
  if (value === undefined) return local;
  if (!Number.isFinite(value) || value < 0) {
    throw new ConfigError(`${name} = ${value} is not a non-negative count`, `pass the mini-batch's ${name}`);
  }
  if (value < local) {
    throw new ConfigError(
      `${name} = ${value} is smaller than this micro-batch's own count ${local}`,
      `${name} must count the whole mini-batch, which includes this micro-batch`,
    );
  }
  return value;
}

/**
 * Per-token aggregation weights (the scale), zero on masked tokens. With no active token (or a zero
 * global count) every scale is 0: an empty batch contributes nothing instead of NaN.
 */
export function aggregationScales(
  mode: AggregationMode,
  mask: Uint8Array,
  layout: TokenLayout,
  opts: AggregationOptions = {},
): Float64Array {
  const scales = new Float64Array(layout.tokens);
  const { offsets, rows } = layout;
  if (mode === "token-mean") {
    let active = 0;
    for (let k = 0; k < mask.length; k++) active += mask[k];
    const n = checkCount("globalTokenCount", opts.globalTokenCount, active);
    if (n === 0) return scales;
    for (let k = 0; k < mask.length; k++) if (mask[k]) scales[k] = 1 / n;
    return scales;
  }
  if (mode === "seq-mean-token-sum-norm") {
    const divisor = checkAggregationDivisor(opts.lengthDivisor);
    for (let k = 0; k < mask.length; k++) if (mask[k]) scales[k] = 1 / divisor;
    return scales;
  }
  const rowActive = new Int32Array(rows);
  let nonEmpty = 0;
  for (let i = 0; i < rows; i++) {
    let n = 0;
    for (let k = offsets[i]; k < offsets[i + 1]; k++) n += mask[k];
    rowActive[i] = n;
    if (n > 0) nonEmpty++;
  }
  const seqs = checkCount("globalSeqCount", opts.globalSeqCount, nonEmpty);
  if (seqs === 0) return scales;
  if (mode === "seq-group-token-mean") {
    groupTokenMeanScales(scales, mask, layout, rowActive, seqs, opts.groupSequences ?? 1);
    return scales;
  }
  for (let i = 0; i < rows; i++) {
    if (rowActive[i] === 0) continue;
    const s = mode === "seq-mean-token-sum" ? 1 / seqs : 1 / (seqs * rowActive[i]);
    for (let k = offsets[i]; k < offsets[i + 1]; k++) if (mask[k]) scales[k] = s;
  }
  return scales;
}

/**
 * Consecutive non-empty rows in groups of `size`; each group's tokens share one token mean, weighted by
 * the group's share of the sequences: L = Σ_G (|G|/N_seq)·(Σ_{t∈G} ℓ / T_G), as verl's per-micro-batch
 * token-mean scaled by the micro-batch's sequence share. size 1 = seq-mean-token-mean; size ≥ N = token-mean.
 */
function groupTokenMeanScales(
  scales: Float64Array,
  mask: Uint8Array,
  layout: TokenLayout,
  rowActive: Int32Array,
  seqs: number,
  size: number,
): void {
  const { offsets, rows } = layout;
  let first = 0;
  while (first < rows) {
    let last = first;
    let members = 0;
    let tokens = 0;
    while (last < rows && members < size) {
      if (rowActive[last] > 0) {
        members++;
        tokens += rowActive[last];
      }
      last++;
    }
    const s = members / (seqs * tokens || 1);
    for (let k = offsets[first]; k < offsets[last]; k++) if (mask[k]) scales[k] = s;
    first = last;
  }
}

function checkAggregationDivisor(divisor: number | undefined): number {
  checkAggregation("seq-mean-token-sum-norm", divisor);
  return divisor as number;
}

/** Σ scale·value over active tokens (masked values are never read, so NaN padding is harmless). */
export function weightedSum(values: Float64Array, scales: Float64Array, mask: Uint8Array): number {
  let sum = 0;
  for (let k = 0; k < values.length; k++) if (mask[k]) sum += scales[k] * values[k];
  return sum;
}

/**
 * Aggregates per-token values into one scalar, e.g. `aggregate("token-mean", lossRows, maskRows)`.
 * Same shapes as policyLoss: rows, or flat with `opts.lengths`.
 */
export function aggregate(
  mode: string,
  perTokenValues: TokenValues,
  mask?: TokenMask,
  opts: AggregationOptions = {},
): number {
  const checked = checkAggregation(mode, opts.lengthDivisor, "aggregation", opts.groupSequences);
  const layout = tokenLayout(perTokenValues, opts.lengths, "perTokenValues");
  const values = flattenTokens(perTokenValues, layout, "perTokenValues");
  const flatMask = flattenMask(mask, layout);
  return weightedSum(values, aggregationScales(checked, flatMask, layout, opts), flatMask);
}

/**
 * Active tokens and non-empty sequences of a mask: sum these over the micro-batches of one optimizer
 * mini-batch and pass them as globalTokenCount / globalSeqCount to every micro-batch's loss.
 */
export function lossMaskCounts(
  mask: TokenMask,
  lengths?: ArrayLike<number>,
): { tokens: number; sequences: number } {
  const layout = tokenLayout(mask as TokenValues, lengths, "mask");
  const flat = flattenMask(mask, layout);
  let tokens = 0;
  let sequences = 0;
  for (let i = 0; i < layout.rows; i++) {
    let n = 0;
    for (let k = layout.offsets[i]; k < layout.offsets[i + 1]; k++) n += flat[k];
    tokens += n;
    if (n > 0) sequences++;
  }
  return { tokens, sequences };
}
