import { z } from "zod";
import { BackendSectionSchema } from "../backend/tinker/config.js";
import {
  checkServerRolloutLag,
  ROLLOUT_BACKENDS,
  RolloutServerConfigSchema,
} from "../rollout/server-config.js";
import { WandbSectionSchema } from "../store/wandb-config.js";
import {
  type ConfigLayers,
  type DeepPartial,
  describeConfig,
  parseConfigWith,
  resolveConfig,
} from "../util/config.js";
import { ConfigError } from "../util/errors.js";
import { ADVANTAGE_ESTIMATORS, advantageEstimatorNames } from "./advantages.js";
import { GROUP_FILTER_METRICS } from "./filters.js";
import { AGGREGATION_MODES } from "./objectives/aggregate.js";
import { POLICY_LOSS_NAMES } from "./objectives/config.js";
import { KL_ESTIMATORS } from "./objectives/kl.js";
import { klearCodeRlPreset, klearMathRlPreset } from "./objectives/presets.js";
import { isPolicyLossName, policyLossNames } from "./objectives/registry.js";

/**
 * The `klear rl` config. Every field has a documented default; the defaults are the `tiny-cpu` preset
 * (the arithmetic task on a tiny model, a minute or two on 2 cores). `klear-math` / `klear-code` carry
 * the paper's recipe numbers (spec §8, §12) and need a GPU-class model and real data.
 */
