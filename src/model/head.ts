import type { Backend } from "../engine/backend.js";
import type { Parameter } from "../engine/optim.js";
import type { Buffers } from "./layer.js";

/**
 * The output layer of training: final-normed hidden rows → logits / T → log-softmax gathered at the
 * targets (with entropy). Only rows with a target (not masked, not padding) are projected: prompt and
 * padding rows never meet the vocabulary-sized product. A logits matrix is held one chunk of rows at
 * a time once the whole would pass `LogitsMemory.keepFloats`, so memory stays flat at 151,936-way
 * vocabularies and long sequences.
 */

/**
 * Logits of a training batch up to `keepFloats` are kept whole between forward and backward (default
 * 128 MiB). Past it (large vocabularies × long batches) they are computed `chunkFloats` at a time:
 * `backward` then recomputes each chunk (one extra lm_head product), while `lossAndBackward`, which
 * knows its upstream gradient up front, runs each chunk's forward and backward together (no extra
 * product, still one chunk of logits).
 */
export interface LogitsMemory {
  keepFloats: number;
  chunkFloats: number;
}

export const DEFAULT_LOGITS_MEMORY: LogitsMemory = { keepFloats: 1 << 25, chunkFloats: 1 << 25 };

/** Rows per logits chunk: all of them while they fit `keepFloats`. */
export function chunkRows(rows: number, vocab: number, mem: LogitsMemory): number {
  if (rows * vocab <= mem.keepFloats) return rows;
  return Math.max(1, Math.min(rows, Math.floor(mem.chunkFloats / vocab)));
}

export interface HeadTape {
  rows: number;
  vocab: number;
  hidden: number;
  /** Final-normed hidden rows [rows, hidden]. */
  xn: Float32Array;
  /** Targets per row; negative = no target (the row is skipped). */
  targets: Int32Array;
  /** Per row: logp and entropy (0 where skipped). */
  logp: Float32Array;
  entropy: Float32Array | null;
  /** 1 / sampling temperature the logits are divided by. */
  invTemp: number;
  memory: LogitsMemory;
  buf: Buffers;
  ints: (name: string, n: number) => Int32Array;
  /** Set by `headForward`: the rows with a target, compacted (all rows when none is masked). */
  live: LiveRows | null;
}

interface LiveRows {
  count: number;
  /** Row index of each live row (null when every row is live: the compact arrays are the full ones). */
  index: Int32Array | null;
  xn: Float32Array;
  targets: Int32Array;
  lse: Float32Array;
  logp: Float32Array;
  entropy: Float32Array | null;
  chunk: number;
  logits: Float32Array;
}

function gatherLive(t: HeadTape): LiveRows {
  const { rows: N, hidden: D, vocab: V } = t;
  let count = 0;
  for (let i = 0; i < N; i++) if (t.targets[i] >= 0) count++;
  const chunk = chunkRows(Math.max(count, 1), V, t.memory);
  const logits = t.buf("logits", chunk * V);
  const lse = t.buf("headLse", Math.max(count, 1));
  if (count === N) {
    return {
      count,
      index: null,
      xn: t.xn,
      targets: t.targets,
      lse,
      logp: t.logp,
      entropy: t.entropy,
      chunk,
      logits,
    };
  }
  const index = t.ints("headLive", count);
  const xn = t.buf("headXn", count * D);
  const targets = t.ints("headTargets", count);
  let m = 0;
  for (let i = 0; i < N; i++) {
    if (t.targets[i] < 0) continue;
    index[m] = i;
    targets[m] = t.targets[i];
    xn.set(t.xn.subarray(i * D, (i + 1) * D), m * D);
    m++;
  }
  return {
    count,
    index,
    xn,
    targets,
    lse,
    logp: t.buf("headLogp", count),
    entropy: t.entropy ? t.buf("headEntropy", count) : null,
    chunk,
    logits,
  };
}

/** Copies compact per-row values to their rows (0 elsewhere). */
function scatterRows(index: Int32Array, compact: Float32Array, full: Float32Array, width: number): void {
  full.fill(0);
  for (let m = 0; m < index.length; m++)
    full.set(compact.subarray(m * width, (m + 1) * width), index[m] * width);
}

function gatherValues(index: Int32Array, full: Float32Array, compact: Float32Array): void {
  for (let m = 0; m < index.length; m++) compact[m] = full[index[m]];
}

interface HeadChunk {
  r0: number;
  rows: number;
  logits: Float32Array;
}

function chunks(L: LiveRows, vocab: number): HeadChunk[] {
  const out: HeadChunk[] = [];
  for (let r0 = 0; r0 < L.count; r0 += L.chunk) {
    const rows = Math.min(L.chunk, L.count - r0);
    out.push({ r0, rows, logits: L.logits.subarray(0, rows * vocab) });
  }
  return out;
}

