/**
 * Token-mean NLL over packed SFT sequences (assistant-only loss): one optimizer step's gradients, accumulated
 * micro-batch by micro-batch, and the held-out loss, packed as in training.
 */
import type { TrainingSequence } from "../backend/types.js";
import type { Qwen3Model } from "../model/qwen3.js";
import type { SftConfig } from "./config.js";
import type { SftExample } from "./data.js";
import { buildBatch, packRows } from "./pack.js";

/** Tokens of a row that carry loss (position 0 is never predicted). */
export function lossTokensOf(e: SftExample): number {
  let n = 0;
  for (let p = 1; p < e.lossMask.length; p++) n += e.lossMask[p];
  return n;
}

/** A step's packed sequences, longest first: similar lengths share a micro-batch; the order does not change the sum. */
export function bySizeDescending(sequences: readonly (readonly SftExample[])[]): (readonly SftExample[])[] {
  return [...sequences].sort(
    (a, b) => b.reduce((n, e) => n + e.ids.length, 0) - a.reduce((n, e) => n + e.ids.length, 0),
  );
}

/** The held-out rows in the groups one forward scores: packed as in training, `microSequences` sequences a group. */
export function heldOutGroups(rows: readonly SftExample[], config: SftConfig): SftExample[][][] {
  const bins = packRows(
    rows.map((_, i) => i),
    (r) => rows[r].ids.length,
    { ...config.pack, seed: config.seed, epoch: -1 },
  );
  const groups: SftExample[][][] = [];
  for (let i = 0; i < bins.length; i += config.train.microSequences) {
    groups.push(bins.slice(i, i + config.train.microSequences).map((b) => b.map((r) => rows[r])));
  }
  return groups;
}

/**
 * One row as a training sequence of the backend seam: the "prompt" runs up to the first trained token, the
 * "response" from there to the last trained token (later tokens cannot change earlier log-probs), and
 * `mask` marks which response tokens carry loss (untrained turns between assistant turns stay at 0). Null
 * for a row with no trained token.
 */
export function sftTrainingRow(e: SftExample): { sequence: TrainingSequence; mask: Uint8Array } | null {
  let first = -1;
  let last = -1;
  for (let p = 1; p < e.lossMask.length; p++) {
    if (e.lossMask[p]) {
      if (first < 0) first = p;
      last = p;
    }
  }
  if (first < 0) return null;
  const ids = Array.from(e.ids);
  return {
    sequence: { promptTokens: ids.slice(0, first), responseTokens: ids.slice(first, last + 1) },
    mask: e.lossMask.slice(first, last + 1),
  };
}

/**
 * The token-mean NLL's coefficient on each response token's ∇log π (what the seam's losses return as
 * dLogp): L = −(1/N) Σ_t mask_t log π_t over the step's N loss tokens, so c_t = −mask_t / N.
 */
export function sftCoefficients(mask: Uint8Array, lossTokens: number): Float64Array {
  const c = new Float64Array(mask.length);
  for (let j = 0; j < mask.length; j++) if (mask[j]) c[j] = -1 / lossTokens;
  return c;
}

/** Σ_t −mask_t log π_t of one row (its share of the step's NLL before dividing by N). */
export function maskedNll(mask: Uint8Array, logp: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < mask.length; j++) if (mask[j]) s -= logp[j];
  return s;
}

/** Token-mean NLL of the held-out rows (packed as in training, in micro-batches). */
export function heldOutLoss(
  model: Qwen3Model,
  rows: readonly SftExample[],
  config: SftConfig,
  padId: number,
): number | null {
  if (rows.length === 0) return null;
  let sum = 0;
  let count = 0;
  for (const group of heldOutGroups(rows, config)) {
    const { batch } = buildBatch(group, padId);
    const { logp } = model.logprobs(batch, { recompute: config.train.recompute });
    for (let k = 0; k < logp.length; k++) {
      if (batch.targets[k] >= 0) {
        sum -= logp[k];
        count++;
      }
    }
  }
  return count > 0 ? sum / count : null;
}

/**
 * One optimizer step: token-mean NLL over all of the step's sequences, accumulated micro-batch by micro-batch
 * with the step's total loss-token count as the divisor, so the gradient is the same for any split.
 */
export function sftStepGradients(
  model: Qwen3Model,
  sequences: readonly (readonly SftExample[])[],
  microSequences: number,
  padId: number,
  opts: { recompute?: boolean } = {},
): { loss: number; lossTokens: number; realTokens: number; computedTokens: number } {
  const lossTokens = sequences.reduce((n, seq) => n + seq.reduce((m, e) => m + lossTokensOf(e), 0), 0);
  const bySize = bySizeDescending(sequences);
  model.zeroGrad();
  let loss = 0;
  let realTokens = 0;
  let computedTokens = 0;
  for (let i = 0; i < bySize.length; i += microSequences) {
    const built = buildBatch(bySize.slice(i, i + microSequences), padId);
    if (built.lossTokens === 0) continue;
    loss += model.lossAndBackward(built.batch, { tokenCount: lossTokens, recompute: opts.recompute }).loss;
    realTokens += built.realTokens;
    computedTokens += built.batch.batchSize * built.batch.seqLen;
  }
  return { loss, lossTokens, realTokens, computedTokens };
}
