/**
 * The narrow seam between the model and the hardware: one GEMM plus a handful of fused kernels, each
 * with its backward. Arrays are flat row-major; sub-tensors are passed as `subarray` views (no copies).
 * Conventions: a kernel's outputs are overwritten unless the parameter is documented as accumulating;
 * a negative target marks a padded row, which every loss kernel skips.
 */
export type F32 = Float32Array;

export interface Backend {
  readonly name: string;
  /** C = alpha·op(A)·op(B) + beta·C, row-major, like cblas_sgemm. */
  gemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: F32,
    lda: number,
    b: F32,
    ldb: number,
    beta: number,
    c: F32,
    ldc: number,
  ): void;
  /** y = x·rstd·w per row; rstd[row] = 1/sqrt(mean(x²)+eps) is saved for the backward pass. */
  rmsnorm(x: F32, weight: F32, y: F32, rstd: F32, rows: number, dim: number, eps: number): void;
  /** dx overwritten (or added to when accumulateDx); dWeight accumulates. */
  rmsnormBackward(
    dy: F32,
    x: F32,
    weight: F32,
    rstd: F32,
    dx: F32,
    dWeight: F32,
    rows: number,
    dim: number,
    accumulateDx: boolean,
  ): void;
  /** In place on x [rows, heads, headDim], HF rotate-half layout; `inverse` is the backward pass. */
  rope(
    x: F32,
    cos: F32,
    sin: F32,
    positions: Int32Array,
    rows: number,
    heads: number,
    headDim: number,
    inverse: boolean,
  ): void;
  /**
   * Causal GQA attention over right-padded sequences; q/out [B·T, H, hd], k/v [B·T, Hkv, hd], lse [B, H, T].
   * With packed documents, segStart[b·T + t] is where token t's document starts in its row (it attends
   * only [segStart, t]).
   */
  attention(
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    lse: F32,
    batch: number,
    seqLen: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    lengths: Int32Array | null,
    scale: number,
    segStart?: Int32Array | null,
  ): void;
  /** dq, dk, dv overwritten. */
  attentionBackward(
    dOut: F32,
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    lse: F32,
    dq: F32,
    dk: F32,
    dv: F32,
    batch: number,
    seqLen: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    lengths: Int32Array | null,
    scale: number,
    segStart?: Int32Array | null,
  ): void;
  /** Copies rows [R, Hkv, hd] into a cache [S, Hkv, maxLen, hd] at (rowSeq[r], rowPos[r]). */
  kvWrite(
    src: F32,
    cache: F32,
    rowSeq: Int32Array,
    rowPos: Int32Array,
    rows: number,
    kvHeads: number,
    headDim: number,
    maxLen: number,
  ): void;
  /** Row r of q [R, H, hd] attends keys 0..rowPos[r] of cached sequence rowSeq[r]. */
  attentionDecode(
    q: F32,
    kCache: F32,
    vCache: F32,
    out: F32,
    rowSeq: Int32Array,
    rowPos: Int32Array,
    rows: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxLen: number,
    scale: number,
  ): void;
  /** out = silu(gate)·up */
  swiglu(gate: F32, up: F32, out: F32, n: number): void;
  swigluBackward(dOut: F32, gate: F32, up: F32, dGate: F32, dUp: F32, n: number): void;
  /** dst += src */
  add(dst: F32, src: F32, n: number): void;
  /** x *= alpha */
  scale(x: F32, alpha: number, n: number): void;
  embedding(table: F32, ids: Int32Array, out: F32, rows: number, dim: number): void;
  /** dTable[ids[r]] += dOut[r] */
  embeddingBackward(dOut: F32, ids: Int32Array, dTable: F32, rows: number, dim: number): void;
  /** logp[r] = log softmax(logits[r])[targets[r]], lse saved, entropy optional. */
  logSoftmaxGather(
    logits: F32,
    targets: Int32Array,
    rows: number,
    vocab: number,
    logp: F32,
    lse: F32,
    entropy: F32 | null,
  ): void;
  /** dLogits overwritten from the gradients of logp and (optionally) entropy. */
  logSoftmaxGatherBackward(
    logits: F32,
    targets: Int32Array,
    lse: F32,
    entropy: F32 | null,
    dLogp: F32,
    dEntropy: F32 | null,
    dLogits: F32,
    rows: number,
    vocab: number,
  ): void;
  /** One AdamW update in place (PyTorch's formula, decoupled decay); `step` counts from 1. */
  adamw(
    param: F32,
    grad: F32,
    m: F32,
    v: F32,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;
  /** Σ x² accumulated in double. */
  sumSquares(x: F32, n: number): number;
}