function chunkLogits(be: Backend, t: HeadTape, L: LiveRows, head: Parameter, c: HeadChunk): void {
  const D = t.hidden;
  be.gemm(
    false,
    true,
    c.rows,
    t.vocab,
    D,
    t.invTemp,
    L.xn.subarray(c.r0 * D),
    D,
    head.data,
    D,
    0,
    c.logits,
    t.vocab,
  );
}

function chunkLogSoftmax(be: Backend, t: HeadTape, L: LiveRows, c: HeadChunk): void {
  const { r0, rows } = c;
  be.logSoftmaxGather(
    c.logits,
    L.targets.subarray(r0, r0 + rows),
    rows,
    t.vocab,
    L.logp.subarray(r0, r0 + rows),
    L.lse.subarray(r0, r0 + rows),
    L.entropy ? L.entropy.subarray(r0, r0 + rows) : null,
  );
}

/** dLogits (in place over the chunk's logits), then lm_head's gradient and the rows' dX (compact). */
function chunkBackward(
  be: Backend,
  t: HeadTape,
  L: LiveRows,
  head: Parameter,
  c: HeadChunk,
  dLogp: Float32Array,
  dEnt: Float32Array | null,
  dX: Float32Array,
): void {
  const { r0, rows, logits } = c;
  const V = t.vocab;
  const D = t.hidden;
  // Each logit is read before its gradient overwrites it.
  be.logSoftmaxGatherBackward(
    logits,
    L.targets.subarray(r0, r0 + rows),
    L.lse.subarray(r0, r0 + rows),
    L.entropy ? L.entropy.subarray(r0, r0 + rows) : null,
    dLogp.subarray(r0, r0 + rows),
    dEnt ? dEnt.subarray(r0, r0 + rows) : null,
    logits,
    rows,
    V,
  );
  const xn = L.xn.subarray(r0 * D);
  // logits = xn·Wᵀ / T, so both products carry the 1/T.
  be.gemm(true, false, V, D, rows, t.invTemp, logits, V, xn, D, 1, head.grad, D);
  be.gemm(false, false, rows, D, V, t.invTemp, logits, V, head.data, D, 0, dX.subarray(r0 * D), D);
}

function finishForward(t: HeadTape, L: LiveRows): void {
  if (!L.index) return;
  scatterRows(L.index, L.logp, t.logp, 1);
  if (t.entropy && L.entropy) scatterRows(L.index, L.entropy, t.entropy, 1);
}

/** Compact upstream gradients and the compact dX buffer (the full ones when every row is live). */
function compactGrads(
  t: HeadTape,
  L: LiveRows,
  dLogp: Float32Array,
  dEnt: Float32Array | null,
  dX: Float32Array,
) {
  if (!L.index) return { dl: dLogp, de: dEnt, dx: dX };
  const dl = t.buf("headDLogp", L.count);
  gatherValues(L.index, dLogp, dl);
  let de: Float32Array | null = null;
  if (dEnt) {
    de = t.buf("headDEnt", L.count);
    gatherValues(L.index, dEnt, de);
  }
  return { dl, de, dx: t.buf("headDX", L.count * t.hidden) };
}

/** Fills `t.logp` (and entropy) for every row. */
export function headForward(be: Backend, t: HeadTape, head: Parameter): void {
  const L = gatherLive(t);
  t.live = L;
  for (const c of chunks(L, t.vocab)) {
    chunkLogits(be, t, L, head, c);
    chunkLogSoftmax(be, t, L, c);
  }
  finishForward(t, L);
}

/** Backward of `headForward` into dX [rows, hidden]; recomputes each chunk's logits when chunked. */
export function headBackward(
  be: Backend,
  t: HeadTape,
  head: Parameter,
  dLogp: Float32Array,
  dEnt: Float32Array | null,
  dX: Float32Array,
): void {
  const L = t.live ?? gatherLive(t);
  const g = compactGrads(t, L, dLogp, dEnt, dX);
  for (const c of chunks(L, t.vocab)) {
    if (L.chunk < L.count) chunkLogits(be, t, L, head, c);
    chunkBackward(be, t, L, head, c, g.dl, g.de, g.dx);
  }
  if (L.index) scatterRows(L.index, g.dx, dX, t.hidden);
}

/**
 * Forward and backward together for an upstream gradient known before the forward (a loss whose
 * dLoss/dlogp is fixed per row, as in cross-entropy): each chunk's logits are made once and consumed.
 */
export function headForwardBackward(
  be: Backend,
  t: HeadTape,
  head: Parameter,
  dLogp: Float32Array,
  dX: Float32Array,
): void {
  const L = gatherLive(t);
  t.live = L;
  const g = compactGrads(t, L, dLogp, null, dX);
  for (const c of chunks(L, t.vocab)) {
    chunkLogits(be, t, L, head, c);
    chunkLogSoftmax(be, t, L, c);
    chunkBackward(be, t, L, head, c, g.dl, null, g.dx);
  }
  finishForward(t, L);
  if (L.index) scatterRows(L.index, g.dx, dX, t.hidden);
}
