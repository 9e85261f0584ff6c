import { z } from "zod";
import {
  type ConfigLayers,
  type DeepPartial,
  describeConfig,
  type FlagAlias,
  parseConfigWith,
  resolveConfig,
} from "../util/config.js";
import { ConfigError } from "../util/errors.js";

/**
 * The `klear eval` config: which benchmarks, what generates the responses, how they are sampled and
 * scored. Every field has a documented default (the paper's protocol, spec §10); the run folder keeps
 * the resolved config as config.json, so `klear eval --config RUN/config.json --out RUN` reruns it.
 * The API key is deliberately not a field: it would be written into the run folder.
 */
export const EvalConfigSchema = z.strictObject({
  bench: z
    .array(z.string().min(1))
    .default([])
    .describe("benchmarks to run (names or aliases, e.g. aime24, livecodebench_v6); required"),
  data: z
    .strictObject({
      path: z
        .string()
        .default("")
        .describe("a benchmark file, or a folder holding it; empty = the Hugging Face hub copy, cached"),
      cacheDir: z
        .string()
        .default("")
        .describe(
          "hub cache; empty = $KLEAR_CACHE/hub or ~/.cache/klear/hub (HF_ENDPOINT, HF_TOKEN honoured)",
        ),
      limit: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe("only the first N problems of each benchmark; 0 = all"),
    })
    .prefault({})
    .describe("where the benchmark problems come from"),
  generation: z
    .strictObject({
      modelDir: z
        .string()
        .default("")
        .describe(
          "an HF-style Qwen3 checkpoint folder run by the local engine (config.json, safetensors, tokenizer)",
        ),
      endpoints: z
        .array(z.string().min(1))
        .default([])
        .describe("OpenAI-compatible server base URLs (vLLM, SGLang, …), load-balanced"),
      model: z
        .string()
        .default("")
        .describe(
          "the model name the server serves (with endpoints); a folder on disk without endpoints = modelDir",
        ),
      responses: z
        .string()
        .default("")
        .describe("score responses you already have (a jsonl file) instead of generating; one benchmark"),
      api: z
        .enum(["chat", "completions"])
        .default("chat")
        .describe(
          "chat: the server applies the chat template; completions: klear renders it (needs chatTemplate)",
        ),
      chatTemplate: z
        .string()
        .default("")
        .describe(
          "model folder (or tokenizer_config.json) whose chat template renders prompts (api completions)",
        ),
      enableThinking: z
        .boolean()
        .nullable()
        .default(null)
        .describe("Qwen3's thinking switch in the template klear renders; null = the template's own (on)"),
      concurrency: z.number().int().positive().default(64).describe("server requests in flight"),
      timeoutSeconds: z.number().positive().default(3600).describe("per-request timeout"),
      maxRetries: z
        .number()
        .int()
        .min(0)
        .default(8)
        .describe("retries on 429/5xx/timeouts/dropped connections"),
    })
    .prefault({})
    .describe("what generates the responses: one of modelDir, endpoints + model, or responses"),
  sampling: z
    .strictObject({
      n: z
        .number()
        .int()
        .positive()
        .nullable()
        .default(null)
        .describe("samples per problem; null = the benchmark's protocol (64 AIME/HMMT, 8 LiveCodeBench, …)"),
      temperature: z.number().min(0).default(0.6).describe("sampling temperature (paper: 0.6)"),
      topP: z.number().gt(0).max(1).default(0.95).describe("nucleus sampling (paper: 0.95)"),
      topK: z.number().int().positive().nullable().default(null).describe("top-k sampling; null = off"),
      maxTokens: z.number().int().positive().default(32768).describe("longest response (paper: 32K)"),
      repetitionPenalty: z
        .number()
        .positive()
        .nullable()
        .default(null)
        .describe("repetition penalty; null = off"),
      seed: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe("run seed: per-sample seeds and the bootstrap derive from it"),
      prompt: z
        .string()
        .min(1)
        .default("r1")
        .describe(
          "math prompt: r1 (DeepSeek-R1 style), raw (the bare problem), or a template with {problem}",
        ),
    })
    .prefault({})
    .describe("how each response is sampled (part of the run's fingerprint: a resumed run must match)"),
  scoring: z
    .strictObject({
      ks: z
        .array(z.number().int().positive())
        .default([])
        .describe("pass@k / maj@k values; empty = powers of two up to n"),
      bootstrap: z.number().int().min(0).default(1000).describe("bootstrap resamples for the 95% CIs"),
      codeTimeoutMs: z.number().int().positive().default(6000).describe("per-test time limit for code"),
      concurrency: z.number().int().positive().default(8).describe("responses scored at once"),
      sandboxUrl: z
        .string()
        .default("")
        .describe("run code on this SandboxFusion server; empty = the local bubblewrap sandbox"),
      unsafeNoSandbox: z
        .boolean()
        .default(false)
        .describe("run generated code WITHOUT isolation (trusted code only)"),
    })
    .prefault({})
    .describe("scoring and the figures of results.json"),
});