export const RlConfigSchema = z.strictObject({
  seed: z.number().int().default(1).describe("seeds prompt order, sampling and the held-out split"),
  init: z
    .string()
    .default("")
    .describe(
      "checkpoint folder the policy starts from (set by --init; kept so --resume needs nothing else)",
    ),
  steps: z.number().int().positive().default(30).describe("training steps (one rollout batch each)"),
  backend: BackendSectionSchema,
  wandb: WandbSectionSchema,
  task: z
    .strictObject({
      kind: z
        .enum(["arithmetic", "math", "code"])
        .default("arithmetic")
        .describe(
          "arithmetic: the synthetic task and its verifier; math: verl/Klear rows scored by mathReward; code: rows with tests, run in the sandbox",
        ),
      minTerms: z.number().int().min(2).default(2).describe("arithmetic: fewest numbers to add"),
      maxTerms: z.number().int().min(2).default(3).describe("arithmetic: most numbers to add"),
      maxOperand: z.number().int().min(1).default(9).describe("arithmetic: operands from [0, maxOperand]"),
      trainFile: z
        .string()
        .default("")
        .describe("math: JSONL of verl rows (prompt string or chat messages, reward_model.ground_truth)"),
      testFile: z
        .string()
        .default("")
        .describe("math: held-out JSONL rows (default: the last testSize rows of trainFile are held out)"),
      chatTemplate: z
        .boolean()
        .default(true)
        .describe("math: render chat-message prompts with the tokenizer's chat template"),
      rewardMode: z
        .enum(["klear", "binary"])
        .default("klear")
        .describe(
          "math: klear = ±1 with the </think> rules (spec §9.1), binary = 1/0; code: klear = soft 2·passRate−1 behind the think gate, binary = hard ±1",
        ),
      testSize: z.number().int().positive().default(64).describe("held-out problems (never trained on)"),
    })
    .prefault({})
    .describe("where prompts and rewards come from"),
  rollout: z
    .strictObject({
      genBatchPrompts: z
        .number()
        .int()
        .positive()
        .default(32)
        .describe("prompts sampled per generation batch (Klear: 256, over-sampled for the group filter)"),
      trainBatchPrompts: z
        .number()
        .int()
        .positive()
        .default(32)
        .describe("prompts per training batch (Klear: 128); extra surviving groups are dropped"),
      n: z.number().int().positive().default(8).describe("responses per prompt: GRPO's group size"),
      temperature: z.number().min(0).default(1).describe("sampling temperature (Klear: 1.0)"),
      topP: z.number().gt(0).max(1).default(1).describe("nucleus sampling (Klear: 1.0 = off)"),
      topK: z.number().int().min(-1).default(0).describe("top-k sampling; 0 or -1 = off (Klear: -1)"),
      maxNewTokens: z.number().int().positive().default(40).describe("longest response sampled"),
      maxPromptTokens: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe(
          "longest prompt; longer ones lose their oldest tokens (left truncation, counted as promptsTruncated); 0 = no limit (Klear: 4096)",
        ),
      maxGenBatches: z
        .number()
        .int()
        .default(1)
        .describe("generation batches per step to fill the batch (Klear: 1; ≤ 0 = until full)"),
      backend: z
        .enum(ROLLOUT_BACKENDS)
        .default("local")
        .describe(
          "where responses are sampled: local = klear's engine; server = an inference server (rollout.server)",
        ),
      server: RolloutServerConfigSchema,
    })
    .prefault({})
    .describe("sampling the responses of one step"),
  loss: z
    .strictObject({
      name: z
        .string()
        .default("gppo")
        .refine(isPolicyLossName, {
          error: (issue) =>
            `unknown policy loss ${JSON.stringify(issue.input)}: use one of ${policyLossNames().join(", ")} (or add one with registerPolicyLoss)`,
        })
        .describe(
          `policy loss: ${POLICY_LOSS_NAMES.join(", ")} or any registerPolicyLoss added (docs/objectives.md)`,
        ),
      epsLow: z
        .number()
        .nullable()
        .default(null)
        .describe("ε_low; null = the loss's own default (0.2; GSPO 3e-4)"),
      epsHigh: z
        .number()
        .nullable()
        .default(null)
        .describe("ε_high; null = the loss's own default (0.28; GSPO 4e-4)"),
      clipRatioC: z
        .number()
        .nullable()
        .default(null)
        .describe("dual-clip c; null = the loss's default (GPPO: 10 as Klear, dual-clip: 3, others none)"),
      beta1: z.number().min(0).default(1).describe("GPPO β1: low-side gradient scale (paper: 1)"),
      beta2: z.number().min(0).default(1).describe("GPPO β2: high-side gradient scale (paper: 1)"),
      aggregation: z
        .enum(AGGREGATION_MODES)
        .nullable()
        .default(null)
        .describe(
          "loss aggregation; null = the loss's own default (token-mean as Klear's paper; GSPO seq-mean-token-mean)",
        ),
      groupSequences: z
        .number()
        .int()
        .positive()
        .nullable()
        .default(null)
        .describe(
          "seq-group-token-mean: responses sharing one token mean (the authors' per-rank micro-batch: 2 math, 4 code); null = 1",
        ),
      klCoeff: z.number().min(0).default(0).describe("KL-to-initial-policy loss weight (Klear: 0 = off)"),
      klEstimator: z.enum(KL_ESTIMATORS).default("k3").describe("KL estimator when klCoeff > 0"),
      entropyCoeff: z
        .number()
        .default(0)
        .describe("entropy bonus weight (loss −= coeff·entropy; Klear: 0 = only logged)"),
      tisCap: z
        .number()
        .positive()
        .nullable()
        .default(null)
        .describe(
          "truncated IS against the sampler's log-probs, min(π_old/π_rollout, cap); null = off (Klear)",
        ),
      entropyRatioClip: z
        .tuple([z.number(), z.number()])
        .nullable()
        .default(null)
        .describe("ERC: drop the policy gradient of tokens whose H_θ/H_old leaves (low, high); null = off"),
      sftAlpha: z
        .number()
        .min(0)
        .default(0.1)
        .describe("α of the positive-sample SFT term (Klear: 0.1; 0 = off)"),
    })
    .prefault({})
    .describe("the objective of each mini-batch: policy loss + α·NLL on fully correct responses"),
  advantage: z
    .strictObject({
      estimator: z
        .string()
        .default("grpo")
        .refine((name) => advantageEstimatorNames().includes(name), {
          error: (issue) =>
            `unknown advantage estimator ${JSON.stringify(issue.input)}: use one of ${advantageEstimatorNames().join(", ")}`,
        })
        .describe(
          `advantage estimator: ${ADVANTAGE_ESTIMATORS.join(", ")} or a registered one (Klear: grpo)`,
        ),
      std: z.enum(["unbiased", "population"]).default("unbiased").describe("grpo std (code: unbiased)"),
    })
    .prefault({})
    .describe("per-response advantages, grouped by prompt after filtering"),
  groupFilter: z
    .strictObject({
      enabled: z.boolean().default(true).describe("drop groups with no variance (Klear: on)"),
      metric: z.enum(GROUP_FILTER_METRICS).default("acc").describe("what must vary (Klear: acc)"),
    })
    .prefault({})
    .describe("dynamic sampling's group filter (spec §7.1 step 5)"),
  overlong: z
    .strictObject({
      filter: z.boolean().default(false).describe("mask truncated responses (Klear: off at 32K)"),
      softPunishment: z.boolean().default(false).describe("DAPO's soft overlong penalty (Klear: off)"),
      bufferTokens: z.number().int().positive().default(8).describe("soft-punishment buffer (Klear: 4096)"),
      penaltyFactor: z.number().min(0).default(1).describe("soft-punishment factor (Klear: 1)"),
    })
    .prefault({})
    .describe("handling of responses cut at maxNewTokens"),
  update: z
    .strictObject({
      miniBatchPrompts: z
        .number()
        .int()
        .positive()
        .default(16)
        .describe("prompts per optimizer step (Klear: 16 math, 32 code)"),
      ppoEpochs: z.number().int().positive().default(1).describe("passes over the batch (Klear: 1)"),
      microBatchSize: z
        .number()
        .int()
        .positive()
        .default(64)
        .describe("responses per forward/backward (gradients accumulate; exact for any split)"),
    })
    .prefault({})
    .describe("mini-batch schedule of one step"),
  optimizer: z
    .strictObject({
      lr: z.number().min(0).default(1e-4).describe("peak learning rate (Klear: 1e-6 math, 5e-7 code)"),
      warmupSteps: z
        .number()
        .int()
        .min(0)
        .default(5)
        .describe("linear warmup from 0 over training steps (Klear: 10; step 1 then runs at lr 0)"),
      weightDecay: z.number().min(0).default(0.1).describe("AdamW weight decay (Klear: 0.1)"),
      beta1: z.number().min(0).lt(1).default(0.9).describe("AdamW β1"),
      beta2: z.number().min(0).lt(1).default(0.999).describe("AdamW β2"),
      eps: z
        .number()
        .positive()
        .default(1e-8)
        .describe("AdamW ε (larger damps the sign-like first updates of rarely used parameters)"),
      gradClip: z.number().positive().default(1).describe("global grad-norm clip (Klear: 1.0)"),
    })
    .prefault({})
    .describe("AdamW; the LR schedule steps once per training step"),
  eval: z
    .strictObject({
      maxNewTokens: z.number().int().positive().default(40).describe("longest held-out completion"),
      temperature: z
        .number()
        .min(0)
        .default(0.6)
        .describe("held-out sampling temperature (the paper: 0.6; 0 = greedy)"),
      topP: z.number().gt(0).max(1).default(0.95).describe("held-out nucleus sampling (the paper: 0.95)"),
    })
    .prefault({})
    .describe("held-out accuracy before and after RL"),
  checkpointEvery: z
    .number()
    .int()
    .positive()
    .default(10)
    .describe("save a resumable checkpoint (model, optimizer, RNG position) every N steps"),
});

