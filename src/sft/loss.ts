/**
 * Token-mean NLL over packed SFT sequences (assistant-only loss): one optimizer step's gradients, accumulated
 * micro-batch by micro-batch, and the held-out loss, packed as in training.
 */
import type { Qwen3Model } from "../model/qwen3.js";
import type { SftConfig } from "./config.js";
import type { SftExample } from "./data.js";
import { buildBatch, packRows } from "./pack.js";

function lossTokensOf(e: SftExample): number {
  let n = 0;
  for (let p = 1; p < e.lossMask.length; p++) n += e.lossMask[p];
  return n;
}

/** Token-mean NLL of the held-out rows (packed as in training, in micro-batches). */
export function heldOutLoss(
  model: Qwen3Model,
  rows: readonly SftExample[],
  config: SftConfig,
  padId: number,
): number | null {
  if (rows.length === 0) return null;
  const bins = packRows(
    rows.map((_, i) => i),
    (r) => rows[r].ids.length,
    { ...config.pack, seed: config.seed, epoch: -1 },
  );
  let sum = 0;
  let count = 0;
  for (let i = 0; i < bins.length; i += config.train.microSequences) {
    const { batch } = buildBatch(
      bins.slice(i, i + config.train.microSequences).map((b) => b.map((r) => rows[r])),
      padId,
    );
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
  // Similar lengths share a micro-batch, so little is padded; the order does not change the sum.
  const bySize = [...sequences].sort(
    (a, b) => b.reduce((n, e) => n + e.ids.length, 0) - a.reduce((n, e) => n + e.ids.length, 0),
  );
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
