/**
 * The paper's RL recipes as plain typed objects (spec §8, §12): pass `preset.loss` to policyLoss,
 * `preset.advantage` to advantages, and so on. Values are the recipe scripts', not verl's defaults.
 */
import type { AdvantageConfig, AdvantageEstimatorName } from "../advantages.js";
import type { DynamicSamplingConfig, GroupFilterConfig, SoftOverlongConfig } from "../filters.js";
import type { PolicyLossConfig, PolicyLossName } from "./config.js";

export interface KlearRlPreset {
  readonly name: string;
  readonly loss: { readonly name: PolicyLossName; readonly config: PolicyLossConfig };
  readonly advantage: { readonly name: AdvantageEstimatorName; readonly config: AdvantageConfig };
  readonly groupFilter: { readonly enabled: boolean; readonly config: GroupFilterConfig };
  readonly dynamicSampling: DynamicSamplingConfig;
  /** Prompts per optimizer mini-batch (× responsesPerPrompt trajectories): 8 updates per step for math, 4 for code. */
  readonly miniBatchPrompts: number;
  readonly ppoEpochs: number;
  /** The positive-sample SFT term (positiveSftTerm). */
  readonly positiveSft: { readonly alpha: number; readonly correctScore: number };
  readonly overlong: {
    /** Mask truncated responses (the README advises it below 32K). */
    readonly filter: boolean;
    readonly softPunishment: SoftOverlongConfig & { readonly enabled: boolean };
  };
  readonly optimizer: {
    readonly lr: number;
    /** Linear warm-up from 0 over this many training steps (the first step runs at lr 0). */
    readonly warmupSteps: number;
    readonly weightDecay: number;
    readonly gradClip: number;
    readonly betas: readonly [number, number];
  };
  readonly lengths: { readonly maxPromptTokens: number; readonly maxResponseTokens: number };
  readonly rollout: { readonly temperature: number; readonly topP: number; readonly topK: number };
}

const KLEAR_GPPO: PolicyLossConfig = {
  epsLow: 0.2,
  epsHigh: 0.28,
  clipRatioC: 10,
  beta1: 1,
  beta2: 1,
  aggregation: "token-mean",
  klCoeff: 0,
  entropyCoeff: 0,
};

/** Klear-Reasoner math RL (perf_run_dapo_ours_math.sh): GPPO, lr 1e-6, 16-prompt mini-batches. */
export const klearMathRlPreset: KlearRlPreset = {
  name: "klear-math",
  loss: { name: "gppo", config: KLEAR_GPPO },
  advantage: { name: "grpo", config: { std: "unbiased", eps: 1e-6, singleton: "reward" } },
  groupFilter: {
    enabled: true,
    config: { metric: "acc", correctScore: 1, keepSingletons: true, maxMeanMetric: null },
  },
  dynamicSampling: {
    trainBatchPrompts: 128,
    responsesPerPrompt: 8,
    genBatchPrompts: 256,
    maxGenBatches: 1,
    onShortfall: "truncate",
    truncateMultiple: 1,
  },
  miniBatchPrompts: 16,
  ppoEpochs: 1,
  positiveSft: { alpha: 0.1, correctScore: 1 },
  overlong: {
    filter: false,
    softPunishment: { enabled: false, maxResponseTokens: 32768, bufferTokens: 4096, penaltyFactor: 1 },
  },
  optimizer: { lr: 1e-6, warmupSteps: 10, weightDecay: 0.1, gradClip: 1, betas: [0.9, 0.999] },
  lengths: { maxPromptTokens: 4096, maxResponseTokens: 32768 },
  rollout: { temperature: 1, topP: 1, topK: -1 },
};

/** Klear-Reasoner code RL (perf_run_dapo_ours_code.sh): as math but lr 5e-7 and 32-prompt mini-batches. */
export const klearCodeRlPreset: KlearRlPreset = {
  ...klearMathRlPreset,
  name: "klear-code",
  miniBatchPrompts: 32,
  optimizer: { ...klearMathRlPreset.optimizer, lr: 5e-7 },
};

/** The README's "more exploration" variant (…_general_gppo.sh): β1 = 0.25, β2 = 1 against entropy collapse. */
export const klearMathGeneralGppoPreset: KlearRlPreset = {
  ...klearMathRlPreset,
  name: "klear-math-general-gppo",
  loss: { name: "gppo", config: { ...KLEAR_GPPO, beta1: 0.25, beta2: 1 } },
};

/** The README's only-high variant (…_only_high.sh): GPPO's gradient on the high side only. */
export const klearMathOnlyHighPreset: KlearRlPreset = {
  ...klearMathRlPreset,
  name: "klear-math-only-high",
  loss: {
    name: "gppo-only-high",
    config: {
      epsLow: 0.2,
      epsHigh: 0.28,
      clipRatioC: 10,
      aggregation: "token-mean",
      klCoeff: 0,
      entropyCoeff: 0,
    },
  },
};

export const KLEAR_RL_PRESETS: Readonly<Record<string, KlearRlPreset>> = {
  "klear-math": klearMathRlPreset,
  "klear-code": klearCodeRlPreset,
  "klear-math-general-gppo": klearMathGeneralGppoPreset,
  "klear-math-only-high": klearMathOnlyHighPreset,
};
