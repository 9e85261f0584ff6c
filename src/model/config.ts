import { ConfigError, KlearError } from "../util/errors.js";

/**
 * The Qwen3 architecture as a Hugging Face `config.json` describes it, with every field the math needs
 * resolved to a concrete value (HF's defaults filled in), so the model code never consults raw JSON.
 */
export type RopeScaling =
  | { type: "default" }
  | { type: "linear"; factor: number }
  | { type: "dynamic"; factor: number; originalMaxPositionEmbeddings: number }
  | {
      type: "yarn";
      factor: number;
      originalMaxPositionEmbeddings: number;
      betaFast: number;
      betaSlow: number;
      /** Multiplies cos and sin (HF's `attention_scaling`); resolved from mscale/attention_factor. */
      attentionFactor: number;
      truncate: boolean;
    };

export interface Qwen3Config {
  architecture: "Qwen3ForCausalLM";
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Only "silu" exists in released Qwen3 checkpoints. */
  hiddenAct: "silu";
  bosTokenId?: number;
  eosTokenId?: number | number[];
  /** Std of the normal init of weights HF uses (`initializer_range`). */
  initializerRange: number;
  /** The JSON the config came from (fields we do not model are kept so a checkpoint writes them back). */
  raw: Record<string, unknown>;
}

export const SUPPORTED_QWEN3_ARCHITECTURES = ["Qwen3ForCausalLM"] as const;
export const SUPPORTED_QWEN3_MODEL_TYPES = ["qwen3"] as const;

function fail(sourcePath: string, field: string, problem: string, fix: string): never {
  throw new KlearError("MODEL_CONFIG_INVALID", `${sourcePath}: field "${field}" ${problem}`, fix);
}

function posInt(json: Record<string, unknown>, field: string, sourcePath: string, fallback?: number): number {
  const v = json[field] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    fail(
      sourcePath,
      field,
      `must be a positive integer, got ${JSON.stringify(v)}`,
      `set "${field}" in ${sourcePath}`,
    );
  }
  return v;
}

function posNum(json: Record<string, unknown>, field: string, sourcePath: string, fallback?: number): number {
  const v = json[field] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    fail(
      sourcePath,
      field,
      `must be a positive number, got ${JSON.stringify(v)}`,
      `set "${field}" in ${sourcePath}`,
    );
  }
  return v;
}

/** HF's `get_mscale` used by YaRN: 0.1·m·ln(s) + 1 for s > 1. */
function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function parseRopeScaling(
  json: Record<string, unknown>,
  maxPositionEmbeddings: number,
  sourcePath: string,
): RopeScaling {
  // transformers >= 5 writes `rope_parameters` (rope_theta inside it); older ones `rope_scaling`.
  const rp = json.rope_parameters;
  const rs =
    rp &&
    typeof rp === "object" &&
    !Array.isArray(rp) &&
    ((rp as Record<string, unknown>).rope_type ?? "default") !== "default"
      ? rp
      : json.rope_scaling;
  if (rs === undefined || rs === null) return { type: "default" };
  if (typeof rs !== "object")
    fail(sourcePath, "rope_scaling", "must be an object or null", "fix rope_scaling");
  const r = rs as Record<string, unknown>;
  const type = (r.rope_type ?? r.type ?? "default") as string;
  const factor = () => posNum(r, "factor", `${sourcePath} (rope_scaling)`);
  switch (type) {
    case "default":
      return { type: "default" };
    case "linear":
      return { type: "linear", factor: factor() };
    case "dynamic":
      return {
        type: "dynamic",
        factor: factor(),
        originalMaxPositionEmbeddings: maxPositionEmbeddings,
      };
    case "yarn": {
      const orig =
        typeof r.original_max_position_embeddings === "number"
          ? r.original_max_position_embeddings
          : maxPositionEmbeddings;
      // As transformers: without a factor, the ratio of the two context lengths is the factor.
      const f = r.factor === undefined || r.factor === null ? maxPositionEmbeddings / orig : factor();
      let attentionFactor: number;
      if (typeof r.attention_factor === "number") attentionFactor = r.attention_factor;
      else if (
        typeof r.mscale === "number" &&
        r.mscale &&
        typeof r.mscale_all_dim === "number" &&
        r.mscale_all_dim
      ) {
        attentionFactor = yarnMscale(f, r.mscale) / yarnMscale(f, r.mscale_all_dim);
      } else attentionFactor = yarnMscale(f);
      return {
        type: "yarn",
        factor: f,
        originalMaxPositionEmbeddings: orig,
        betaFast: typeof r.beta_fast === "number" && r.beta_fast ? r.beta_fast : 32,
        betaSlow: typeof r.beta_slow === "number" && r.beta_slow ? r.beta_slow : 1,
        attentionFactor,
        truncate: r.truncate === undefined ? true : Boolean(r.truncate),
      };
    }
    default:
      throw new KlearError(
        "MODEL_CONFIG_UNSUPPORTED",
        `${sourcePath}: rope_scaling type "${type}" is not supported`,
        'use rope_scaling null or one of type "linear", "dynamic", "yarn"',
      );
  }
}

