import { ConfigError, KlearError } from "../util/errors.js";

/** A batch of right-padded sequences, row-major [batchSize, seqLen]. */
export interface Qwen3Batch {
  tokens: Int32Array;
  /**
   * The token whose log-probability is wanted at each position (usually tokens shifted left).
   * A negative target masks the position: its logp and entropy are 0 and its gradient is ignored.
   */
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Real length of each sequence; positions at or past it are padding (masked like a negative target). */
  lengths?: Int32Array;
  /**
   * Packing: a document id per position, [batchSize·seqLen]. A run of equal ids is one document: its
   * tokens attend only to earlier tokens of the same run, and RoPE positions restart at 0 at its start.
   */
  segments?: Int32Array;
}

/** Where a batch's tokens sit, derived once per forward and kept on the tape. */
export interface BatchLayout {
  batchSize: number;
  seqLen: number;
  rows: number;
  /** Targets with padding (past `lengths`) folded in as -1. */
  targets: Int32Array;
  /** RoPE position of each row (restarting per packed document). */
  positions: Int32Array;
  lengths: Int32Array | null;
  /** Per row, where its packed document starts in its sequence (null without `segments`). */
  segStart: Int32Array | null;
}

export function checkTokenRange(tokens: Int32Array, vocab: number, what: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(t >= 0 && t < vocab)) {
      throw new KlearError(
        "MODEL_TOKEN_RANGE",
        `${what}[${i}] = ${t} is outside the vocabulary [0, ${vocab})`,
        "use a tokenizer that matches the model's vocab_size",
      );
    }
  }
}

/** Validates a batch and fills `out` (arrays of batchSize·seqLen) with its layout. */
export function layoutBatch(
  batch: Qwen3Batch,
  vocab: number,
  out: { targets: Int32Array; positions: Int32Array },
): BatchLayout {
  const { batchSize: B, seqLen: T } = batch;
  const N = B * T;
  if (!(Number.isInteger(B) && B > 0 && Number.isInteger(T) && T > 0)) {
    throw new ConfigError(
      `logprobs: batchSize ${B} and seqLen ${T} must be positive integers`,
      "fix the batch",
    );
  }
  if (batch.tokens.length !== N || batch.targets.length !== N) {
    throw new ConfigError(
      `logprobs: tokens (${batch.tokens.length}) and targets (${batch.targets.length}) must both hold batchSize·seqLen = ${N}`,
      "pass row-major [batchSize, seqLen] arrays",
    );
  }
  if (batch.segments && batch.segments.length !== N) {
    throw new ConfigError(
      `logprobs: segments has ${batch.segments.length} entries, expected batchSize·seqLen = ${N}`,
      "pass one document id per position",
    );
  }
  if (batch.lengths && batch.lengths.length !== B) {
    throw new ConfigError(
      `logprobs: lengths has ${batch.lengths.length} entries, expected ${B}`,
      "one per sequence",
    );
  }
  const lengths = batch.lengths ?? null;
  if (lengths) {
    for (let b = 0; b < B; b++) {
      if (!(lengths[b] >= 0 && lengths[b] <= T)) {
        throw new ConfigError(
          `logprobs: lengths[${b}] = ${lengths[b]} is outside [0, ${T}]`,
          "fix the lengths",
        );
      }
    }
  }
  checkTokenRange(batch.tokens, vocab, "tokens");
  const { targets, positions } = out;
  for (let b = 0; b < B; b++) {
    const len = lengths ? lengths[b] : T;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      const tg = batch.targets[i];
      if (t < len && tg >= vocab) {
        throw new KlearError(
          "MODEL_TOKEN_RANGE",
          `targets[${i}] = ${tg} is outside the vocabulary [0, ${vocab})`,
          "use a tokenizer that matches the model's vocab_size",
        );
      }
      targets[i] = t < len && tg >= 0 ? tg : -1;
      positions[i] = t;
    }
  }
  let segStart: Int32Array | null = null;
  if (batch.segments) {
    const seg = batch.segments;
    segStart = new Int32Array(N);
    for (let b = 0; b < B; b++) {
      let start = 0;
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        if (t > 0 && seg[i] !== seg[i - 1]) start = t;
        segStart[i] = start;
        positions[i] = t - start;
      }
    }
  }
  return {
    batchSize: B,
    seqLen: T,
    rows: N,
    targets,
    positions,
    lengths: lengths ? Int32Array.from(lengths) : null,
    segStart,
  };
}
