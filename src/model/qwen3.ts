import type { Backend } from "../engine/backend.js";
import { getNativeBackend } from "../engine/native.js";
import type { Parameter } from "../engine/optim.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { type BatchLayout, layoutBatch, type Qwen3Batch } from "./batch.js";
import type { Qwen3Config } from "./config.js";
import { decodeTokens } from "./decode.js";
import {
  DEFAULT_LOGITS_MEMORY,
  type HeadTape,
  headBackward,
  headForward,
  headForwardBackward,
  type LogitsMemory,
} from "./head.js";
import { KVCache, ScratchSet } from "./kv-cache.js";
import {
  type Attend,
  type AttendBackward,
  type AttentionTape,
  allocAttentionTape,
  allocMlpTape,
  attentionBackward,
  attentionForward,
  type LayerDims,
  type LayerWeights,
  layerDims,
  layerTensorNames,
  layerTensorShapes,
  type MlpTape,
  mlpBackward,
  mlpForward,
  type RowContext,
} from "./layer.js";
import { buildRopeTable, type RopeTable } from "./rope.js";

export type { Qwen3Batch } from "./batch.js";
export type { LogitsMemory } from "./head.js";
export { KVCache } from "./kv-cache.js";

/**
 * Qwen3 causal LM (HF `Qwen3ForCausalLM`): embeddings, pre-norm decoder layers with per-head q/k
 * RMSNorm, RoPE, grouped-query attention and a SwiGLU MLP, final RMSNorm, tied or untied lm_head.
 * Parameters are keyed by their HF names. Training runs through `logprobs` then `backward` (or
 * `lossAndBackward` for cross-entropy); sampling through `createKVCache` and `forwardTokens`. The
 * decoder layer itself is the forward/backward pairs of ./layer.ts; the output layer is ./head.ts.
 */

export interface LogprobsResult {
  /** log π(target | prefix) per position, [batchSize·seqLen]; 0 where masked. */
  logp: Float32Array;
  /** Entropy of the next-token distribution per position (when asked for); 0 where masked. */
  entropy?: Float32Array;
}

export interface LogprobsOptions {
  /** Also return each position's entropy (and accept its gradient in `backward`). */
  entropy?: boolean;
  /** Score softmax(logits / temperature) (default 1): the rollout's sampling temperature. */
  temperature?: number;
  /**
   * Keep only each layer's input between forward and backward and recompute the rest of the layer
   * during `backward` (default false): about one more forward of compute for a fraction of the
   * activation memory, so long packed sequences fit.
   */
  recompute?: boolean;
}

export interface LossOptions {
  /**
   * Divisor of the summed NLL: pass the loss-token count of the whole optimizer batch when this batch
   * is one micro-batch of it (default: this batch's own count of unmasked targets).
   */
  tokenCount?: number;
  /** Per-position weight of each token's NLL, [batchSize·seqLen] (default 1; masked positions ignored). */
  weights?: Float32Array;
  temperature?: number;
  recompute?: boolean;
}

/** Expected HF tensor names and shapes for a config, in HF's order. */
export function qwen3ParameterShapes(config: Qwen3Config): Map<string, number[]> {
  const D = config.hiddenSize;
  const shapes = new Map<string, number[]>();
  shapes.set("model.embed_tokens.weight", [config.vocabSize, D]);
  const layerShapes = layerTensorShapes(layerDims(config));
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const names = layerTensorNames(l);
    for (const key of Object.keys(names) as (keyof LayerWeights)[]) shapes.set(names[key], layerShapes[key]);
  }
  shapes.set("model.norm.weight", [D]);
  if (!config.tieWordEmbeddings) shapes.set("lm_head.weight", [config.vocabSize, D]);
  return shapes;
}

function isNormName(name: string): boolean {
  return name.endsWith("norm.weight");
}

function inverseTemperature(temperature: number | undefined): number {
  const t = temperature ?? 1;
  if (!(Number.isFinite(t) && t > 0)) {
    throw new ConfigError(
      `logprobs: temperature ${temperature} must be a positive finite number`,
      "pass the sampling temperature the rollouts used (1 for plain log-probs)",
    );
  }
  return 1 / t;
}