/** Parses and validates a Hugging Face Qwen3 `config.json` (already JSON-parsed). */
export function parseQwen3Config(json: unknown, sourcePath = "config.json"): Qwen3Config {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new KlearError(
      "MODEL_CONFIG_INVALID",
      `${sourcePath} is not a JSON object`,
      "pass a HF config.json",
    );
  }
  const j = json as Record<string, unknown>;
  const archs = j.architectures;
  const modelType = j.model_type;
  const archOk =
    archs === undefined ||
    (Array.isArray(archs) &&
      archs.some((a) => (SUPPORTED_QWEN3_ARCHITECTURES as readonly unknown[]).includes(a)));
  const typeOk =
    modelType === undefined || (SUPPORTED_QWEN3_MODEL_TYPES as readonly unknown[]).includes(modelType);
  if (!archOk || !typeOk || (archs === undefined && modelType === undefined)) {
    throw new KlearError(
      "MODEL_UNSUPPORTED_ARCHITECTURE",
      `${sourcePath}: unsupported model (architectures ${JSON.stringify(archs)}, model_type ${JSON.stringify(modelType)})`,
      `klear supports architectures ${SUPPORTED_QWEN3_ARCHITECTURES.join(", ")} (model_type ${SUPPORTED_QWEN3_MODEL_TYPES.join(", ")}); use a Qwen3 checkpoint`,
    );
  }
  const hiddenSize = posInt(j, "hidden_size", sourcePath);
  const numAttentionHeads = posInt(j, "num_attention_heads", sourcePath);
  const numKeyValueHeads = posInt(j, "num_key_value_heads", sourcePath, numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(
      sourcePath,
      "num_key_value_heads",
      `(${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`,
      "use a head count that groups evenly",
    );
  }
  const headDim = posInt(j, "head_dim", sourcePath, Math.floor(hiddenSize / numAttentionHeads));
  if (headDim % 2 !== 0)
    fail(sourcePath, "head_dim", `(${headDim}) must be even for RoPE`, "use an even head_dim");
  const act = j.hidden_act ?? "silu";
  if (act !== "silu") {
    throw new KlearError(
      "MODEL_CONFIG_UNSUPPORTED",
      `${sourcePath}: hidden_act "${String(act)}" is not supported`,
      'Qwen3 uses hidden_act "silu"',
    );
  }
  if (j.attention_bias === true) {
    throw new KlearError(
      "MODEL_CONFIG_UNSUPPORTED",
      `${sourcePath}: attention_bias true is not supported`,
      "use a Qwen3 checkpoint without q/k/v/o biases (attention_bias false, as all released Qwen3 models)",
    );
  }
  if (j.use_sliding_window === true) {
    throw new KlearError(
      "MODEL_CONFIG_UNSUPPORTED",
      `${sourcePath}: use_sliding_window true is not supported`,
      "set use_sliding_window false (full attention, as released Qwen3 models)",
    );
  }
  if (j.partial_rotary_factor !== undefined && j.partial_rotary_factor !== 1) {
    throw new KlearError(
      "MODEL_CONFIG_UNSUPPORTED",
      `${sourcePath}: partial_rotary_factor ${String(j.partial_rotary_factor)} is not supported`,
      "Qwen3 rotates the full head (partial_rotary_factor 1)",
    );
  }
  const maxPositionEmbeddings = posInt(j, "max_position_embeddings", sourcePath, 32768);
  const ropeParameters =
    j.rope_parameters && typeof j.rope_parameters === "object"
      ? (j.rope_parameters as Record<string, unknown>)
      : {};
  const ropeTheta = posNum(
    j,
    "rope_theta",
    sourcePath,
    (ropeParameters.rope_theta as number | undefined) ?? 10000,
  );
  return {
    architecture: "Qwen3ForCausalLM",
    vocabSize: posInt(j, "vocab_size", sourcePath),
    hiddenSize,
    intermediateSize: posInt(j, "intermediate_size", sourcePath),
    numHiddenLayers: posInt(j, "num_hidden_layers", sourcePath),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: posNum(j, "rms_norm_eps", sourcePath, 1e-6),
    ropeTheta,
    ropeScaling: parseRopeScaling(j, maxPositionEmbeddings, sourcePath),
    maxPositionEmbeddings,
    tieWordEmbeddings: j.tie_word_embeddings === undefined ? false : Boolean(j.tie_word_embeddings),
    hiddenAct: "silu",
    ...(typeof j.bos_token_id === "number" ? { bosTokenId: j.bos_token_id } : {}),
    ...(typeof j.eos_token_id === "number" || Array.isArray(j.eos_token_id)
      ? { eosTokenId: j.eos_token_id as number | number[] }
      : {}),
    initializerRange: typeof j.initializer_range === "number" ? j.initializer_range : 0.02,
    raw: { ...j },
  };
}

