import { totalmem } from "node:os";
import type { Backend } from "../engine/backend.js";
import { getNativeBackend } from "../engine/native.js";
import type { Parameter } from "../engine/optim.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { Qwen3Config } from "./config.js";
import { buildRopeTable, type RopeTable } from "./rope.js";

/**
 * Qwen3 causal LM (HF `Qwen3ForCausalLM`): embeddings, pre-norm decoder layers with per-head q/k
 * RMSNorm, RoPE, grouped-query attention and a SwiGLU MLP, final RMSNorm, tied or untied lm_head.
 * Parameters are keyed by their HF names. Training runs through `logprobs` then `backward`; sampling
 * through `createKVCache` and `forwardTokens`.
 */

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

export interface LogprobsResult {
  /** log π(target | prefix) per position, [batchSize·seqLen]; 0 where masked. */
  logp: Float32Array;
  /** Entropy of the next-token distribution per position (when asked for); 0 where masked. */
  entropy?: Float32Array;
}

interface LayerParams {
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

/** Expected HF tensor names and shapes for a config, in HF's order. */
export function qwen3ParameterShapes(config: Qwen3Config): Map<string, number[]> {
  const D = config.hiddenSize;
  const qDim = config.numAttentionHeads * config.headDim;
  const kvDim = config.numKeyValueHeads * config.headDim;
  const F = config.intermediateSize;
  const shapes = new Map<string, number[]>();
  shapes.set("model.embed_tokens.weight", [config.vocabSize, D]);
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    shapes.set(`${p}input_layernorm.weight`, [D]);
    shapes.set(`${p}self_attn.q_proj.weight`, [qDim, D]);
    shapes.set(`${p}self_attn.k_proj.weight`, [kvDim, D]);
    shapes.set(`${p}self_attn.v_proj.weight`, [kvDim, D]);
    shapes.set(`${p}self_attn.o_proj.weight`, [D, qDim]);
    shapes.set(`${p}self_attn.q_norm.weight`, [config.headDim]);
    shapes.set(`${p}self_attn.k_norm.weight`, [config.headDim]);
    shapes.set(`${p}post_attention_layernorm.weight`, [D]);
    shapes.set(`${p}mlp.gate_proj.weight`, [F, D]);
    shapes.set(`${p}mlp.up_proj.weight`, [F, D]);
    shapes.set(`${p}mlp.down_proj.weight`, [D, F]);
  }
  shapes.set("model.norm.weight", [D]);
  if (!config.tieWordEmbeddings) shapes.set("lm_head.weight", [config.vocabSize, D]);
  return shapes;
}

/**
 * Logits of a training batch up to `keepFloats` are kept whole between forward and backward (default
 * 128 MiB). Past it (large vocabularies × long batches) they are computed `chunkFloats` at a time, and
 * the backward pass recomputes each chunk: one extra lm_head product instead of rows×vocab floats.
 */
export interface LogitsMemory {
  keepFloats: number;
  chunkFloats: number;
}

function chunkRows(rows: number, vocab: number, mem: LogitsMemory): number {
  if (rows * vocab <= mem.keepFloats) return rows;
  return Math.max(1, Math.floor(mem.chunkFloats / vocab));
}

function isNormName(name: string): boolean {
  return name.endsWith("norm.weight");
}

/** Grows-only scratch: a view of the requested length over a buffer reallocated only when too small. */
class Scratch {
  private buf = new Float32Array(0);
  get(n: number): Float32Array {
    if (this.buf.length < n) this.buf = new Float32Array(n);
    return this.buf.subarray(0, n);
  }
}

/** Sequences' keys and values for incremental decoding. */
export class KVCache {
  readonly batchSize: number;
  readonly maxLen: number;
  /** Tokens already in the cache per sequence (the next token's position). */
  readonly lengths: Int32Array;
  /** Per layer, [batchSize, kvHeads, maxLen, headDim]. */
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** Scratch reused across decode steps (so a step allocates nothing once warm). */
  readonly scratch = new Map<string, Scratch>();

