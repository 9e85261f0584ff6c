import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError, checkChoice } from "../util/errors.js";
import { applyOverrides } from "../util/overrides.js";

/**
 * The `klear demo` config. Every field has a documented default; the defaults are the `tiny-cpu` preset,
 * sized to train in about a minute or two on 2 CPU cores and reach high held-out accuracy.
 */
export const DemoConfigSchema = z.strictObject({
  seed: z.number().int().default(0).describe("seeds model init, data order, the held-out split and sampling"),
  model: z
    .strictObject({
      hiddenSize: z.number().int().positive().default(96).describe("d_model"),
      numHiddenLayers: z.number().int().positive().default(2).describe("transformer blocks"),
      numAttentionHeads: z.number().int().positive().default(4).describe("query heads"),
      numKeyValueHeads: z.number().int().positive().default(2).describe("key/value heads (GQA groups)"),
      headDim: z.number().int().positive().default(16).describe("per-head width"),
      intermediateSize: z.number().int().positive().default(256).describe("SwiGLU hidden width"),
      tieWordEmbeddings: z.boolean().default(true).describe("share input and output embeddings"),
    })
    .prefault({})
    .describe("a tiny Qwen3 trained from scratch; the vocabulary is the byte tokenizer's"),
  task: z
    .strictObject({
      minTerms: z.number().int().min(2).default(2).describe("fewest one-digit numbers to add"),
      maxTerms: z.number().int().min(2).default(3).describe("most numbers to add"),
      maxOperand: z.number().int().min(1).default(9).describe("operands are drawn from [0, maxOperand]"),
      teacherNoise: z
        .number()
        .min(0)
        .max(1)
        .default(0)
        .describe("probability a teacher solution has one wrong step"),
      testSize: z.number().int().positive().default(100).describe("held-out problems (never trained on)"),
    })
    .prefault({})
    .describe("the synthetic arithmetic task (src/tasks/arithmetic.ts)"),
  train: z
    .strictObject({
      steps: z.number().int().positive().default(450).describe("optimizer steps"),
      batchSize: z.number().int().positive().default(32).describe("sequences per step"),
      lr: z.number().positive().default(3e-3).describe("peak learning rate"),
      warmupSteps: z.number().int().min(0).default(20).describe("linear warmup steps"),
      minLrRatio: z.number().min(0).max(1).default(0.1).describe("cosine decay floor, as a fraction of lr"),
      weightDecay: z.number().min(0).default(0.01).describe("AdamW decoupled weight decay"),
      beta1: z.number().min(0).lt(1).default(0.9).describe("AdamW β1"),
      beta2: z.number().min(0).lt(1).default(0.99).describe("AdamW β2"),
      gradClip: z.number().positive().default(1).describe("global gradient-norm clip"),
      checkpointEvery: z
        .number()
        .int()
        .positive()
        .default(150)
        .describe("save a resumable checkpoint every N steps"),
    })
    .prefault({})
    .describe("supervised training on teacher solutions (loss on the completion only)"),
  eval: z
    .strictObject({
      maxNewTokens: z.number().int().positive().default(40).describe("longest completion sampled"),
      showSamples: z
        .number()
        .int()
        .min(0)
        .default(4)
        .describe("completions printed from the reloaded checkpoint"),
      showTemperature: z
        .number()
        .min(0)
        .default(0.7)
        .describe("temperature of the printed samples (0 = greedy)"),
    })
    .prefault({})
    .describe("held-out accuracy is always greedy; these shape the sampled completions shown at the end"),
});

