import { z } from "zod";
import { parseRlConfig, type RlConfig, RlConfigSchema } from "../rl/trainer-config.js";
import { parseSftConfig, type SftConfig } from "../sft/config.js";
import { WandbSectionSchema } from "../store/wandb-config.js";
import {
  type ConfigLayers,
  type DeepPartial,
  describeConfig,
  parseConfigWith,
  resolveConfig,
} from "../util/config.js";

// The RL phase takes every `klear rl` field except those the demo fixes (seed, init, task, held-out eval).
const {
  seed: _rlSeed,
  init: _rlInit,
  task: _rlTask,
  eval: _rlEval,
  steps: _rlSteps,
  wandb: _rlWandb,
  ...RL_PASS_THROUGH
} = RlConfigSchema.shape;

/**
 * The `klear demo` config: the Klear recipe in miniature on the recipe problems (math word problems and
 * stdin/stdout programs). Every field has a documented default; the presets carry the tuned numbers
 * (`tiny-cpu` is what `klear demo` runs).
 */
export const RecipeDemoConfigSchema = z.strictObject({
  seed: z
    .number()
    .int()
    .default(0)
    .describe("seeds model init, the data, the held-out split, sampling and RL"),
  model: z
    .strictObject({
      hiddenSize: z.number().int().positive().default(128).describe("d_model"),
      numHiddenLayers: z.number().int().positive().default(2).describe("transformer blocks"),
      numAttentionHeads: z.number().int().positive().default(4).describe("query heads"),
      numKeyValueHeads: z.number().int().positive().default(2).describe("key/value heads (GQA groups)"),
      headDim: z.number().int().positive().default(32).describe("per-head width"),
      intermediateSize: z.number().int().positive().default(384).describe("SwiGLU hidden width"),
      maxPositions: z
        .number()
        .int()
        .positive()
        .default(256)
        .describe("context length (the longest SFT row and prompt + response)"),
    })
    .prefault({})
    .describe("a tiny Qwen3 trained from scratch; byte tokenizer + <|endoftext|>, a small chat template"),
  data: z
    .strictObject({
      heldOutSize: z
        .number()
        .int()
        .positive()
        .default(48)
        .describe("held-out problems (math and code; never trained on)"),
      codeFraction: z.number().min(0).max(1).default(0.5).describe("fraction of code problems"),
      teacherNoise: z
        .number()
        .min(0)
        .max(1)
        .default(0.3)
        .describe("probability a teacher trace is wrong (a wrong step, an off-by-one program)"),
      testsPerProblem: z.number().int().positive().default(6).describe("stdin/stdout tests per program"),
    })
    .prefault({})
    .describe("the synthetic recipe problems (src/tasks/recipe-problems.ts) and the teacher's SFT rows"),
  sft: z
    .strictObject({
      steps: z
        .number()
        .int()
        .positive()
        .default(300)
        .describe("optimizer steps (one epoch over steps × batchSize teacher rows)"),
      batchSize: z.number().int().positive().default(32).describe("rows per step"),
      lr: z.number().positive().default(3e-3).describe("peak learning rate"),
      warmupSteps: z.number().int().min(0).default(20).describe("linear warmup steps"),
      minLrRatio: z.number().min(0).max(1).default(0.1).describe("cosine decay floor, as a fraction of lr"),
      weightDecay: z.number().min(0).default(0.01).describe("AdamW decoupled weight decay"),
      checkpointEvery: z.number().int().positive().default(100).describe("resumable checkpoint interval"),
    })
    .prefault({})
    .describe("phase 1: `klear sft` on the teacher rows (chat template, assistant-only loss)"),
  eval: z
    .strictObject({
      samples: z
        .number()
        .int()
        .positive()
        .default(4)
        .describe("samples per held-out problem (avg@k, pass@k, maj@k)"),
      temperature: z
        .number()
        .min(0)
        .default(0.6)
        .describe("sampling temperature of every held-out evaluation (RL's and the eval harness's)"),
      topP: z.number().gt(0).max(1).default(0.95).describe("nucleus sampling of held-out evaluation"),
      maxNewTokens: z.number().int().positive().default(96).describe("longest held-out response"),
    })
    .prefault({})
    .describe("held-out evaluation through the eval harness, before and after RL"),
  rl: z
    .strictObject({
      enabled: z.boolean().default(true).describe("run phase 2, GPPO RL from the SFT checkpoint"),
      steps: z.number().int().min(0).default(20).describe("RL steps; 0 = SFT and its evaluation only"),
      ...RL_PASS_THROUGH,
    })
    .prefault({})
    .describe("phase 2: `klear rl` fields; seed, task and held-out eval come from the demo"),
  wandb: WandbSectionSchema,
});

export type RecipeDemoConfig = z.infer<typeof RecipeDemoConfigSchema>;