interface LayerTape {
  hIn: Float32Array;
  hMid: Float32Array;
  attn: AttentionTape;
  mlp: MlpTape;
}

/** Activations of the last `logprobs` call, kept for `backward`; buffers are reused across steps. */
interface Tape {
  layout: BatchLayout;
  tokens: Int32Array;
  layers: LayerTape[];
  /** With recompute, layers share one scratch tape (all but `hIn`) and this receives the rerun's output. */
  recompute: boolean;
  recomputeOut: Float32Array | null;
  hOut: Float32Array;
  rstdF: Float32Array;
  head: HeadTape;
  consumed: boolean;
}

export class Qwen3Model {
  readonly config: Qwen3Config;
  readonly backend: Backend;
  private readonly params: Map<string, Parameter>;
  private readonly embed: Parameter;
  private readonly finalNorm: Parameter;
  private readonly lmHead: Parameter;
  private readonly layers: LayerWeights[];
  private readonly dims: LayerDims;
  private rope: RopeTable | null = null;
  private tape: Tape | null = null;
  private readonly scratch = new ScratchSet();
  logitsMemory: LogitsMemory = { ...DEFAULT_LOGITS_MEMORY };

  private constructor(config: Qwen3Config, params: Map<string, Parameter>, backend: Backend) {
    this.config = config;
    this.backend = backend;
    this.params = params;
    this.dims = layerDims(config);
    const get = (name: string): Parameter => {
      const p = params.get(name);
      if (!p) throw new KlearError("MODEL_INTERNAL", `parameter ${name} missing`, "report this as a bug");
      return p;
    };
    this.embed = get("model.embed_tokens.weight");
    this.finalNorm = get("model.norm.weight");
    this.lmHead = config.tieWordEmbeddings ? this.embed : get("lm_head.weight");
    this.layers = [];
    for (let l = 0; l < config.numHiddenLayers; l++) {
      const names = layerTensorNames(l);
      const w = {} as Record<keyof LayerWeights, Parameter>;
      for (const key of Object.keys(names) as (keyof LayerWeights)[]) w[key] = get(names[key]);
      this.layers.push(w);
    }
  }

  /** A randomly initialised model as HF initialises Qwen3: normal(0, initializer_range), norms at 1. */
  static create(config: Qwen3Config, opts: { seed?: number; backend?: Backend } = {}): Qwen3Model {
    const rng = new Rng(opts.seed ?? 0);
    const std = config.initializerRange;
    const params = new Map<string, Parameter>();
    for (const [name, shape] of qwen3ParameterShapes(config)) {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      if (isNormName(name)) data.fill(1);
      else for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
      params.set(name, { data, grad: new Float32Array(n), shape });
    }
    return new Qwen3Model(config, params, opts.backend ?? getNativeBackend());
  }

  /**
   * A model over the given HF-named tensors (which it adopts, not copies). Every expected tensor must be
   * present with its exact shape; a tied model may also carry `lm_head.weight`, which is ignored.
   */
  static fromTensors(
    config: Qwen3Config,
    tensors: Map<string, Float32Array>,
    sourceName = "tensors",
    opts: { backend?: Backend; shapes?: Map<string, number[]> } = {},
  ): Qwen3Model {
    const expected = qwen3ParameterShapes(config);
    const params = new Map<string, Parameter>();
    const missing: string[] = [];
    for (const [name, shape] of expected) {
      const data = tensors.get(name);
      if (!data) {
        missing.push(name);
        continue;
      }
      const n = shape.reduce((a, b) => a * b, 1);
      const given = opts.shapes?.get(name);
      if (given && (given.length !== shape.length || given.some((d, i) => d !== shape[i]))) {
        throw new KlearError(
          "MODEL_TENSOR_SHAPE",
          `${sourceName}: tensor ${name} has shape [${given.join(", ")}], expected [${shape.join(", ")}]`,
          "use a checkpoint whose config.json matches its weights",
        );
      }
      if (data.length !== n) {
        throw new KlearError(
          "MODEL_TENSOR_SHAPE",
          `${sourceName}: tensor ${name} has ${data.length} elements, expected shape [${shape.join(", ")}] (${n} elements)`,
          "use a checkpoint whose config.json matches its weights",
        );
      }
      params.set(name, { data, grad: new Float32Array(n), shape });
    }
    if (missing.length > 0) {
      throw new KlearError(
        "MODEL_TENSOR_MISSING",
        `${sourceName}: missing ${missing.length} tensor(s): ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""}`,
        "use a complete Qwen3 checkpoint whose config.json (num_hidden_layers, tie_word_embeddings) matches it",
      );
    }
    const unexpected = [...tensors.keys()].filter(
      (n) => !expected.has(n) && !(config.tieWordEmbeddings && n === "lm_head.weight"),
    );
    if (unexpected.length > 0) {
      throw new KlearError(
        "MODEL_TENSOR_UNEXPECTED",
        `${sourceName}: unexpected tensor(s) ${unexpected.slice(0, 5).join(", ")}${unexpected.length > 5 ? ", …" : ""}`,
        "check that the checkpoint is a Qwen3ForCausalLM matching its config.json",
      );
    }
    return new Qwen3Model(config, params, opts.backend ?? getNativeBackend());
  }