  constructor(config: Qwen3Config, batchSize: number, maxLen: number) {
    if (!(Number.isInteger(batchSize) && batchSize > 0 && Number.isInteger(maxLen) && maxLen > 0)) {
      throw new ConfigError(
        `createKVCache(${batchSize}, ${maxLen}): both must be positive integers`,
        "pass the number of sequences and the longest total length (prompt + new tokens)",
      );
    }
    this.batchSize = batchSize;
    this.maxLen = maxLen;
    this.lengths = new Int32Array(batchSize);
    const per = batchSize * config.numKeyValueHeads * maxLen * config.headDim;
    const bytes = per * 4 * 2 * config.numHiddenLayers;
    if (bytes > totalmem() * 0.75 || per > 2 ** 31) {
      throw new KlearError(
        "KV_CACHE_TOO_LARGE",
        `a KV cache for ${batchSize} sequences of ${maxLen} tokens needs ${(bytes / 2 ** 30).toFixed(1)} GiB (${config.numHiddenLayers} layers × ${config.numKeyValueHeads} KV heads × ${config.headDim}), more than this machine's memory allows`,
        "decode fewer sequences at once (a smaller batch) or lower the maximum length (prompt + new tokens)",
      );
    }
    this.k = [];
    this.v = [];
    for (let l = 0; l < config.numHiddenLayers; l++) {
      this.k.push(new Float32Array(per));
      this.v.push(new Float32Array(per));
    }
  }

  /** Forget every sequence (keeps the memory). */
  reset(): void {
    this.lengths.fill(0);
  }

  buf(name: string, n: number): Float32Array {
    let s = this.scratch.get(name);
    if (!s) {
      s = new Scratch();
      this.scratch.set(name, s);
    }
    return s.get(n);
  }
}

interface LayerTape {
  hIn: Float32Array;
  xn1: Float32Array;
  rstd1: Float32Array;
  qPre: Float32Array;
  kPre: Float32Array;
  qRot: Float32Array;
  kRot: Float32Array;
  rstdQ: Float32Array;
  rstdK: Float32Array;
  v: Float32Array;
  att: Float32Array;
  lse: Float32Array;
  hMid: Float32Array;
  xn2: Float32Array;
  rstd2: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  act: Float32Array;
}

/** Activations of the last `logprobs` call, kept for `backward`; buffers are reused across steps. */
interface Tape {
  batchSize: number;
  seqLen: number;
  rows: number;
  tokens: Int32Array;
  targets: Int32Array;
  positions: Int32Array;
  lengths: Int32Array | null;
  segStart: Int32Array | null;
  layers: LayerTape[];
  hOut: Float32Array;
  xnF: Float32Array;
  rstdF: Float32Array;
  logits: Float32Array;
  lse: Float32Array;
  logp: Float32Array;
  entropy: Float32Array | null;
  /** 1 / sampling temperature the logits were divided by. */
  invTemp: number;
  consumed: boolean;
}

export interface LogprobsOptions {
  /** Also return each position's entropy (and accept its gradient in `backward`). */
  entropy?: boolean;
  /** Score softmax(logits / temperature) (default 1): the rollout's sampling temperature. */
  temperature?: number;
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

export class Qwen3Model {
  readonly config: Qwen3Config;
  readonly backend: Backend;
  private readonly params: Map<string, Parameter>;
  private readonly embed: Parameter;
  private readonly finalNorm: Parameter;
  private readonly lmHead: Parameter;
  private readonly layers: LayerParams[];
  private rope: RopeTable | null = null;
  private tape: Tape | null = null;
  private readonly scratch = new Map<string, Scratch>();
  logitsMemory: LogitsMemory = { keepFloats: 1 << 25, chunkFloats: 1 << 23 };

