import { z } from "zod";
import { parseRlConfig, type RlConfig, RlConfigSchema } from "../rl/trainer-config.js";
import { parseSftConfig, type SftConfig } from "../sft/config.js";
import {
  type ConfigLayers,
  type DeepPartial,
  describeConfig,
  parseConfigWith,
  resolveConfig,
} from "../util/config.js";

// The demo's RL phase takes every `klear rl` field except those the demo itself fixes.
const {
  seed: _rlSeed,
  init: _rlInit,
  task: _rlTask,
  eval: _rlEval,
  steps: _rlSteps,
  ...RL_PASS_THROUGH
} = RlConfigSchema.shape;

/**
 * The `klear demo` config. Every field has a documented default; the defaults are the `tiny-cpu` preset:
 * the Klear recipe in miniature, about two to three minutes on 2 CPU cores. Phase 1 is supervised
 * fine-tuning on a noisy teacher (as long-CoT SFT data is imperfect), phase 2 GPPO RL from that
 * checkpoint with the verifier's reward, which corrects what the teacher taught wrong.
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
      tieWordEmbeddings: z
        .boolean()
        .default(false)
        .describe("share input and output embeddings (untied lets RL move a digit's output row alone)"),
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
        .default(0.5)
        .describe("probability a teacher solution has one wrong step (RL has something to fix)"),
      testSize: z.number().int().positive().default(100).describe("held-out problems (never trained on)"),
    })
    .prefault({})
    .describe("the synthetic arithmetic task (src/tasks/arithmetic.ts)"),
  train: z
    .strictObject({
      steps: z.number().int().positive().default(300).describe("optimizer steps"),
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
  rl: z
    .strictObject({
      enabled: z.boolean().default(true).describe("run phase 2, GPPO RL from the SFT checkpoint"),
      steps: z
        .number()
        .int()
        .min(0)
        .default(30)
        .describe("RL steps (one rollout batch each); 0 = the supervised demo only"),
      ...RL_PASS_THROUGH,
    })
    .prefault({})
    .describe(
      "phase 2: `klear rl` fields (tiny-cpu defaults); seed, task and held-out eval come from the demo",
    ),
});

export type DemoConfig = z.infer<typeof DemoConfigSchema>;

/** Named starting points; any field can still be overridden by a config file or `--a.b=c`. */
export const DEMO_PRESETS = {
  /** The default: about two to three minutes on 2 CPU cores, SFT then RL. */
  "tiny-cpu": {},
  /** A few seconds end to end, for tests and CI: proves the pipeline, not the learning. */
  smoke: {
    model: { hiddenSize: 32, numHiddenLayers: 1, intermediateSize: 64, headDim: 8 },
    task: { testSize: 8 },
    train: { steps: 6, batchSize: 4, warmupSteps: 1, checkpointEvery: 3 },
    eval: { maxNewTokens: 24, showSamples: 2 },
    rl: {
      steps: 2,
      checkpointEvery: 1,
      rollout: { genBatchPrompts: 4, trainBatchPrompts: 4, n: 4, maxNewTokens: 24 },
      update: { miniBatchPrompts: 2, microBatchSize: 16 },
      optimizer: { warmupSteps: 0 },
    },
  },
  /** Larger and longer (several minutes): longer sums. */
  "small-cpu": {
    model: { hiddenSize: 128, numHiddenLayers: 4, headDim: 32, intermediateSize: 384 },
    task: { maxTerms: 4 },
    train: { steps: 800, lr: 2e-3, checkpointEvery: 200 },
    eval: { maxNewTokens: 56 },
    rl: { rollout: { maxNewTokens: 56 } },
  },
} satisfies Record<string, DeepPartial<DemoConfig>>;

export type DemoPresetName = keyof typeof DEMO_PRESETS;
export const DEMO_PRESET_NAMES = Object.keys(DEMO_PRESETS) as DemoPresetName[];

/**
 * The `klear rl` config of the demo's RL phase: the demo's `rl` section, with the task, seed and held-out
 * evaluation taken from the demo so RL is measured on the very problems SFT was.
 */
export function demoRlConfig(config: DemoConfig, init: string): RlConfig {
  const { enabled: _enabled, ...rl } = config.rl;
  return parseRlConfig(
    {
      ...rl,
      steps: Math.max(1, rl.steps),
      seed: config.seed,
      init,
      task: {
        kind: "arithmetic",
        minTerms: config.task.minTerms,
        maxTerms: config.task.maxTerms,
        maxOperand: config.task.maxOperand,
        testSize: config.task.testSize,
      },
      // Greedy, as the SFT phase is measured, so the two phases' accuracies compare.
      eval: { maxNewTokens: config.eval.maxNewTokens, temperature: 0, topP: 1 },
    },
    "demo config section rl",
  );
}

/** The tiny model's context, and so the longest supervised row (tokens). */
export const DEMO_MAX_TOKENS = 256;

/**
 * The supervised phase as a `klear sft` config: one pass over the teacher rows in stream order (the stream is
 * already random), `train.batchSize` rows a step in one micro-batch, no packing, the demo's optimizer.
 */
export function demoSftConfig(config: DemoConfig): SftConfig {
  const t = config.train;
  return parseSftConfig(
    {
      seed: config.seed,
      render: { template: "none" },
      pack: { maxTokens: DEMO_MAX_TOKENS, packing: false },
      train: { epochs: 1, shuffle: false, sequencesPerStep: t.batchSize, microSequences: t.batchSize },
      optimizer: {
        lr: t.lr,
        minLrRatio: t.minLrRatio,
        warmupSteps: t.warmupSteps,
        weightDecay: t.weightDecay,
        beta1: t.beta1,
        beta2: t.beta2,
        gradClip: t.gradClip,
      },
      evalEvery: 0,
      checkpointEvery: t.checkpointEvery,
    },
    "demo config section train",
  );
}

/** Whether the demo runs its RL phase. */
export function demoRunsRl(config: DemoConfig): boolean {
  return config.rl.enabled && config.rl.steps > 0;
}

/** Validates a complete or partial config object, naming the first bad field and its source. */
export function parseDemoConfig(value: unknown, source: string): DemoConfig {
  const config = parseConfigWith(DemoConfigSchema, value, source, "demo");
  // The RL phase's own cross-field rules (e.g. batch sizes), checked before anything runs.
  if (demoRunsRl(config)) demoRlConfig(config, "");
  return config;
}

const DEMO_CONFIG_SPEC = {
  command: "demo",
  presets: DEMO_PRESETS,
  parse: parseDemoConfig,
  exampleSection: "train",
};

/**
 * preset → config file → `--a.b=c` overrides, each layer validated. An unknown key anywhere is an
 * error naming it (a typo never passes silently).
 */
export function resolveDemoConfig(layers: ConfigLayers): DemoConfig {
  return resolveConfig(DEMO_CONFIG_SPEC, layers);
}

/** Every field with its default and meaning, for `--help`. */
export function describeDemoConfig(): string {
  return describeConfig(DemoConfigSchema);
}