export type RlConfig = z.infer<typeof RlConfigSchema>;

const M = klearMathRlPreset;
const klearShared = {
  seed: 1,
  task: { kind: "math", testSize: 30 },
  rollout: {
    genBatchPrompts: M.dynamicSampling.genBatchPrompts,
    trainBatchPrompts: M.dynamicSampling.trainBatchPrompts,
    n: M.dynamicSampling.responsesPerPrompt,
    temperature: M.rollout.temperature,
    topP: M.rollout.topP,
    topK: M.rollout.topK,
    maxNewTokens: M.lengths.maxResponseTokens,
    maxPromptTokens: M.lengths.maxPromptTokens,
    maxGenBatches: M.dynamicSampling.maxGenBatches,
  },
  // ε, dual-clip c and the aggregation stay null: the loss's own defaults, which for GPPO are the recipe's
  // (0.2 / 0.28 / 10, token-mean; test/rl/trainer.test.ts checks they match M.loss.config), so a preset
  // whose loss name is switched (e.g. to gspo) gets that loss's defaults, not GPPO's.
  loss: {
    name: M.loss.name,
    beta1: M.loss.config.beta1 ?? 1,
    beta2: M.loss.config.beta2 ?? 1,
    klCoeff: 0,
    sftAlpha: M.positiveSft.alpha,
  },
  advantage: { estimator: M.advantage.name, std: "unbiased" },
  groupFilter: { enabled: M.groupFilter.enabled, metric: M.groupFilter.config.metric ?? "acc" },
  overlong: {
    filter: M.overlong.filter,
    softPunishment: M.overlong.softPunishment.enabled,
    bufferTokens: M.overlong.softPunishment.bufferTokens,
    penaltyFactor: M.overlong.softPunishment.penaltyFactor,
  },
  update: { ppoEpochs: M.ppoEpochs, microBatchSize: 8 },
  eval: { maxNewTokens: M.lengths.maxResponseTokens, temperature: 0.6, topP: 0.95 },
  checkpointEvery: 5,
} as const;