/** The HF `config.json` object for a config (round-trips what `parseQwen3Config` read). */
export function qwen3ConfigToJson(config: Qwen3Config): Record<string, unknown> {
  const rs = config.ropeScaling;
  let ropeScaling: Record<string, unknown> | null = null;
  if (rs.type === "linear") ropeScaling = { rope_type: "linear", factor: rs.factor };
  else if (rs.type === "dynamic") ropeScaling = { rope_type: "dynamic", factor: rs.factor };
  else if (rs.type === "yarn") {
    ropeScaling = {
      rope_type: "yarn",
      factor: rs.factor,
      original_max_position_embeddings: rs.originalMaxPositionEmbeddings,
      beta_fast: rs.betaFast,
      beta_slow: rs.betaSlow,
      attention_factor: rs.attentionFactor,
    };
  }
  // rope_theta and rope_scaling below say everything rope_parameters would; a stale copy could contradict them.
  const { rope_parameters: _ropeParameters, ...raw } = config.raw;
  return {
    ...raw,
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: config.numAttentionHeads,
    num_key_value_heads: config.numKeyValueHeads,
    head_dim: config.headDim,
    hidden_act: "silu",
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: ropeScaling,
    max_position_embeddings: config.maxPositionEmbeddings,
    tie_word_embeddings: config.tieWordEmbeddings,
    attention_bias: false,
    attention_dropout: 0,
    use_sliding_window: false,
    initializer_range: config.initializerRange,
    torch_dtype: "float32",
    ...(config.bosTokenId !== undefined ? { bos_token_id: config.bosTokenId } : {}),
    ...(config.eosTokenId !== undefined ? { eos_token_id: config.eosTokenId } : {}),
  };
}

export interface TinyQwen3Options {
  vocabSize?: number;
  hiddenSize?: number;
  intermediateSize?: number;
  numHiddenLayers?: number;
  numAttentionHeads?: number;
  numKeyValueHeads?: number;
  headDim?: number;
  maxPositionEmbeddings?: number;
  tieWordEmbeddings?: boolean;
  ropeTheta?: number;
  rmsNormEps?: number;
  ropeScaling?: RopeScaling;
}

/**
 * A small Qwen3 config. With no options it is the project's reference model (backends.md): 4 layers,
 * d_model 256, 4 query / 2 KV heads of 64, SwiGLU 768, vocab 512.
 */
export function tinyQwen3Config(opts: TinyQwen3Options = {}): Qwen3Config {
  const cfg: Qwen3Config = {
    architecture: "Qwen3ForCausalLM",
    vocabSize: opts.vocabSize ?? 512,
    hiddenSize: opts.hiddenSize ?? 256,
    intermediateSize: opts.intermediateSize ?? 768,
    numHiddenLayers: opts.numHiddenLayers ?? 4,
    numAttentionHeads: opts.numAttentionHeads ?? 4,
    numKeyValueHeads: opts.numKeyValueHeads ?? 2,
    headDim: opts.headDim ?? 64,
    rmsNormEps: opts.rmsNormEps ?? 1e-6,
    ropeTheta: opts.ropeTheta ?? 10000,
    ropeScaling: opts.ropeScaling ?? { type: "default" },
    maxPositionEmbeddings: opts.maxPositionEmbeddings ?? 2048,
    tieWordEmbeddings: opts.tieWordEmbeddings ?? false,
    hiddenAct: "silu",
    initializerRange: 0.02,
    raw: {},
  };
  if (cfg.numAttentionHeads % cfg.numKeyValueHeads !== 0) {
    throw new ConfigError(
      `tinyQwen3Config: numKeyValueHeads ${cfg.numKeyValueHeads} does not divide numAttentionHeads ${cfg.numAttentionHeads}`,
      "choose head counts that group evenly",
    );
  }
  return cfg;
}