  private constructor(config: Qwen3Config, params: Map<string, Parameter>, backend: Backend) {
    this.config = config;
    this.backend = backend;
    this.params = params;
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
      const p = `model.layers.${l}.`;
      this.layers.push({
        inputNorm: get(`${p}input_layernorm.weight`),
        q: get(`${p}self_attn.q_proj.weight`),
        k: get(`${p}self_attn.k_proj.weight`),
        v: get(`${p}self_attn.v_proj.weight`),
        o: get(`${p}self_attn.o_proj.weight`),
        qNorm: get(`${p}self_attn.q_norm.weight`),
        kNorm: get(`${p}self_attn.k_norm.weight`),
        postNorm: get(`${p}post_attention_layernorm.weight`),
        gate: get(`${p}mlp.gate_proj.weight`),
        up: get(`${p}mlp.up_proj.weight`),
        down: get(`${p}mlp.down_proj.weight`),
      });
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

  private buf(name: string, n: number): Float32Array {
    let s = this.scratch.get(name);
    if (!s) {
      s = new Scratch();
      this.scratch.set(name, s);
    }
    return s.get(n);
  }

  private ropeTable(len: number): RopeTable {
    const dynamic = this.config.ropeScaling.type === "dynamic";
    if (!this.rope || this.rope.maxLen < len || (dynamic && this.rope.maxLen !== len)) {
      this.rope = buildRopeTable(this.config, dynamic ? len : Math.max(len, this.rope?.maxLen ?? 0, 64));
    }
    return this.rope;
  }

  private checkTokens(tokens: Int32Array, what: string): void {
    const V = this.config.vocabSize;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (!(t >= 0 && t < V)) {
        throw new KlearError(
          "MODEL_TOKEN_RANGE",
          `${what}[${i}] = ${t} is outside the vocabulary [0, ${V})`,
          "use a tokenizer that matches the model's vocab_size",
        );
      }
    }
  }

  /**
   * Per-position log-probabilities of the targets (and entropies); keeps activations for `backward`.
   * `temperature` (default 1) scores the tempered distribution softmax(logits / T), as the sampler that
   * produced the tokens did (verl's training log-probs); the entropy is that distribution's too.
   */
  logprobs(batch: Qwen3Batch, opts: LogprobsOptions = {}): LogprobsResult {
    const cfg = this.config;
    const { batchSize: B, seqLen: T } = batch;
    const N = B * T;
    const invTemp = inverseTemperature(opts.temperature);
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
    this.checkTokens(batch.tokens, "tokens");
    const V = cfg.vocabSize;
    const D = cfg.hiddenSize;
    const H = cfg.numAttentionHeads;
    const Hkv = cfg.numKeyValueHeads;
    const hd = cfg.headDim;
    const qDim = H * hd;
    const kvDim = Hkv * hd;
    const F = cfg.intermediateSize;
    const be = this.backend;
    const rope = this.ropeTable(T);

    const tape = this.allocTape(B, T, opts.entropy === true);
    tape.invTemp = invTemp;
    tape.tokens.set(batch.tokens);
    for (let b = 0; b < B; b++) {
      const len = lengths ? lengths[b] : T;
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        const tg = batch.targets[i];
        if (t < len && tg >= V) {
          throw new KlearError(
            "MODEL_TOKEN_RANGE",
            `targets[${i}] = ${tg} is outside the vocabulary [0, ${V})`,
            "use a tokenizer that matches the model's vocab_size",
          );
        }
        tape.targets[i] = t < len && tg >= 0 ? tg : -1;
        tape.positions[i] = t;
      }
    }
    tape.segStart = null;
    if (batch.segments) {
      const seg = batch.segments;
      const segStart = new Int32Array(N);
      for (let b = 0; b < B; b++) {
        let start = 0;
        for (let t = 0; t < T; t++) {
          const i = b * T + t;
          if (t > 0 && seg[i] !== seg[i - 1]) start = t;
          segStart[i] = start;
          tape.positions[i] = t - start;
        }
      }
      tape.segStart = segStart;
    }
    tape.lengths = lengths ? Int32Array.from(lengths) : null;

