/**
 * The SFT data plan: which rows each epoch draws (mixing weights), how they are packed into sequences of at
 * most `maxTokens` (first-fit decreasing inside a window of the shuffled rows, so padding stays low while the
 * order stays random), and the model batches built from packed sequences (one segment per row: no attention
 * across rows, RoPE positions restart per row). Everything is a pure function of the seed, so a resumed run
 * rebuilds the same plan and continues at its step.
 */
import type { Qwen3Batch } from "../model/qwen3.js";
import { Rng } from "../util/rng.js";

/** Rows by index into the example list, per source, with the source's mixing weight. */
export interface WeightedSource {
  indexes: readonly number[];
  weight: number;
}

function shuffleInPlace<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/** A seed for one named random stream of the run (epoch order, mixing draw, bin order). */
function streamSeed(seed: number, stream: number, epoch: number): number {
  return (
    (Math.imul(seed ^ 0x5f3759df, 0x9e3779b1) +
      Math.imul(stream + 1, 0x85ebca6b) +
      Math.imul(epoch + 1, 0xc2b2ae35)) >>>
    0
  );
}

/**
 * The rows of one epoch, shuffled: each source contributes ⌊weight⌋ full copies of its rows plus a seeded
 * draw of round(frac(weight) · size) more, so weights 1/0 select sources and 0.5 halves one.
 */
export function epochRows(
  sources: readonly WeightedSource[],
  seed: number,
  epoch: number,
  shuffle = true,
): number[] {
  const out: number[] = [];
  sources.forEach((s, k) => {
    const whole = Math.floor(s.weight);
    for (let c = 0; c < whole; c++) out.push(...s.indexes);
    const extra = Math.round((s.weight - whole) * s.indexes.length);
    if (extra > 0) {
      const draw = shuffleInPlace([...s.indexes], new Rng(streamSeed(seed, 10 + k, epoch)));
      out.push(...draw.slice(0, extra));
    }
  });
  return shuffle ? shuffleInPlace(out, new Rng(streamSeed(seed, 1, epoch))) : out;
}

/**
 * Packs rows (in the given order) into sequences of at most `maxTokens` tokens: first-fit decreasing inside
 * each window of `window` rows, then the sequences are shuffled (unless `shuffle` is false). Without packing
 * each row is its own sequence.
 * Every row length must already be ≤ maxTokens.
 */
export function packRows(
  order: readonly number[],
  lengthOf: (row: number) => number,
  opts: {
    maxTokens: number;
    packing: boolean;
    window: number;
    seed: number;
    epoch: number;
    shuffle?: boolean;
  },
): number[][] {
  if (!opts.packing) return order.map((r) => [r]);
  const bins: number[][] = [];
  for (let w = 0; w < order.length; w += opts.window) {
    const rows = order.slice(w, w + opts.window);
    // Stable by position so equal lengths keep the shuffled order.
    const sorted = rows.map((r, i) => ({ r, i, n: lengthOf(r) })).sort((a, b) => b.n - a.n || a.i - b.i);
    const open: { rows: number[]; free: number }[] = [];
    for (const { r, n } of sorted) {
      let bin = open.find((b) => b.free >= n);
      if (!bin) {
        bin = { rows: [], free: opts.maxTokens };
        open.push(bin);
      }
      bin.rows.push(r);
      bin.free -= n;
    }
    for (const b of open) bins.push(b.rows);
  }
  return opts.shuffle === false ? bins : shuffleInPlace(bins, new Rng(streamSeed(opts.seed, 2, opts.epoch)));
}

/** Tokens and loss mask of one row (what `SftExample` carries). */
export interface PackableRow {
  ids: Int32Array;
  lossMask: Uint8Array;
}

/** A model batch of packed sequences, and what it holds. */
export interface SftBatch {
  batch: Qwen3Batch;
  /** Positions whose target carries loss. */
  lossTokens: number;
  /** Real (non-padding) positions. */
  realTokens: number;
}

/**
 * One batch of packed sequences, right-padded to the longest: position p of a row predicts the row's token p+1
 * when that token is in the loss mask; each row is its own segment.
 */
export function buildBatch(sequences: readonly (readonly PackableRow[])[], padId: number): SftBatch {
  const lens = sequences.map((rows) => rows.reduce((n, r) => n + r.ids.length, 0));
  const B = sequences.length;
  const T = Math.max(1, ...lens);
  const tokens = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(-1);
  const segments = new Int32Array(B * T);
  const lengths = new Int32Array(lens);
  let lossTokens = 0;
  let realTokens = 0;
  sequences.forEach((rows, b) => {
    let at = b * T;
    rows.forEach((row, s) => {
      const n = row.ids.length;
      tokens.set(row.ids, at);
      segments.fill(s, at, at + n);
      for (let p = 0; p + 1 < n; p++) {
        if (row.lossMask[p + 1]) {
          targets[at + p] = row.ids[p + 1];
          lossTokens++;
        }
      }
      at += n;
      realTokens += n;
    });
    // Padding is a segment of its own, so it never attends into the last row.
    segments.fill(rows.length, at, (b + 1) * T);
  });
  return { batch: { tokens, targets, batchSize: B, seqLen: T, lengths, segments }, lossTokens, realTokens };
}
