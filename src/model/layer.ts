import type { Backend } from "../engine/backend.js";
import type { Parameter } from "../engine/optim.js";
import type { Qwen3Config } from "./config.js";
import type { RopeTable } from "./rope.js";

/**
 * One Qwen3 decoder layer as two forward/backward pairs over a saved tape, in the spirit of llm.c:
 *
 *   hMid = hIn  + attention(rope(qNorm(xn·Wqᵀ)), rope(kNorm(xn·Wkᵀ)), xn·Wvᵀ)·Woᵀ,  xn = rmsnorm(hIn)
 *   hOut = hMid + (silu(xn·Wgᵀ) ⊙ xn·Wuᵀ)·Wdᵀ,                                     xn = rmsnorm(hMid)
 *
 * Training forward, backward and KV-cache decode all run these functions; only the attention core
 * (`Attend`: whole sequences, or rows against a cache) differs between them.
 */

/** Sizes derived from the config once, shared by every layer function. */
export interface LayerDims {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  qDim: number;
  kvDim: number;
  ffn: number;
  eps: number;
  /** Attention's 1/sqrt(headDim). */
  scale: number;
}

export function layerDims(cfg: Qwen3Config): LayerDims {
  return {
    hidden: cfg.hiddenSize,
    heads: cfg.numAttentionHeads,
    kvHeads: cfg.numKeyValueHeads,
    headDim: cfg.headDim,
    qDim: cfg.numAttentionHeads * cfg.headDim,
    kvDim: cfg.numKeyValueHeads * cfg.headDim,
    ffn: cfg.intermediateSize,
    eps: cfg.rmsNormEps,
    scale: 1 / Math.sqrt(cfg.headDim),
  };
}

export interface LayerWeights {
  inputNorm: Parameter;
  q: Parameter;
  k: Parameter;
  v: Parameter;
  o: Parameter;
  qNorm: Parameter;
  kNorm: Parameter;
  postNorm: Parameter;
  gate: Parameter;
  up: Parameter;
  down: Parameter;
}

/** HF names of layer `l`'s tensors, in HF's order. */
export function layerTensorNames(l: number): Record<keyof LayerWeights, string> {
  const p = `model.layers.${l}.`;
  return {
    inputNorm: `${p}input_layernorm.weight`,
    q: `${p}self_attn.q_proj.weight`,
    k: `${p}self_attn.k_proj.weight`,
    v: `${p}self_attn.v_proj.weight`,
    o: `${p}self_attn.o_proj.weight`,
    qNorm: `${p}self_attn.q_norm.weight`,
    kNorm: `${p}self_attn.k_norm.weight`,
    postNorm: `${p}post_attention_layernorm.weight`,
    gate: `${p}mlp.gate_proj.weight`,
    up: `${p}mlp.up_proj.weight`,
    down: `${p}mlp.down_proj.weight`,
  };
}

/** Each tensor's shape for the dims (keys as in `LayerWeights`). */
export function layerTensorShapes(d: LayerDims): Record<keyof LayerWeights, number[]> {
  const D = d.hidden;
  return {
    inputNorm: [D],
    q: [d.qDim, D],
    k: [d.kvDim, D],
    v: [d.kvDim, D],
    o: [D, d.qDim],
    qNorm: [d.headDim],
    kNorm: [d.headDim],
    postNorm: [D],
    gate: [d.ffn, D],
    up: [d.ffn, D],
    down: [D, d.ffn],
  };
}

/** The attention block's saved activations for `rows` token rows. */
export interface AttentionTape {
  xn: Float32Array;
  rstd: Float32Array;
  qPre: Float32Array;
  kPre: Float32Array;
  /** Normed and rotated queries / keys: what attention saw. */
  q: Float32Array;
  k: Float32Array;
  rstdQ: Float32Array;
  rstdK: Float32Array;
  v: Float32Array;
  att: Float32Array;
  /** Per (row, head) log-sum-exp of the training attention (unused by decode). */
  lse: Float32Array;
}

export interface MlpTape {
  xn: Float32Array;
  rstd: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  act: Float32Array;
}

/** A view of `n` floats named within some owner's reusable scratch. */
export type Buffers = (name: string, n: number) => Float32Array;