  /** HF-named parameters in HF order; data and grad are live (the optimizer updates them in place). */
  parameters(): Map<string, Parameter> {
    return this.params;
  }

  zeroGrad(): void {
    for (const p of this.params.values()) p.grad.fill(0);
  }

  parameterCount(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.data.length;
    return n;
  }

  private ropeTable(len: number): RopeTable {
    const dynamic = this.config.ropeScaling.type === "dynamic";
    if (!this.rope || this.rope.maxLen < len || (dynamic && this.rope.maxLen !== len)) {
      this.rope = buildRopeTable(this.config, dynamic ? len : Math.max(len, this.rope?.maxLen ?? 0, 64));
    }
    return this.rope;
  }

  /** The training attention core over the tape's whole (padded, maybe packed) sequences. */
  private attendTraining(layout: BatchLayout): { attend: Attend; attendBackward: AttendBackward } {
    const be = this.backend;
    const { heads: H, kvHeads: Hkv, headDim: hd, scale } = this.dims;
    const { batchSize: B, seqLen: T, lengths, segStart } = layout;
    return {
      attend: (t) => be.attention(t.q, t.k, t.v, t.att, t.lse, B, T, H, Hkv, hd, lengths, scale, segStart),
      attendBackward: (t, dAtt, dQ, dK, dV) =>
        be.attentionBackward(
          dAtt,
          t.q,
          t.k,
          t.v,
          t.att,
          t.lse,
          dQ,
          dK,
          dV,
          B,
          T,
          H,
          Hkv,
          hd,
          lengths,
          scale,
          segStart,
        ),
    };
  }

  private rowContext(layout: BatchLayout): RowContext {
    return {
      be: this.backend,
      dims: this.dims,
      rows: layout.rows,
      positions: layout.positions,
      rope: this.ropeTable(layout.seqLen),
    };
  }

