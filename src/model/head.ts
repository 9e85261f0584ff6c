import type { Backend } from "../engine/backend.js";
import type { Parameter } from "../engine/optim.js";

/**
 * The output layer of training: final-normed hidden rows → logits / T → log-softmax gathered at the
 * targets (with entropy). A vocabulary-sized logits matrix is held only one chunk of rows at a time
 * once the whole would pass `LogitsMemory.keepFloats`, so memory stays flat at 151,936-way vocabularies
 * and long sequences.
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
  targets: Int32Array;
  /** One chunk of logits (or all of them): [chunk, vocab]. */
  logits: Float32Array;
  chunk: number;
  lse: Float32Array;
  logp: Float32Array;
  entropy: Float32Array | null;
  /** 1 / sampling temperature the logits are divided by. */
  invTemp: number;
}

interface HeadChunk {
  r0: number;
  rows: number;
  logits: Float32Array;
}

function chunks(t: HeadTape): HeadChunk[] {
  const out: HeadChunk[] = [];
  for (let r0 = 0; r0 < t.rows; r0 += t.chunk) {
    const rows = Math.min(t.chunk, t.rows - r0);
    out.push({ r0, rows, logits: t.logits.subarray(0, rows * t.vocab) });
  }
  return out;
}

function chunkLogits(be: Backend, t: HeadTape, head: Parameter, c: HeadChunk): void {
  const D = t.hidden;
  be.gemm(
    false,
    true,
    c.rows,
    t.vocab,
    D,
    t.invTemp,
    t.xn.subarray(c.r0 * D),
    D,
    head.data,
    D,
    0,
    c.logits,
    t.vocab,
  );
}

function chunkLogSoftmax(be: Backend, t: HeadTape, c: HeadChunk): void {
  const { r0, rows } = c;
  be.logSoftmaxGather(
    c.logits,
    t.targets.subarray(r0, r0 + rows),
    rows,
    t.vocab,
    t.logp.subarray(r0, r0 + rows),
    t.lse.subarray(r0, r0 + rows),
    t.entropy ? t.entropy.subarray(r0, r0 + rows) : null,
  );
}

/** dLogits (in place over the chunk's logits), then lm_head's gradient and the rows' dX. */
function chunkBackward(
  be: Backend,
  t: HeadTape,
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
    t.targets.subarray(r0, r0 + rows),
    t.lse.subarray(r0, r0 + rows),
    t.entropy ? t.entropy.subarray(r0, r0 + rows) : null,
    dLogp.subarray(r0, r0 + rows),
    dEnt ? dEnt.subarray(r0, r0 + rows) : null,
    logits,
    rows,
    V,
  );
  const xn = t.xn.subarray(r0 * D);
  // logits = xn·Wᵀ / T, so both products carry the 1/T.
  be.gemm(true, false, V, D, rows, t.invTemp, logits, V, xn, D, 1, head.grad, D);
  be.gemm(false, false, rows, D, V, t.invTemp, logits, V, head.data, D, 0, dX.subarray(r0 * D), D);
}

/** Fills logp (and entropy) for every row; the last chunk's logits stay in `t.logits`. */
export function headForward(be: Backend, t: HeadTape, head: Parameter): void {
  for (const c of chunks(t)) {
    chunkLogits(be, t, head, c);
    chunkLogSoftmax(be, t, c);
  }
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
  for (const c of chunks(t)) {
    if (t.chunk < t.rows) chunkLogits(be, t, head, c);
    chunkBackward(be, t, head, c, dLogp, dEnt, dX);
  }
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
  for (const c of chunks(t)) {
    chunkLogits(be, t, head, c);
    chunkLogSoftmax(be, t, c);
    chunkBackward(be, t, head, c, dLogp, null, dX);
  }
}