    be.embedding(this.embed.data, tape.tokens, tape.layers[0].hIn, N, D);
    const scale = 1 / Math.sqrt(hd);
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const w = this.layers[l];
      const a = tape.layers[l];
      const hOut = l + 1 < cfg.numHiddenLayers ? tape.layers[l + 1].hIn : tape.hOut;
      be.rmsnorm(a.hIn, w.inputNorm.data, a.xn1, a.rstd1, N, D, cfg.rmsNormEps);
      be.gemm(false, true, N, qDim, D, 1, a.xn1, D, w.q.data, D, 0, a.qPre, qDim);
      be.gemm(false, true, N, kvDim, D, 1, a.xn1, D, w.k.data, D, 0, a.kPre, kvDim);
      be.gemm(false, true, N, kvDim, D, 1, a.xn1, D, w.v.data, D, 0, a.v, kvDim);
      be.rmsnorm(a.qPre, w.qNorm.data, a.qRot, a.rstdQ, N * H, hd, cfg.rmsNormEps);
      be.rmsnorm(a.kPre, w.kNorm.data, a.kRot, a.rstdK, N * Hkv, hd, cfg.rmsNormEps);
      be.rope(a.qRot, rope.cos, rope.sin, tape.positions, N, H, hd, false);
      be.rope(a.kRot, rope.cos, rope.sin, tape.positions, N, Hkv, hd, false);
      be.attention(a.qRot, a.kRot, a.v, a.att, a.lse, B, T, H, Hkv, hd, tape.lengths, scale, tape.segStart);
      a.hMid.set(a.hIn);
      be.gemm(false, true, N, D, qDim, 1, a.att, qDim, w.o.data, qDim, 1, a.hMid, D);
      be.rmsnorm(a.hMid, w.postNorm.data, a.xn2, a.rstd2, N, D, cfg.rmsNormEps);
      be.gemm(false, true, N, F, D, 1, a.xn2, D, w.gate.data, D, 0, a.gate, F);
      be.gemm(false, true, N, F, D, 1, a.xn2, D, w.up.data, D, 0, a.up, F);
      be.swiglu(a.gate, a.up, a.act, N * F);
      hOut.set(a.hMid);
      be.gemm(false, true, N, D, F, 1, a.act, F, w.down.data, F, 1, hOut, D);
    }
    be.rmsnorm(tape.hOut, this.finalNorm.data, tape.xnF, tape.rstdF, N, D, cfg.rmsNormEps);
    const chunk = chunkRows(N, V, this.logitsMemory);
    for (let r0 = 0; r0 < N; r0 += chunk) {
      const rows = Math.min(chunk, N - r0);
      const logits = tape.logits.subarray(0, rows * V);
      be.gemm(
        false,
        true,
        rows,
        V,
        D,
        invTemp,
        tape.xnF.subarray(r0 * D),
        D,
        this.lmHead.data,
        D,
        0,
        logits,
        V,
      );
      be.logSoftmaxGather(
        logits,
        tape.targets.subarray(r0, r0 + rows),
        rows,
        V,
        tape.logp.subarray(r0, r0 + rows),
        tape.lse.subarray(r0, r0 + rows),
        tape.entropy ? tape.entropy.subarray(r0, r0 + rows) : null,
      );
    }
    tape.consumed = false;
    const result: LogprobsResult = { logp: tape.logp.slice() };
    if (tape.entropy) result.entropy = tape.entropy.slice();
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
    const cfg = this.config;
    const N = tape.rows;
    const { batchSize: B, seqLen: T } = tape;
    if (dLogp.length !== N) {
      throw new ConfigError(`backward: dLogp has ${dLogp.length} entries, expected ${N}`, "one per position");
    }
    if (dEntropy && !tape.entropy) {
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
    const V = cfg.vocabSize;
    const D = cfg.hiddenSize;
    const H = cfg.numAttentionHeads;
    const Hkv = cfg.numKeyValueHeads;
    const hd = cfg.headDim;
    const qDim = H * hd;
    const kvDim = Hkv * hd;
    const F = cfg.intermediateSize;
    const be = this.backend;
    const rope = this.ropeTable(T);
    const scale = 1 / Math.sqrt(hd);

    const dH = this.buf("dH", N * D);
    const dX = this.buf("dX", N * D);
    const dAct = this.buf("dAct", N * F);
    const dGate = this.buf("dGate", N * F);
    const dUp = this.buf("dUp", N * F);
    const dAtt = this.buf("dAtt", N * qDim);
    const dQ = this.buf("dQ", N * qDim);
    const dK = this.buf("dK", N * kvDim);
    const dV = this.buf("dV", N * kvDim);
    const dQpre = this.buf("dQpre", N * qDim);
    const dKpre = this.buf("dKpre", N * kvDim);
    const dlp = this.buf("dLogpIn", N);
    dlp.set(dLogp);
    let dent: Float32Array | null = null;
    if (dEntropy) {
      dent = this.buf("dEntIn", N);
      dent.set(dEntropy);
    }

    // The logits gradient overwrites the logits in place (each element is read before it is written).
    const invT = tape.invTemp;
    const chunk = chunkRows(N, V, this.logitsMemory);
    for (let r0 = 0; r0 < N; r0 += chunk) {
      const rows = Math.min(chunk, N - r0);
      const dLogits = tape.logits.subarray(0, rows * V);
      const xnF = tape.xnF.subarray(r0 * D);
      // Past the memory limit the logits were kept one chunk at a time: recompute this chunk's.
      if (chunk < N) be.gemm(false, true, rows, V, D, invT, xnF, D, this.lmHead.data, D, 0, dLogits, V);
      be.logSoftmaxGatherBackward(
        dLogits,
        tape.targets.subarray(r0, r0 + rows),
        tape.lse.subarray(r0, r0 + rows),
        tape.entropy ? tape.entropy.subarray(r0, r0 + rows) : null,
        dlp.subarray(r0, r0 + rows),
        dent ? dent.subarray(r0, r0 + rows) : null,
        dLogits,
        rows,
        V,
      );
      // logits = xnF·Wᵀ / T, so both products carry the 1/T.
      be.gemm(true, false, V, D, rows, invT, dLogits, V, xnF, D, 1, this.lmHead.grad, D);
      be.gemm(false, false, rows, D, V, invT, dLogits, V, this.lmHead.data, D, 0, dX.subarray(r0 * D), D);
    }
    be.rmsnormBackward(dX, tape.hOut, this.finalNorm.data, tape.rstdF, dH, this.finalNorm.grad, N, D, false);
    for (let l = cfg.numHiddenLayers - 1; l >= 0; l--) {
      const w = this.layers[l];
      const a = tape.layers[l];
      // MLP block: hOut = hMid + swiglu(xn2·Wg, xn2·Wu)·Wd
      be.gemm(false, false, N, F, D, 1, dH, D, w.down.data, F, 0, dAct, F);
      be.gemm(true, false, D, F, N, 1, dH, D, a.act, F, 1, w.down.grad, F);
      be.swigluBackward(dAct, a.gate, a.up, dGate, dUp, N * F);
      be.gemm(false, false, N, D, F, 1, dGate, F, w.gate.data, D, 0, dX, D);
      be.gemm(false, false, N, D, F, 1, dUp, F, w.up.data, D, 1, dX, D);
      be.gemm(true, false, F, D, N, 1, dGate, F, a.xn2, D, 1, w.gate.grad, D);
      be.gemm(true, false, F, D, N, 1, dUp, F, a.xn2, D, 1, w.up.grad, D);
      be.rmsnormBackward(dX, a.hMid, w.postNorm.data, a.rstd2, dH, w.postNorm.grad, N, D, true);
      // Attention block: hMid = hIn + attention(...)·Wo
      be.gemm(false, false, N, qDim, D, 1, dH, D, w.o.data, qDim, 0, dAtt, qDim);
      be.gemm(true, false, D, qDim, N, 1, dH, D, a.att, qDim, 1, w.o.grad, qDim);
      be.attentionBackward(
        dAtt,
        a.qRot,
        a.kRot,
        a.v,
        a.att,
        a.lse,
        dQ,
        dK,
        dV,
        B,
        T,
        H,
        Hkv,
        hd,
        tape.lengths,
        scale,
        tape.segStart,
      );
      be.rope(dQ, rope.cos, rope.sin, tape.positions, N, H, hd, true);
      be.rope(dK, rope.cos, rope.sin, tape.positions, N, Hkv, hd, true);
      be.rmsnormBackward(dQ, a.qPre, w.qNorm.data, a.rstdQ, dQpre, w.qNorm.grad, N * H, hd, false);
      be.rmsnormBackward(dK, a.kPre, w.kNorm.data, a.rstdK, dKpre, w.kNorm.grad, N * Hkv, hd, false);
      be.gemm(false, false, N, D, qDim, 1, dQpre, qDim, w.q.data, D, 0, dX, D);
      be.gemm(false, false, N, D, kvDim, 1, dKpre, kvDim, w.k.data, D, 1, dX, D);
      be.gemm(false, false, N, D, kvDim, 1, dV, kvDim, w.v.data, D, 1, dX, D);
      be.gemm(true, false, qDim, D, N, 1, dQpre, qDim, a.xn1, D, 1, w.q.grad, D);
      be.gemm(true, false, kvDim, D, N, 1, dKpre, kvDim, a.xn1, D, 1, w.k.grad, D);
      be.gemm(true, false, kvDim, D, N, 1, dV, kvDim, a.xn1, D, 1, w.v.grad, D);
      be.rmsnormBackward(dX, a.hIn, w.inputNorm.data, a.rstd1, dH, w.inputNorm.grad, N, D, true);
    }
    be.embeddingBackward(dH, tape.tokens, this.embed.grad, N, D);
  }