  /** Embedding, every layer and the final norm: the head's input rows are on the tape after it. */
  private forwardLayers(batch: Qwen3Batch, entropy: boolean, invTemp: number, recompute: boolean): Tape {
    const cfg = this.config;
    const tape = this.allocTape(batch.batchSize, batch.seqLen, entropy, recompute);
    const N = batch.batchSize * batch.seqLen;
    const ints = this.scratch.ints;
    tape.layout = layoutBatch(batch, cfg.vocabSize, {
      targets: ints("targets", N),
      positions: ints("positions", N),
    });
    tape.head.targets = tape.layout.targets;
    tape.head.invTemp = invTemp;
    tape.tokens.set(batch.tokens);
    const ctx = this.rowContext(tape.layout);
    const { attend } = this.attendTraining(tape.layout);
    this.backend.embedding(this.embed.data, tape.tokens, tape.layers[0].hIn, N, cfg.hiddenSize);
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const a = tape.layers[l];
      const hOut = l + 1 < cfg.numHiddenLayers ? tape.layers[l + 1].hIn : tape.hOut;
      attentionForward(ctx, this.layers[l], a.attn, a.hIn, a.hMid, attend);
      mlpForward(ctx, this.layers[l], a.mlp, a.hMid, hOut);
    }
    this.backend.rmsnorm(
      tape.hOut,
      this.finalNorm.data,
      tape.head.xn,
      tape.rstdF,
      N,
      cfg.hiddenSize,
      cfg.rmsNormEps,
    );
    return tape;
  }

  /** From the gradient of the final norm's output (in `dX`) down to the embedding's. */
  private backwardLayers(tape: Tape, dX: Float32Array): void {
    const cfg = this.config;
    const be = this.backend;
    const N = tape.layout.rows;
    const D = cfg.hiddenSize;
    const buf = this.scratch.get;
    const dH = buf("dH", N * D);
    be.rmsnormBackward(dX, tape.hOut, this.finalNorm.data, tape.rstdF, dH, this.finalNorm.grad, N, D, false);
    const ctx = this.rowContext(tape.layout);
    const { attend, attendBackward } = this.attendTraining(tape.layout);
    for (let l = cfg.numHiddenLayers - 1; l >= 0; l--) {
      const w = this.layers[l];
      const a = tape.layers[l];
      if (tape.recompute && tape.recomputeOut) {
        attentionForward(ctx, w, a.attn, a.hIn, a.hMid, attend);
        mlpForward(ctx, w, a.mlp, a.hMid, tape.recomputeOut);
      }
      mlpBackward(ctx, w, a.mlp, a.hMid, dH, buf);
      attentionBackward(ctx, w, a.attn, a.hIn, dH, buf, attendBackward);
    }
    be.embeddingBackward(dH, tape.tokens, this.embed.grad, N, D);
  }

  /**
   * Per-position log-probabilities of the targets (and entropies); keeps activations for `backward`.
   * `temperature` (default 1) scores the tempered distribution softmax(logits / T), as the sampler that
   * produced the tokens did (verl's training log-probs); the entropy is that distribution's too.
   */
  logprobs(batch: Qwen3Batch, opts: LogprobsOptions = {}): LogprobsResult {
    const invTemp = inverseTemperature(opts.temperature);
    const tape = this.forwardLayers(batch, opts.entropy === true, invTemp, opts.recompute === true);
    headForward(this.backend, tape.head, this.lmHead);
    tape.consumed = false;
    const result: LogprobsResult = { logp: tape.head.logp.slice() };
    if (tape.head.entropy) result.entropy = tape.head.entropy.slice();
    return result;
  }

  /**
   * Accumulates parameter gradients (+=) for upstream gradients of the last `logprobs` call's outputs.
   * Masked positions' gradients are ignored. Call once per `logprobs`.
   */
  backward(dLogp: Float32Array, dEntropy?: Float32Array): void {
    const tape = this.tape;
    if (!tape || tape.consumed) {
      throw new KlearError(
        "MODEL_NO_FORWARD",
        "backward() called without a preceding logprobs() (or twice for one logprobs())",
        "call logprobs(batch) right before backward(dLogp)",
      );
    }
    const N = tape.layout.rows;
    if (dLogp.length !== N) {
      throw new ConfigError(`backward: dLogp has ${dLogp.length} entries, expected ${N}`, "one per position");
    }
    if (dEntropy && !tape.head.entropy) {
      throw new ConfigError(
        "backward: dEntropy given but logprobs() was called without { entropy: true }",
        "request entropy in logprobs() when its gradient is needed",
      );
    }
    if (dEntropy && dEntropy.length !== N) {
      throw new ConfigError(
        `backward: dEntropy has ${dEntropy.length} entries, expected ${N}`,
        "one per position",
      );
    }
    tape.consumed = true;
    const buf = this.scratch.get;
    const dlp = buf("dLogpIn", N);
    dlp.set(dLogp);
    let dent: Float32Array | null = null;
    if (dEntropy) {
      dent = buf("dEntIn", N);
      dent.set(dEntropy);
    }
    const dX = buf("dX", N * this.config.hiddenSize);
    headBackward(this.backend, tape.head, this.lmHead, dlp, dent, dX);
    this.backwardLayers(tape, dX);
  }

  /**
   * Token-mean cross-entropy of the targets (optionally weighted per position), with its gradient
   * accumulated. Returns the loss contribution (Σ w·(−logp) / tokenCount) and this batch's loss-token
   * count. The output layer runs forward and backward chunk by chunk, never holding more than one
   * chunk of logits (see `LogitsMemory`).
   */
  lossAndBackward(batch: Qwen3Batch, opts: LossOptions = {}): { loss: number; tokens: number } {
    const invTemp = inverseTemperature(opts.temperature);
    const N = batch.batchSize * batch.seqLen;
    if (opts.weights && opts.weights.length !== N) {
      throw new ConfigError(
        `lossAndBackward: weights has ${opts.weights.length} entries, expected batchSize·seqLen = ${N}`,
        "pass one weight per position",
      );
    }
    const tape = this.forwardLayers(batch, false, invTemp, opts.recompute === true);
    const targets = tape.layout.targets;
    let tokens = 0;
    for (let i = 0; i < N; i++) if (targets[i] >= 0) tokens++;
    const denom = opts.tokenCount ?? tokens;
    const w = opts.weights;
    const dLogp = this.scratch.get("ceDLogp", N);
    for (let i = 0; i < N; i++) dLogp[i] = targets[i] >= 0 && denom > 0 ? -(w ? w[i] : 1) / denom : 0;
    const dX = this.scratch.get("dX", N * this.config.hiddenSize);
    headForwardBackward(this.backend, tape.head, this.lmHead, dLogp, dX);
    tape.consumed = true;
    let sum = 0;
    const logp = tape.head.logp;
    for (let i = 0; i < N; i++) if (targets[i] >= 0) sum -= (w ? w[i] : 1) * logp[i];
    this.backwardLayers(tape, dX);
    return { loss: denom > 0 ? sum / denom : 0, tokens };
  }

  private allocTape(B: number, T: number, entropy: boolean, recompute: boolean): Tape {
    const cfg = this.config;
    const N = B * T;
    const d = this.dims;
    const buf = this.scratch.get;
    const layers: LayerTape[] = [];
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      // With recompute every layer but its input shares one set of buffers, rerun during backward.
      const p = recompute ? "R." : `L${l}.`;
      layers.push({
        hIn: buf(`L${l}.hIn`, N * d.hidden),
        hMid: buf(`${p}hMid`, N * d.hidden),
        attn: allocAttentionTape(buf, p, N, d),
        mlp: allocMlpTape(buf, p, N, d),
      });
    }
    const tokens = this.scratch.ints("tokens", N);
    this.tape = {
      layout: {
        batchSize: B,
        seqLen: T,
        rows: N,
        targets: tokens,
        positions: tokens,
        lengths: null,
        segStart: null,
      },
      tokens,
      layers,
      recompute,
      recomputeOut: recompute ? buf("R.hOut", N * d.hidden) : null,
      hOut: buf("hOut", N * d.hidden),
      rstdF: buf("rstdF", N),
      head: {
        rows: N,
        vocab: cfg.vocabSize,
        hidden: d.hidden,
        xn: buf("xnF", N * d.hidden),
        targets: tokens,
        logp: buf("logp", N),
        entropy: entropy ? buf("entropy", N) : null,
        invTemp: 1,
        memory: this.logitsMemory,
        buf,
        ints: this.scratch.ints,
        live: null,
      },
      consumed: true,
    };
    return this.tape;
  }

  /** An empty KV cache for `batchSize` sequences of at most `maxLen` tokens each. */
  createKVCache(batchSize: number, maxLen: number): KVCache {
    return new KVCache(this.config, batchSize, maxLen);
  }

  /**
   * Appends tokens to each cached sequence and returns the logits after each sequence's last new token,
   * [batchSize·vocab]. `tokens` is [batchSize, chunk] row-major (chunk = tokens.length / batchSize);
   * `counts[b]` (default: chunk) says how many of sequence b's chunk tokens are real, so a prefill can
   * mix prompt lengths and a decode step can skip finished sequences (count 0: its logits row is 0).
   * Sequence b's new tokens take positions cache.lengths[b], cache.lengths[b]+1, ….
   */
  forwardTokens(cache: KVCache, tokens: Int32Array, counts?: Int32Array): Float32Array {
    const weights = {
      embed: this.embed,
      layers: this.layers,
      finalNorm: this.finalNorm,
      lmHead: this.lmHead,
    };
    return decodeTokens(
      this.config,
      this.dims,
      weights,
      this.backend,
      this.ropeTable(cache.maxLen),
      cache,
      tokens,
      counts,
    );
  }
}