/** The RL numbers of `tiny-cpu`: few code prompts per step (the sandbox runs ~12 programs/s on 2 cores). */
const TINY_RL = {
  steps: 20,
  checkpointEvery: 10,
  rollout: {
    genBatchPrompts: 12,
    trainBatchPrompts: 8,
    n: 8,
    maxNewTokens: 96,
    maxGenBatches: 2,
    temperature: 1,
  },
  loss: { sftAlpha: 0.1 },
  update: { miniBatchPrompts: 8, microBatchSize: 32 },
  optimizer: { lr: 2e-4, warmupSteps: 0 },
};

export const RECIPE_DEMO_PRESETS = {
  /** `klear demo`: the whole recipe in under 10 minutes on 2 idle cores (docs/demo.md has the measurement). */
  "tiny-cpu": { rl: TINY_RL },
  /** CI: the same pipeline, shorter (learning is shown, less reliably). */
  ci: {
    data: { heldOutSize: 24 },
    sft: { steps: 120, checkpointEvery: 60 },
    eval: { samples: 2 },
    rl: {
      ...TINY_RL,
      steps: 6,
      checkpointEvery: 3,
      rollout: { ...TINY_RL.rollout, genBatchPrompts: 8 },
    },
  },
  /** Seconds: proves the plumbing, not the learning (unit tests). */
  smoke: {
    model: { hiddenSize: 32, numHiddenLayers: 1, intermediateSize: 64, headDim: 8, maxPositions: 192 },
    data: { heldOutSize: 4, testsPerProblem: 2 },
    sft: { steps: 4, batchSize: 4, warmupSteps: 1, checkpointEvery: 2 },
    eval: { samples: 2, maxNewTokens: 24 },
    rl: {
      steps: 2,
      checkpointEvery: 1,
      rollout: { genBatchPrompts: 4, trainBatchPrompts: 4, n: 2, maxNewTokens: 24 },
      update: { miniBatchPrompts: 2, microBatchSize: 8 },
      optimizer: { warmupSteps: 0 },
    },
  },
} satisfies Record<string, DeepPartial<RecipeDemoConfig>>;

export type RecipeDemoPresetName = keyof typeof RECIPE_DEMO_PRESETS;
export const RECIPE_DEMO_PRESET_NAMES = Object.keys(RECIPE_DEMO_PRESETS) as RecipeDemoPresetName[];

/** Whether the demo runs its RL phase. */
export function recipeRunsRl(config: RecipeDemoConfig): boolean {
  return config.rl.enabled && config.rl.steps > 0;
}

/**
 * The `klear rl` config of the RL phase: the demo's `rl` section from `init`, its seed, and held-out
 * evaluation at the demo's eval sampling. The task is handed to `runRl` (the recipe task); `task` here only
 * records it (kind math, as rows of mixed kinds are not a `klear rl` task of their own).
 */
export function recipeRlConfig(config: RecipeDemoConfig, init: string, seed = config.seed): RlConfig {
  const { enabled: _enabled, ...rl } = config.rl;
  return parseRlConfig(
    {
      ...rl,
      steps: Math.max(1, rl.steps),
      seed,
      init,
      wandb: config.wandb,
      task: {
        kind: "math",
        trainFile: "(the recipe task of klear demo)",
        testSize: config.data.heldOutSize,
      },
      eval: {
        maxNewTokens: config.eval.maxNewTokens,
        temperature: config.eval.temperature,
        topP: config.eval.topP,
      },
    },
    "demo config section rl",
  );
}

/** Phase 1 as a `klear sft` config: one epoch over the teacher rows in stream order, with the chat template. */
export function recipeSftConfig(config: RecipeDemoConfig, init: string, data: string): SftConfig {
  const t = config.sft;
  return parseSftConfig(
    {
      seed: config.seed,
      init,
      wandb: config.wandb,
      data: { sources: [{ path: data, weight: 1 }], heldOutRows: 0 },
      render: { template: "chat" },
      pack: { maxTokens: config.model.maxPositions, packing: false },
      train: { epochs: 1, shuffle: false, sequencesPerStep: t.batchSize, microSequences: t.batchSize },
      optimizer: {
        lr: t.lr,
        minLrRatio: t.minLrRatio,
        warmupSteps: t.warmupSteps,
        weightDecay: t.weightDecay,
        beta2: 0.99,
      },
      evalEvery: 0,
      checkpointEvery: t.checkpointEvery,
    },
    "demo config section sft",
  );
}

/** Validates a complete or partial config object, naming the first bad field and its source. */
export function parseRecipeDemoConfig(value: unknown, source: string): RecipeDemoConfig {
  const config = parseConfigWith(RecipeDemoConfigSchema, value, source, "demo");
  if (recipeRunsRl(config)) recipeRlConfig(config, "");
  return config;
}

const SPEC = {
  command: "demo",
  presets: RECIPE_DEMO_PRESETS,
  parse: parseRecipeDemoConfig,
  exampleSection: "sft",
};

/** preset → config file → `--a.b=c` overrides, each layer validated. */
export function resolveRecipeDemoConfig(layers: ConfigLayers): RecipeDemoConfig {
  return resolveConfig(SPEC, layers);
}

/** Every field with its default and meaning, for `--help`. */
export function describeRecipeDemoConfig(): string {
  return describeConfig(RecipeDemoConfigSchema);
}