export type DemoConfig = z.infer<typeof DemoConfigSchema>;

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** Named starting points; any field can still be overridden by a config file or `--a.b=c`. */
export const DEMO_PRESETS = {
  /** The default: about a minute or two of training on 2 CPU cores. */
  "tiny-cpu": {},
  /** A few seconds end to end, for tests and CI: proves the pipeline, not the learning. */
  smoke: {
    model: { hiddenSize: 32, numHiddenLayers: 1, intermediateSize: 64, headDim: 8 },
    task: { testSize: 8 },
    train: { steps: 6, batchSize: 4, warmupSteps: 1, checkpointEvery: 3 },
    eval: { maxNewTokens: 24, showSamples: 2 },
  },
  /** Larger and longer (several minutes): longer sums. */
  "small-cpu": {
    model: { hiddenSize: 128, numHiddenLayers: 4, headDim: 32, intermediateSize: 384 },
    task: { maxTerms: 4 },
    train: { steps: 800, lr: 2e-3, checkpointEvery: 200 },
    eval: { maxNewTokens: 56 },
  },
} satisfies Record<string, DeepPartial<DemoConfig>>;

export type DemoPresetName = keyof typeof DEMO_PRESETS;
export const DEMO_PRESET_NAMES = Object.keys(DEMO_PRESETS) as DemoPresetName[];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] =
      isPlainObject(v) && isPlainObject(base[k]) ? deepMerge(base[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/** Validates a complete or partial config object, naming the first bad field and its source. */
export function parseDemoConfig(value: unknown, source: string): DemoConfig {
  const r = DemoConfigSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue.path.join(".") || "(root)";
  throw new ConfigError(
    `${source}: demo config field "${field}": ${issue.message}`,
    `fix "${field}" (every field and its default: \`klear demo --help\`)`,
  );
}

/**
 * preset → config file → `--a.b=c` overrides, each layer validated. An unknown key anywhere is an
 * error naming it (a typo never passes silently).
 */
export function resolveDemoConfig(opts: {
  preset?: string;
  configFile?: string;
  overrides?: Record<string, string>;
}): DemoConfig {
  const presetName = checkChoice("demo preset", opts.preset ?? "tiny-cpu", DEMO_PRESET_NAMES);
  let merged = parseDemoConfig(DEMO_PRESETS[presetName], `preset ${presetName}`) as Record<string, unknown>;
  if (opts.configFile) {
    let fileValue: unknown;
    try {
      fileValue = JSON.parse(readFileSync(opts.configFile, "utf8"));
    } catch (e) {
      throw new ConfigError(
        `cannot read demo config ${opts.configFile}: ${(e as Error).message}`,
        "pass a readable JSON file whose fields are a subset of the demo config",
        { cause: e },
      );
    }
    if (!isPlainObject(fileValue)) {
      throw new ConfigError(
        `${opts.configFile}: expected a JSON object`,
        'write the config as { "train": { … } }',
      );
    }
    merged = parseDemoConfig(deepMerge(merged, fileValue), opts.configFile);
  }
  const withOverrides = applyOverrides(merged, opts.overrides ?? {});
  return parseDemoConfig(withOverrides, "--overrides");
}

/** Every field with its default and meaning, for `--help`. */
export function describeDemoConfig(): string {
  const defaults = DemoConfigSchema.parse({}) as Record<string, unknown>;
  const lines: string[] = [];
  const row = (flag: string, value: unknown, what: string | undefined) =>
    lines.push(`${`  --${flag}=${JSON.stringify(value)}`.padEnd(34)} ${what ?? ""}`);
  for (const [key, child] of Object.entries(DemoConfigSchema.shape)) {
    const shape = (unwrap(child) as unknown as { shape?: Record<string, z.ZodType> }).shape;
    if (!shape) {
      row(key, defaults[key], child.description);
      continue;
    }
    lines.push(`  ${key}: ${child.description ?? ""}`);
    const section = defaults[key] as Record<string, unknown>;
    for (const [k, leaf] of Object.entries(shape)) row(`${key}.${k}`, section[k], leaf.description);
  }
  return lines.join("\n");
}

/** The schema inside `.default()` / `.prefault()` wrappers. */
function unwrap(s: z.ZodType): z.ZodType {
  let cur = s as unknown as { def: { type: string; innerType?: unknown } };
  while ((cur.def.type === "default" || cur.def.type === "prefault") && cur.def.innerType) {
    cur = cur.def.innerType as typeof cur;
  }
  return cur as unknown as z.ZodType;
}
