import type { RlTaskFactory } from "../rl/task.js";
import { parseRlConfig, type RlConfig } from "../rl/trainer-config.js";
import { evaluateRecipe, runRecipeSft } from "./recipe-demo.js";
import { type RecipeDemoConfig, recipeRlConfig } from "./recipe-demo-config.js";
import { RewardCallCounter, recipeRlTask } from "./recipe-task.js";

/** Held-out accuracy of one checkpoint: over all problems, and per part (the recipe's math and code). */
export interface ExperimentAccuracy {
  overall: number;
  parts: Record<string, number>;
}

export interface ExperimentPhaseOptions {
  quiet?: boolean;
  log?: (line: string) => void;
  shouldStop?: () => boolean;
}

/** What `klear experiment losses` needs from a recipe: an SFT checkpoint, an evaluator, each run's RL config, the task. */
export interface ExperimentRecipe {
  /** Runs (or resumes) the SFT phase in `dir`; returns its final checkpoint, or null when stopped. */
  sft(dir: string, opts: ExperimentPhaseOptions): Promise<string | null>;
  /** Held-out accuracy of a checkpoint, evaluated into `dir` (resumable: what is stored there is reused). */
  evaluate(checkpoint: string, dir: string, opts: ExperimentPhaseOptions): Promise<ExperimentAccuracy>;
  /** The RL config of one run: the recipe's, from `init`, with the loss, its options and the seed. */
  rlConfig(init: string, loss: string, lossOptions: Record<string, number | null>, seed: number): RlConfig;
  task: RlTaskFactory;
}

/**
 * The recipe demo as `klear experiment losses` takes it. SFT = the demo's phases 1–3 (teacher rows, a fresh
 * tiny Qwen3, `runSft`) into the experiment folder; accuracy = the demo's held-out evaluation through the eval
 * harness (avg@k over `eval.samples` samples per problem, the demo's seed, so every checkpoint is measured on
 * the same problems with the same sample seeds: paired, and less noisy than RL's own one-sample evaluation);
 * each run's RL config = the demo's RL phase with the loss and seed swapped in. The run's seed moves its
 * sampling and its training prompt stream; the held-out split stays the demo seed's.
 */
export function recipeExperiment(demo: RecipeDemoConfig): ExperimentRecipe {
  return {
    async sft(dir, opts) {
      // runRecipeSft resumes whatever it finds in `dir` (data, init checkpoint, a started SFT run).
      return (await runRecipeSft(demo, dir, opts))?.checkpoint ?? null;
    },
    async evaluate(checkpoint, dir, opts) {
      const e = await evaluateRecipe(demo, checkpoint, dir, new RewardCallCounter(), opts.quiet);
      return { overall: e.overall, parts: { math: e.math, code: e.code } };
    },
    rlConfig(init, loss, lossOptions, seed) {
      const base = recipeRlConfig(demo, init, seed);
      return parseRlConfig(
        { ...base, loss: { ...base.loss, name: loss, ...lossOptions } },
        `experiment run ${loss}/seed-${seed}`,
      );
    },
    task: recipeRlTask({ seed: demo.seed, ...demo.data }),
  };
}
