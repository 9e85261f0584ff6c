import { z } from "zod";
import { BackendSectionSchema } from "../backend/tinker/config.js";
import { WandbSectionSchema } from "../store/wandb-config.js";
import {
  type ConfigLayers,
  type DeepPartial,
  describeConfig,
  parseConfigWith,
  resolveConfig,
} from "../util/config.js";

/** Where a row keeps its turns; every name is a dotted path into the row. */
const SftFieldsObject = z.strictObject({
  messages: z.string().default("messages").describe("HF chat rows: the list of {role, content} turns"),
  conversations: z
    .string()
    .default("conversations")
    .describe("ShareGPT / OpenThoughts rows: the list of {from, value} turns"),
  role: z.string().default("role").describe("a chat turn's role key"),
  content: z.string().default("content").describe("a chat turn's text key"),
  reasoning: z
    .string()
    .default("reasoning_content")
    .describe("an assistant turn's separate reasoning (rendered in <think> by Qwen3's template)"),
  from: z.string().default("from").describe("a ShareGPT turn's speaker key (human/gpt/system → roles)"),
  value: z.string().default("value").describe("a ShareGPT turn's text key"),
  system: z
    .string()
    .default("system")
    .describe("a row-level system prompt (OpenThoughts), prepended when the turns have none"),
  prompt: z.string().default("prompt").describe("prompt/completion rows: the prompt (text or turns)"),
  completion: z
    .string()
    .default("completion")
    .describe("prompt/completion rows: the completion (text or assistant turns)"),
});
export const SftFieldsSchema = SftFieldsObject.prefault({});

export const SFT_FORMATS = ["auto", "messages", "conversations", "prompt-completion"] as const;
export type SftFormat = (typeof SFT_FORMATS)[number];

export const SftSourceSchema = z.strictObject({
  path: z
    .union([z.string(), z.array(z.string())])
    .describe("jsonl, .jsonl.gz, parquet or JSON files, or folders of shards"),
  weight: z
    .number()
    .min(0)
    .default(1)
    .describe("rows drawn per epoch, as a multiple of the source's size (0.5: a seeded half; 2: twice)"),
  format: z.enum(SFT_FORMATS).default("auto").describe("row format; auto sniffs each row"),
  name: z.string().default("").describe("name in the summary (default: the first path)"),
  fields: z
    .strictObject(
      Object.fromEntries(
        Object.entries(SftFieldsObject.shape).map(([k, v]) => [k, v.unwrap().optional()]),
      ) as { [K in keyof typeof SftFieldsObject.shape]: z.ZodOptional<z.ZodString> },
    )
    .optional()
    .describe('field names of this source, over data.fields (e.g. {"messages": "dialog"})'),
});
export type SftSource = z.infer<typeof SftSourceSchema>;

/**
 * The `klear sft` config. Every field has a documented default; the defaults are the `tiny-cpu` preset (a
 * small chat set on a tiny model, seconds on 2 cores). `klear-sft` carries the paper's values (spec §3).
 */