export function allocAttentionTape(buf: Buffers, prefix: string, rows: number, d: LayerDims): AttentionTape {
  return {
    xn: buf(`${prefix}xn1`, rows * d.hidden),
    rstd: buf(`${prefix}rstd1`, rows),
    qPre: buf(`${prefix}qPre`, rows * d.qDim),
    kPre: buf(`${prefix}kPre`, rows * d.kvDim),
    q: buf(`${prefix}qRot`, rows * d.qDim),
    k: buf(`${prefix}kRot`, rows * d.kvDim),
    rstdQ: buf(`${prefix}rstdQ`, rows * d.heads),
    rstdK: buf(`${prefix}rstdK`, rows * d.kvHeads),
    v: buf(`${prefix}v`, rows * d.kvDim),
    att: buf(`${prefix}att`, rows * d.qDim),
    lse: buf(`${prefix}lse`, rows * d.heads),
  };
}

export function allocMlpTape(buf: Buffers, prefix: string, rows: number, d: LayerDims): MlpTape {
  return {
    xn: buf(`${prefix}xn2`, rows * d.hidden),
    rstd: buf(`${prefix}rstd2`, rows),
    gate: buf(`${prefix}gate`, rows * d.ffn),
    up: buf(`${prefix}up`, rows * d.ffn),
    act: buf(`${prefix}act`, rows * d.ffn),
  };
}

/** Rows being run and where they sit: RoPE position per row. */
export interface RowContext {
  be: Backend;
  dims: LayerDims;
  rows: number;
  positions: Int32Array;
  rope: RopeTable;
}

/** The attention core: fills `t.att` (and `t.lse` when training) from the rotated `t.q`, `t.k`, `t.v`. */
export type Attend = (t: AttentionTape) => void;

/**
 * hOut = hIn + attention block(hIn). hOut may be hIn itself (decode updates the residual in place).
 */
export function attentionForward(
  ctx: RowContext,
  w: LayerWeights,
  t: AttentionTape,
  hIn: Float32Array,
  hOut: Float32Array,
  attend: Attend,
): void {
  const { be, dims: d, rows: N, positions, rope } = ctx;
  const D = d.hidden;
  be.rmsnorm(hIn, w.inputNorm.data, t.xn, t.rstd, N, D, d.eps);
  be.gemm(false, true, N, d.qDim, D, 1, t.xn, D, w.q.data, D, 0, t.qPre, d.qDim);
  be.gemm(false, true, N, d.kvDim, D, 1, t.xn, D, w.k.data, D, 0, t.kPre, d.kvDim);
  be.gemm(false, true, N, d.kvDim, D, 1, t.xn, D, w.v.data, D, 0, t.v, d.kvDim);
  be.rmsnorm(t.qPre, w.qNorm.data, t.q, t.rstdQ, N * d.heads, d.headDim, d.eps);
  be.rmsnorm(t.kPre, w.kNorm.data, t.k, t.rstdK, N * d.kvHeads, d.headDim, d.eps);
  be.rope(t.q, rope.cos, rope.sin, positions, N, d.heads, d.headDim, false);
  be.rope(t.k, rope.cos, rope.sin, positions, N, d.kvHeads, d.headDim, false);
  attend(t);
  if (hOut !== hIn) hOut.set(hIn.subarray(0, N * D));
  be.gemm(false, true, N, D, d.qDim, 1, t.att, d.qDim, w.o.data, d.qDim, 1, hOut, D);
}

/** hOut = hIn + MLP block(hIn); hOut may be hIn itself. */
export function mlpForward(
  ctx: RowContext,
  w: LayerWeights,
  t: MlpTape,
  hIn: Float32Array,
  hOut: Float32Array,
): void {
  const { be, dims: d, rows: N } = ctx;
  const D = d.hidden;
  const F = d.ffn;
  be.rmsnorm(hIn, w.postNorm.data, t.xn, t.rstd, N, D, d.eps);
  be.gemm(false, true, N, F, D, 1, t.xn, D, w.gate.data, D, 0, t.gate, F);
  be.gemm(false, true, N, F, D, 1, t.xn, D, w.up.data, D, 0, t.up, F);
  be.swiglu(t.gate, t.up, t.act, N * F);
  if (hOut !== hIn) hOut.set(hIn.subarray(0, N * D));
  be.gemm(false, true, N, D, F, 1, t.act, F, w.down.data, F, 1, hOut, D);
}

/**
 * Backward of `mlpForward`: on entry dH is the gradient of hOut, on return that of hIn (the residual
 * plus the block's path). Weight gradients accumulate.
 */
