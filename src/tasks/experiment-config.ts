import { z } from "zod";
import { isPolicyLossName, policyLossNames } from "../rl/objectives/registry.js";
import {
  type ConfigLayers,
  type DeepPartial,
  describeConfig,
  parseConfigWith,
  resolveConfig,
} from "../util/config.js";
import { ConfigError } from "../util/errors.js";
import { RECIPE_DEMO_PRESETS, RecipeDemoConfigSchema } from "./recipe-demo-config.js";

/**
 * The `klear experiment losses` config: the paper's loss ablation (Figures 2–3) at demo scale. From one SFT
 * checkpoint, RL once per (loss, seed) with everything else equal; then final held-out accuracy and entropy
 * as mean ± std per loss, and the curves overlaid per loss in the report.
 */
export const ExperimentConfigSchema = z.strictObject({
  losses: z
    .array(z.string())
    .min(1)
    .default(["gppo", "clip-higher", "cispo"])
    .describe("policy losses compared, by registered name (docs/objectives.md; registerPolicyLoss adds one)"),
  seeds: z
    .array(z.number().int())
    .min(1)
    .default([1, 2, 3])
    .describe(
      "RL seeds per loss: sampling and update noise vary, the SFT checkpoint and held-out set do not",
    ),
  init: z
    .string()
    .default("")
    .describe(
      "SFT checkpoint every RL run starts from; empty = run the demo's SFT phase (data, init, sft) into OUT first",
    ),
  lossOptions: z
    .record(z.string(), z.record(z.string(), z.union([z.number(), z.null()])))
    .default({ "clip-higher": { epsHigh: 0.28, clipRatioC: 10 } })
    .describe(
      "per-loss rl.loss fields layered over the loss's own defaults (default: clip-higher as the paper ran it, ε_h 0.28 with dual-clip c 10)",
    ),
  entropyWindow: z
    .number()
    .int()
    .positive()
    .default(5)
    .describe("final entropy = mean over the last N training steps (one step is noisy)"),
  demo: RecipeDemoConfigSchema.prefault({}).describe(
    "the `klear demo` config: its SFT phase makes the checkpoint, its eval section measures every run (the eval harness), its rl section every run shares",
  ),
});

export type ExperimentConfig = z.infer<typeof ExperimentConfigSchema>;

const RECIPE = RECIPE_DEMO_PRESETS;

export const EXPERIMENT_PRESETS = {
  /** 3 losses × 3 seeds of the demo's RL phase (`klear demo`'s tiny-cpu settings) from its SFT checkpoint. */
  "tiny-cpu": { demo: RECIPE["tiny-cpu"] },
  /** For CI: 3 losses × 2 seeds on the demo's ci settings, each RL run a few steps. */
  ci: { seeds: [1, 2], demo: { ...RECIPE.ci, rl: { ...RECIPE.ci.rl, steps: 3 } } },
  /**
   * Seconds (unit tests): 3 losses × 2 seeds on the demo's smoke settings; plumbing, not learning. Both
   * held-out kinds are present, and the group filter is off so the untrained model's steps still update.
   */
  smoke: {
    seeds: [1, 2],
    demo: {
      ...RECIPE.smoke,
      data: { ...RECIPE.smoke.data, heldOutSize: 8 },
      rl: { ...RECIPE.smoke.rl, groupFilter: { enabled: false } },
    },
  },
} satisfies Record<string, DeepPartial<ExperimentConfig>>;

export const EXPERIMENT_PRESET_NAMES = Object.keys(EXPERIMENT_PRESETS);

export function parseExperimentConfig(value: unknown, source: string): ExperimentConfig {
  const config = parseConfigWith(ExperimentConfigSchema, value, source, "experiment");
  for (const name of config.losses) {
    if (!isPolicyLossName(name)) {
      throw new ConfigError(
        `${source}: losses names "${name}", which is not a registered policy loss`,
        `use some of: ${policyLossNames().join(", ")} (or register it with registerPolicyLoss first)`,
      );
    }
  }
  if (
    new Set(config.losses).size !== config.losses.length ||
    new Set(config.seeds).size !== config.seeds.length
  ) {
    throw new ConfigError(`${source}: losses and seeds must not repeat`, "list each loss and each seed once");
  }
  return config;
}

const EXPERIMENT_CONFIG_SPEC = {
  command: "experiment losses",
  presets: EXPERIMENT_PRESETS,
  parse: parseExperimentConfig,
  exampleSection: "demo",
};

export function resolveExperimentConfig(layers: ConfigLayers): ExperimentConfig {
  return resolveConfig(EXPERIMENT_CONFIG_SPEC, layers);
}

export function describeExperimentConfig(): string {
  return describeConfig(ExperimentConfigSchema);
}