  /**
   * Token-mean cross-entropy of the targets, with its gradient accumulated. `tokenCount` is the
   * divisor: pass the loss-token count of the whole mini-batch when this batch is one micro-batch of it
   * (default: this batch's own count). Returns the loss contribution (sum of -logp / tokenCount).
   */
  lossAndBackward(
    batch: Qwen3Batch,
    opts: { tokenCount?: number; temperature?: number } = {},
  ): { loss: number; tokens: number } {
    const { logp } = this.logprobs(batch, { temperature: opts.temperature });
    const targets = this.tape?.targets ?? batch.targets;
    let tokens = 0;
    for (let i = 0; i < targets.length; i++) if (targets[i] >= 0) tokens++;
    const denom = opts.tokenCount ?? tokens;
    const dLogp = this.buf("ceDLogp", logp.length);
    let sum = 0;
    for (let i = 0; i < logp.length; i++) {
      if (targets[i] >= 0) {
        sum -= logp[i];
        dLogp[i] = denom > 0 ? -1 / denom : 0;
      } else dLogp[i] = 0;
    }
    this.backward(dLogp);
    return { loss: denom > 0 ? sum / denom : 0, tokens };
  }

  private allocTape(B: number, T: number, entropy: boolean): Tape {
    const cfg = this.config;
    const N = B * T;
    const D = cfg.hiddenSize;
    const qDim = cfg.numAttentionHeads * cfg.headDim;
    const kvDim = cfg.numKeyValueHeads * cfg.headDim;
    const F = cfg.intermediateSize;
    const buf = (name: string, n: number) => this.buf(name, n);
    const layers: LayerTape[] = [];
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const p = `L${l}.`;
      layers.push({
        hIn: buf(`${p}hIn`, N * D),
        xn1: buf(`${p}xn1`, N * D),
        rstd1: buf(`${p}rstd1`, N),
        qPre: buf(`${p}qPre`, N * qDim),
        kPre: buf(`${p}kPre`, N * kvDim),
        qRot: buf(`${p}qRot`, N * qDim),
        kRot: buf(`${p}kRot`, N * kvDim),
        rstdQ: buf(`${p}rstdQ`, N * cfg.numAttentionHeads),
        rstdK: buf(`${p}rstdK`, N * cfg.numKeyValueHeads),
        v: buf(`${p}v`, N * kvDim),
        att: buf(`${p}att`, N * qDim),
        lse: buf(`${p}lse`, N * cfg.numAttentionHeads),
        hMid: buf(`${p}hMid`, N * D),
        xn2: buf(`${p}xn2`, N * D),
        rstd2: buf(`${p}rstd2`, N),
        gate: buf(`${p}gate`, N * F),
        up: buf(`${p}up`, N * F),
        act: buf(`${p}act`, N * F),
      });
    }
    const intBuf = (name: string, n: number) => {
      const f = buf(name, n);
      return new Int32Array(f.buffer, f.byteOffset, n);
    };
    this.tape = {
      batchSize: B,
      seqLen: T,
      rows: N,
      tokens: intBuf("tokens", N),
      targets: intBuf("targets", N),
      positions: intBuf("positions", N),
      lengths: null,
      segStart: null,
      layers,
      hOut: buf("hOut", N * D),
      xnF: buf("xnF", N * D),
      rstdF: buf("rstdF", N),
      logits: buf("logits", chunkRows(N, cfg.vocabSize, this.logitsMemory) * cfg.vocabSize),
      lse: buf("lseF", N),
      logp: buf("logp", N),
      entropy: entropy ? buf("entropy", N) : null,
      invTemp: 1,
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
    const cfg = this.config;
    const B = cache.batchSize;
    if (tokens.length % B !== 0) {
      throw new ConfigError(
        `forwardTokens: ${tokens.length} tokens do not split into ${B} sequences`,
        "pass [batchSize, chunk] tokens row-major",
      );
    }
    const C = tokens.length / B;
    if (counts && counts.length !== B) {
      throw new ConfigError(
        `forwardTokens: counts has ${counts.length} entries, expected ${B}`,
        "one per sequence",
      );
    }
    let R = 0;
    for (let b = 0; b < B; b++) {
      const n = counts ? counts[b] : C;
      if (!(n >= 0 && n <= C)) {
        throw new ConfigError(`forwardTokens: counts[${b}] = ${n} is outside [0, ${C}]`, "fix the counts");
      }
      if (cache.lengths[b] + n > cache.maxLen) {
        throw new KlearError(
          "KV_CACHE_FULL",
          `forwardTokens: sequence ${b} would reach ${cache.lengths[b] + n} tokens, past the cache's maxLen ${cache.maxLen}`,
          "create the cache with maxLen >= prompt length + max new tokens",
        );
      }
      R += n;
    }
    const V = cfg.vocabSize;
    const D = cfg.hiddenSize;
    const H = cfg.numAttentionHeads;
    const Hkv = cfg.numKeyValueHeads;
    const hd = cfg.headDim;
    const qDim = H * hd;
    const kvDim = Hkv * hd;
    const F = cfg.intermediateSize;
    const be = this.backend;
    const rope = this.ropeTable(cache.maxLen);
    const out = new Float32Array(B * V);
    if (R === 0) return out;

    const ib = (name: string, n: number) => {
      const f = cache.buf(name, n);
      return new Int32Array(f.buffer, f.byteOffset, n);
    };
    const rowTok = ib("rowTok", R);
    const rowSeq = ib("rowSeq", R);
    const rowPos = ib("rowPos", R);
    const lastRow = ib("lastRow", B);
    let r = 0;
    for (let b = 0; b < B; b++) {
      const n = counts ? counts[b] : C;
      lastRow[b] = -1;
      for (let t = 0; t < n; t++) {
        rowTok[r] = tokens[b * C + t];
        rowSeq[r] = b;
        rowPos[r] = cache.lengths[b] + t;
        lastRow[b] = r;
        r++;
      }
    }
    this.checkTokens(rowTok, "tokens");
    const h = cache.buf("h", R * D);
    const xn = cache.buf("xn", R * D);
    const rstd = cache.buf("rstd", R * H);
    const q = cache.buf("q", R * qDim);
    const qn = cache.buf("qn", R * qDim);
    const k = cache.buf("k", R * kvDim);
    const kn = cache.buf("kn", R * kvDim);
    const v = cache.buf("v", R * kvDim);
    const att = cache.buf("att", R * qDim);
    const gate = cache.buf("gate", R * F);
    const up = cache.buf("up", R * F);
    const act = cache.buf("act", R * F);
    const scale = 1 / Math.sqrt(hd);
    be.embedding(this.embed.data, rowTok, h, R, D);
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const w = this.layers[l];
      be.rmsnorm(h, w.inputNorm.data, xn, rstd, R, D, cfg.rmsNormEps);
      be.gemm(false, true, R, qDim, D, 1, xn, D, w.q.data, D, 0, q, qDim);
      be.gemm(false, true, R, kvDim, D, 1, xn, D, w.k.data, D, 0, k, kvDim);
      be.gemm(false, true, R, kvDim, D, 1, xn, D, w.v.data, D, 0, v, kvDim);
      be.rmsnorm(q, w.qNorm.data, qn, rstd, R * H, hd, cfg.rmsNormEps);
      be.rmsnorm(k, w.kNorm.data, kn, rstd, R * Hkv, hd, cfg.rmsNormEps);
      be.rope(qn, rope.cos, rope.sin, rowPos, R, H, hd, false);
      be.rope(kn, rope.cos, rope.sin, rowPos, R, Hkv, hd, false);
      be.kvWrite(kn, cache.k[l], rowSeq, rowPos, R, Hkv, hd, cache.maxLen);
      be.kvWrite(v, cache.v[l], rowSeq, rowPos, R, Hkv, hd, cache.maxLen);
      be.attentionDecode(qn, cache.k[l], cache.v[l], att, rowSeq, rowPos, R, H, Hkv, hd, cache.maxLen, scale);
      be.gemm(false, true, R, D, qDim, 1, att, qDim, w.o.data, qDim, 1, h, D);
      be.rmsnorm(h, w.postNorm.data, xn, rstd, R, D, cfg.rmsNormEps);
      be.gemm(false, true, R, F, D, 1, xn, D, w.gate.data, D, 0, gate, F);
      be.gemm(false, true, R, F, D, 1, xn, D, w.up.data, D, 0, up, F);
      be.swiglu(gate, up, act, R * F);
      be.gemm(false, true, R, D, F, 1, act, F, w.down.data, F, 1, h, D);
    }
    // Only each sequence's last new row needs the final norm and the vocabulary projection.
    const last = cache.buf("last", B * D);
    const seqOf = ib("seqOf", B);
    let m = 0;
    for (let b = 0; b < B; b++) {
      if (lastRow[b] < 0) continue;
      last.set(h.subarray(lastRow[b] * D, (lastRow[b] + 1) * D), m * D);
      seqOf[m++] = b;
    }
    const lastN = cache.buf("lastN", m * D);
    be.rmsnorm(last.subarray(0, m * D), this.finalNorm.data, lastN, rstd, m, D, cfg.rmsNormEps);
    const logits = cache.buf("logits", m * V);
    be.gemm(false, true, m, V, D, 1, lastN, D, this.lmHead.data, D, 0, logits, V);
    for (let i = 0; i < m; i++) out.set(logits.subarray(i * V, (i + 1) * V), seqOf[i] * V);
    for (let b = 0; b < B; b++) cache.lengths[b] += counts ? counts[b] : C;
    return out;
  }
}