/** Named starting points; any field can still be overridden by a config file or `--a.b=c`. */
export const RL_PRESETS = {
  /** The default: GPPO on the arithmetic task with a tiny model, a minute or two on 2 cores. */
  "tiny-cpu": {},
  /** Klear-Reasoner math RL (perf_run_dapo_ours_math.sh): needs a GPU-class model and math rows. */
  "klear-math": {
    ...klearShared,
    // An estimate (the paper does not say): 5 epochs over the 88K math prompts at 256 a step.
    steps: 5 * Math.floor(88_000 / M.dynamicSampling.genBatchPrompts),
    update: { ...klearShared.update, miniBatchPrompts: M.miniBatchPrompts },
    optimizer: {
      lr: M.optimizer.lr,
      warmupSteps: M.optimizer.warmupSteps,
      weightDecay: M.optimizer.weightDecay,
      beta1: M.optimizer.betas[0],
      beta2: M.optimizer.betas[1],
      gradClip: M.optimizer.gradClip,
    },
  },
  /**
   * Klear-Reasoner code RL (perf_run_dapo_ours_code.sh): as math but lr 5e-7 and 32-prompt mini-batches,
   * code rows scored in the sandbox with the soft reward. Steps: an estimate (the paper does not say),
   * the recipe's 5 epochs over the 18K-prompt code set at 256 prompts a step, 5 × ⌊18000 / 256⌋ = 350.
   */
  "klear-code": {
    ...klearShared,
    task: { kind: "code", testSize: 30 },
    steps: 5 * Math.floor(18_000 / M.dynamicSampling.genBatchPrompts),
    update: { ...klearShared.update, miniBatchPrompts: klearCodeRlPreset.miniBatchPrompts },
    optimizer: {
      lr: klearCodeRlPreset.optimizer.lr,
      warmupSteps: klearCodeRlPreset.optimizer.warmupSteps,
      weightDecay: klearCodeRlPreset.optimizer.weightDecay,
      beta1: klearCodeRlPreset.optimizer.betas[0],
      beta2: klearCodeRlPreset.optimizer.betas[1],
      gradClip: klearCodeRlPreset.optimizer.gradClip,
    },
  },
} satisfies Record<string, DeepPartial<RlConfig>>;

export type RlPresetName = keyof typeof RL_PRESETS;
export const RL_PRESET_NAMES = Object.keys(RL_PRESETS) as RlPresetName[];

/** Validates a complete or partial config object, naming the first bad field and its source. */
export function parseRlConfig(value: unknown, source: string): RlConfig {
  const c = parseConfigWith(RlConfigSchema, value, source, "rl");
  if (c.task.maxTerms < c.task.minTerms) {
    throw new ConfigError(
      `${source}: task.maxTerms (${c.task.maxTerms}) is below task.minTerms (${c.task.minTerms})`,
      "raise task.maxTerms",
    );
  }
  const groupSequences = c.loss.groupSequences ?? 1;
  if (c.loss.aggregation === "seq-group-token-mean" && c.update.microBatchSize % groupSequences !== 0) {
    throw new ConfigError(
      `${source}: update.microBatchSize (${c.update.microBatchSize}) is not a multiple of loss.groupSequences (${groupSequences})`,
      "make each micro-batch hold whole token-mean groups, so the split never changes the gradient",
    );
  }
  if (c.rollout.trainBatchPrompts > c.rollout.genBatchPrompts * Math.max(1, c.rollout.maxGenBatches)) {
    // Not an error in verl (the batch is just short), but here it always is: say so up front.
    if (c.rollout.maxGenBatches > 0) {
      throw new ConfigError(
        `${source}: rollout.trainBatchPrompts (${c.rollout.trainBatchPrompts}) exceeds what ${c.rollout.maxGenBatches} generation batch(es) of ${c.rollout.genBatchPrompts} prompts can fill`,
        "raise rollout.genBatchPrompts or rollout.maxGenBatches, or lower rollout.trainBatchPrompts",
      );
    }
  }
  checkRolloutBackend(c, source);
  return c;
}

/** The rollout backend's own rules: overlap needs a server, and the server's lag must be allowed. */
function checkRolloutBackend(c: RlConfig, source: string): void {
  if (c.rollout.backend === "server") {
    checkServerRolloutLag(c.rollout.server, source);
    return;
  }
  if (c.rollout.server.overlap) {
    throw new ConfigError(
      `${source}: rollout.server.overlap needs rollout.backend server; the local engine samples and trains in this process, one after the other, so there is nothing to overlap`,
      "set rollout.backend=server (with rollout.server.endpoints), or drop rollout.server.overlap",
    );
  }
}

const RL_CONFIG_SPEC = {
  command: "rl",
  presets: RL_PRESETS,
  parse: parseRlConfig,
  exampleSection: "loss",
};

/**
 * preset → config file → `--a.b=c` overrides, each layer validated. An unknown key anywhere is an error
 * naming it (a typo never passes silently).
 */
export function resolveRlConfig(layers: ConfigLayers): RlConfig {
  return resolveConfig(RL_CONFIG_SPEC, layers);
}

/** Every field with its default and meaning, for `--help`. */
export function describeRlConfig(): string {
  return describeConfig(RlConfigSchema);
}