export const SftConfigSchema = z.strictObject({
  seed: z.number().int().default(1).describe("seeds shuffling, packing order and the held-out split"),
  init: z
    .string()
    .default("")
    .describe("checkpoint folder training starts from (set by --init; kept so --resume needs nothing else)"),
  backend: BackendSectionSchema,
  wandb: WandbSectionSchema,
  data: z
    .strictObject({
      sources: z
        .array(SftSourceSchema)
        .default([])
        .describe("row sources with mixing weights (set by --data FILE...)"),
      fields: SftFieldsSchema.describe("field names used by every source without its own"),
      heldOut: z
        .union([z.string(), z.array(z.string())])
        .default([])
        .describe("held-out row files (default: heldOutRows rows set aside from the sources)"),
      heldOutRows: z
        .number()
        .int()
        .min(0)
        .default(16)
        .describe("rows set aside for the held-out loss when no heldOut files are given"),
      onBadRow: z
        .enum(["skip", "error"])
        .default("skip")
        .describe("a malformed row: skip it (counted per cause) or stop with its file and line"),
      overLong: z
        .enum(["truncate", "drop"])
        .default("truncate")
        .describe("a row longer than pack.maxTokens: cut to the limit, or drop it (counted either way)"),
      maxRows: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe("read at most this many rows per source (0 = all)"),
    })
    .prefault({})
    .describe("the chat rows trained on"),
  render: z
    .strictObject({
      template: z
        .enum(["chat", "none"])
        .default("chat")
        .describe(
          "chat: the checkpoint's own chat template; none: prompt + completion + EOS as plain text (prompt/completion rows)",
        ),
      trainOn: z
        .enum(["all-assistant", "last-assistant"])
        .default("all-assistant")
        .describe("which assistant turns carry loss (reasoning inside them included)"),
      turnEndAsEos: z
        .boolean()
        .default(true)
        .describe(
          "make the template's end-of-turn token the checkpoint's EOS when it differs (Qwen3-Base: <|endoftext|> → <|im_end|>), so generation stops after a turn",
        ),
    })
    .prefault({})
    .describe("rendering rows to tokens and the assistant-only loss mask"),
  pack: z
    .strictObject({
      maxTokens: z
        .number()
        .int()
        .positive()
        .default(256)
        .describe("tokens per training sequence (paper: 32,768)"),
      packing: z
        .boolean()
        .default(true)
        .describe("pack several rows per sequence (no attention across rows, RoPE restarts per row)"),
      window: z
        .number()
        .int()
        .positive()
        .default(1024)
        .describe("rows bin-packed together (first-fit decreasing) after the epoch's shuffle"),
    })
    .prefault({})
    .describe("sequences of one step"),
  train: z
    .strictObject({
      epochs: z.number().int().positive().default(4).describe("passes over the data (paper: 4)"),
      shuffle: z
        .boolean()
        .default(true)
        .describe("seeded shuffle of the rows and packed sequences each epoch (false: the files' order)"),
      maxSteps: z.number().int().min(0).default(0).describe("stop after this many steps (0 = all epochs)"),
      sequencesPerStep: z
        .number()
        .int()
        .positive()
        .default(4)
        .describe("packed sequences per optimizer step; the loss is the token mean over all of them"),
      microSequences: z
        .number()
        .int()
        .positive()
        .default(4)
        .describe(
          "sequences per forward/backward, at most a step's (gradients accumulate; the result does not depend on it)",
        ),
      recompute: z
        .boolean()
        .default(false)
        .describe(
          "recompute each layer's activations in backward: ~1 more forward of compute, far less memory",
        ),
    })
    .prefault({})
    .describe("the step schedule"),
  optimizer: z
    .strictObject({
      lr: z.number().positive().default(1e-3).describe("peak learning rate (paper: 8e-5)"),
      minLrRatio: z
        .number()
        .min(0)
        .max(1)
        .default(0.5)
        .describe("cosine floor as a fraction of lr (paper: 4e-5 / 8e-5 = 0.5)"),
      warmupRatio: z
        .number()
        .min(0)
        .max(1)
        .default(0.05)
        .describe("linear warmup over this fraction of all steps (not in the paper)"),
      warmupSteps: z
        .number()
        .int()
        .min(0)
        .nullable()
        .default(null)
        .describe("linear warmup over this many steps; null = warmupRatio decides"),
      weightDecay: z
        .number()
        .min(0)
        .default(0.01)
        .describe("AdamW decoupled weight decay (not in the paper)"),
      beta1: z.number().min(0).lt(1).default(0.9).describe("AdamW β1"),
      beta2: z.number().min(0).lt(1).default(0.95).describe("AdamW β2 (not in the paper)"),
      eps: z.number().positive().default(1e-8).describe("AdamW ε"),
      gradClip: z.number().positive().default(1).describe("global gradient-norm clip"),
    })
    .prefault({})
    .describe("AdamW with warmup then cosine decay to a floor, stepped once per optimizer step"),
  evalEvery: z
    .number()
    .int()
    .min(0)
    .default(10)
    .describe("held-out loss every N steps and after the last (0 = only after the last)"),
  checkpointEvery: z
    .number()
    .int()
    .positive()
    .default(50)
    .describe("save an HF-loadable, resumable checkpoint every N steps (and after the last)"),
});

export type SftConfig = z.infer<typeof SftConfigSchema>;

/** Named starting points; any field can still be overridden by a config file or `--a.b=c`. */
export const SFT_PRESETS = {
  /** The default: tiny models on a CPU, seconds to minutes. */
  "tiny-cpu": {},
  /**
   * Klear-Reasoner's long-CoT SFT (spec §3): 32K-token sequences, lr 8e-5 cosine to 4e-5, 4 epochs. Batch size,
   * warmup, betas and weight decay are not in the paper; these are common long-CoT values (OpenThoughts-like).
   */
  "klear-sft": {
    pack: { maxTokens: 32_768, packing: true, window: 4096 },
    train: { epochs: 4, sequencesPerStep: 32, microSequences: 1, recompute: true },
    optimizer: { lr: 8e-5, minLrRatio: 0.5, warmupRatio: 0.1, weightDecay: 0, beta1: 0.9, beta2: 0.999 },
    data: { heldOutRows: 256 },
    evalEvery: 100,
    checkpointEvery: 500,
  },
} satisfies Record<string, DeepPartial<SftConfig>>;

export type SftPresetName = keyof typeof SFT_PRESETS;
export const SFT_PRESET_NAMES = Object.keys(SFT_PRESETS) as SftPresetName[];

/** Validates a complete or partial config object, naming the first bad field and its source. */
export function parseSftConfig(value: unknown, source: string): SftConfig {
  return parseConfigWith(SftConfigSchema, value, source, "sft");
}

const SFT_CONFIG_SPEC = {
  command: "sft",
  presets: SFT_PRESETS,
  parse: parseSftConfig,
  exampleSection: "optimizer",
};

/** preset → config file → `--a.b=c` overrides, each layer validated. */
export function resolveSftConfig(layers: ConfigLayers = {}): SftConfig {
  return resolveConfig(SFT_CONFIG_SPEC, layers);
}

/** Every field with its default and meaning, for `klear sft --help`, then the fields of a data.sources entry. */
export function describeSftConfig(): string {
  const entry = Object.entries(SftSourceSchema.shape).map(
    ([k, v]) => `    ${k.padEnd(8)} ${(v as { description?: string }).description ?? ""}`,
  );
  return [
    describeConfig(SftConfigSchema, { flagWidth: 44 }),
    "",
    'data.sources entries (in --config), e.g. {"data": {"sources": [{"path": "math.jsonl", "weight": 1}, {"path": "code/", "weight": 0.5}]}}:',
    ...entry,
  ].join("\n");
}