export function mlpBackward(
  ctx: RowContext,
  w: LayerWeights,
  t: MlpTape,
  hIn: Float32Array,
  dH: Float32Array,
  buf: Buffers,
): void {
  const { be, dims: d, rows: N } = ctx;
  const D = d.hidden;
  const F = d.ffn;
  const dAct = buf("dAct", N * F);
  const dGate = buf("dGate", N * F);
  const dUp = buf("dUp", N * F);
  const dX = buf("dX", N * D);
  be.gemm(false, false, N, F, D, 1, dH, D, w.down.data, F, 0, dAct, F);
  be.gemm(true, false, D, F, N, 1, dH, D, t.act, F, 1, w.down.grad, F);
  be.swigluBackward(dAct, t.gate, t.up, dGate, dUp, N * F);
  be.gemm(false, false, N, D, F, 1, dGate, F, w.gate.data, D, 0, dX, D);
  be.gemm(false, false, N, D, F, 1, dUp, F, w.up.data, D, 1, dX, D);
  be.gemm(true, false, F, D, N, 1, dGate, F, t.xn, D, 1, w.gate.grad, D);
  be.gemm(true, false, F, D, N, 1, dUp, F, t.xn, D, 1, w.up.grad, D);
  be.rmsnormBackward(dX, hIn, w.postNorm.data, t.rstd, dH, w.postNorm.grad, N, D, true);
}

/** Gradients of q, k, v (rotated q/k) from the gradient of `t.att`: the attention core's backward. */
export type AttendBackward = (
  t: AttentionTape,
  dAtt: Float32Array,
  dQ: Float32Array,
  dK: Float32Array,
  dV: Float32Array,
) => void;

/** Backward of `attentionForward` (dH: gradient of hOut in, of hIn out); weight gradients accumulate. */
export function attentionBackward(
  ctx: RowContext,
  w: LayerWeights,
  t: AttentionTape,
  hIn: Float32Array,
  dH: Float32Array,
  buf: Buffers,
  attendBackward: AttendBackward,
): void {
  const { be, dims: d, rows: N, positions, rope } = ctx;
  const D = d.hidden;
  const { qDim, kvDim, heads: H, kvHeads: Hkv, headDim: hd } = d;
  const dAtt = buf("dAtt", N * qDim);
  const dQ = buf("dQ", N * qDim);
  const dK = buf("dK", N * kvDim);
  const dV = buf("dV", N * kvDim);
  const dQpre = buf("dQpre", N * qDim);
  const dKpre = buf("dKpre", N * kvDim);
  const dX = buf("dX", N * D);
  be.gemm(false, false, N, qDim, D, 1, dH, D, w.o.data, qDim, 0, dAtt, qDim);
  be.gemm(true, false, D, qDim, N, 1, dH, D, t.att, qDim, 1, w.o.grad, qDim);
  attendBackward(t, dAtt, dQ, dK, dV);
  be.rope(dQ, rope.cos, rope.sin, positions, N, H, hd, true);
  be.rope(dK, rope.cos, rope.sin, positions, N, Hkv, hd, true);
  be.rmsnormBackward(dQ, t.qPre, w.qNorm.data, t.rstdQ, dQpre, w.qNorm.grad, N * H, hd, false);
  be.rmsnormBackward(dK, t.kPre, w.kNorm.data, t.rstdK, dKpre, w.kNorm.grad, N * Hkv, hd, false);
  be.gemm(false, false, N, D, qDim, 1, dQpre, qDim, w.q.data, D, 0, dX, D);
  be.gemm(false, false, N, D, kvDim, 1, dKpre, kvDim, w.k.data, D, 1, dX, D);
  be.gemm(false, false, N, D, kvDim, 1, dV, kvDim, w.v.data, D, 1, dX, D);
  be.gemm(true, false, qDim, D, N, 1, dQpre, qDim, t.xn, D, 1, w.q.grad, D);
  be.gemm(true, false, kvDim, D, N, 1, dKpre, kvDim, t.xn, D, 1, w.k.grad, D);
  be.gemm(true, false, kvDim, D, N, 1, dV, kvDim, t.xn, D, 1, w.v.grad, D);
  be.rmsnormBackward(dX, hIn, w.inputNorm.data, t.rstd, dH, w.inputNorm.grad, N, D, true);
}
