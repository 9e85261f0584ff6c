import type { Qwen3Batch } from "../model/qwen3.js";
import type { TrainingSequence } from "./types.js";

/** Training sequences packed into one right-padded batch, and where each response's tokens sit in it. */
export interface PackedSequences {
  batch: Qwen3Batch;
  /** Flat index in [batchSize·seqLen] of each row's first response position. */
  starts: number[];
  /** Response length of each row. */
  lengths: number[];
}

/**
 * Right-padded prompt+response rows. Position t predicts token t+1, so only the positions predicting a
 * response token carry a target (the last prompt token predicts the first response token).
 */
export function packSequences(seqs: readonly TrainingSequence[], padId: number): PackedSequences {
  const seqLen = Math.max(...seqs.map((s) => s.promptTokens.length + s.responseTokens.length - 1));
  const B = seqs.length;
  const tokens = new Int32Array(B * seqLen).fill(padId);
  const targets = new Int32Array(B * seqLen).fill(-1);
  const rowLengths = new Int32Array(B);
  const starts: number[] = [];
  const lengths: number[] = [];
  seqs.forEach((s, b) => {
    const P = s.promptTokens.length;
    const ids = [...s.promptTokens, ...s.responseTokens];
    const L = ids.length - 1;
    rowLengths[b] = L;
    for (let t = 0; t < L; t++) tokens[b * seqLen + t] = ids[t];
    for (let t = P - 1; t < L; t++) targets[b * seqLen + t] = ids[t + 1];
    starts.push(b * seqLen + P - 1);
    lengths.push(s.responseTokens.length);
  });
  return { batch: { tokens, targets, batchSize: B, seqLen, lengths: rowLengths }, starts, lengths };
}

/** Row `row`'s response values out of a flat [batchSize·seqLen] array. */
export function gatherResponse(values: Float32Array, packed: PackedSequences, row: number): Float64Array {
  const out = new Float64Array(packed.lengths[row]);
  const s = packed.starts[row];
  for (let j = 0; j < out.length; j++) out[j] = values[s + j];
  return out;
}

/** The inverse of `gatherResponse` for every row: per-response values back to their [batchSize·seqLen] positions. */
export function scatterResponses(rows: readonly Float64Array[], packed: PackedSequences): Float32Array {
  const out = new Float32Array(packed.batch.batchSize * packed.batch.seqLen);
  packed.starts.forEach((s, r) => {
    const v = rows[r];
    for (let j = 0; j < packed.lengths[r]; j++) out[s + j] = v[j];
  });
  return out;
}