export type EvalConfig = z.infer<typeof EvalConfigSchema>;

/** Named starting points; any field can still be changed by a config file or `--a.b=c`. */
export const EVAL_PRESETS = {
  /** The paper's protocol (spec §10): T 0.6, top-p 0.95, 32K tokens, each benchmark's own n. */
  paper: {},
  /** A quick look: 1 sample of at most 2,048 tokens for the first 10 problems. */
  smoke: { data: { limit: 10 }, sampling: { n: 1, maxTokens: 2048 } },
} satisfies Record<string, DeepPartial<EvalConfig>>;

export const EVAL_PRESET_NAMES = Object.keys(EVAL_PRESETS);

/**
 * The flags `klear eval` has always taken, each setting one config field, so existing commands keep
 * working on the config path.
 */
export const EVAL_FLAG_ALIASES: readonly FlagAlias[] = [
  { flag: "bench", path: "bench", kind: "list" },
  { flag: "data", path: "data.path", kind: "string" },
  { flag: "cache-dir", path: "data.cacheDir", kind: "string" },
  { flag: "limit", path: "data.limit", kind: "int" },
  { flag: "model-dir", path: "generation.modelDir", kind: "string" },
  { flag: "endpoint", path: "generation.endpoints", kind: "list" },
  { flag: "model", path: "generation.model", kind: "string" },
  { flag: "responses", path: "generation.responses", kind: "string" },
  { flag: "api", path: "generation.api", kind: "string" },
  { flag: "chat-template", path: "generation.chatTemplate", kind: "string" },
  { flag: "enable-thinking", path: "generation.enableThinking", kind: "boolean" },
  { flag: "no-enable-thinking", path: "generation.enableThinking", kind: "false" },
  { flag: "concurrency", path: "generation.concurrency", kind: "int" },
  { flag: "timeout", path: "generation.timeoutSeconds", kind: "number" },
  { flag: "max-retries", path: "generation.maxRetries", kind: "int" },
  { flag: "n", path: "sampling.n", kind: "int" },
  { flag: "temperature", path: "sampling.temperature", kind: "number" },
  { flag: "top-p", path: "sampling.topP", kind: "number" },
  { flag: "top-k", path: "sampling.topK", kind: "int" },
  { flag: "max-tokens", path: "sampling.maxTokens", kind: "int" },
  { flag: "repetition-penalty", path: "sampling.repetitionPenalty", kind: "number" },
  { flag: "seed", path: "sampling.seed", kind: "int" },
  { flag: "prompt", path: "sampling.prompt", kind: "string" },
  { flag: "ks", path: "scoring.ks", kind: "ints" },
  { flag: "bootstrap", path: "scoring.bootstrap", kind: "int" },
  { flag: "code-timeout", path: "scoring.codeTimeoutMs", kind: "int" },
  { flag: "score-concurrency", path: "scoring.concurrency", kind: "int" },
  { flag: "sandbox-url", path: "scoring.sandboxUrl", kind: "string" },
  { flag: "unsafe-no-sandbox", path: "scoring.unsafeNoSandbox", kind: "boolean" },
];

/** Validates a complete or partial config object, naming the first bad field and its source. */
export function parseEvalConfig(value: unknown, source: string): EvalConfig {
  const c = parseConfigWith(EvalConfigSchema, value, source, "eval");
  const g = c.generation;
  if (g.responses && (g.modelDir || g.endpoints.length > 0)) {
    throw new ConfigError(
      `${source}: generation.responses scores existing responses, so generation.modelDir and generation.endpoints must be empty`,
      "pass only one of --responses, --model-dir, --endpoint",
    );
  }
  if (g.modelDir && g.endpoints.length > 0) {
    throw new ConfigError(
      `${source}: --model-dir runs the local engine, so generation.endpoints must be empty`,
      "pass only one of --model-dir, --endpoint, --responses",
    );
  }
  return c;
}

const EVAL_CONFIG_SPEC = {
  command: "eval",
  presets: EVAL_PRESETS,
  parse: parseEvalConfig,
  exampleSection: "sampling",
};

/** preset → config file → flags and `--a.b=c` overrides, each layer validated. */
export function resolveEvalConfig(layers: ConfigLayers): EvalConfig {
  return resolveConfig(EVAL_CONFIG_SPEC, layers);
}

/** Every field with its default, meaning and short flag, for `--help`. */
export function describeEvalConfig(): string {
  return describeConfig(EvalConfigSchema, { aliases: EVAL_FLAG_ALIASES, flagWidth: 52 });
}
