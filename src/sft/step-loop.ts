/**
 * The one SFT step loop, shared by `klear sft` (trainer.ts) and the demo's supervised phase: the seeded plan of
 * packed sequences, AdamW with warmup + cosine, clipping, per-step metrics, held-out loss and checkpoints.
 */
import { type LrSchedule, lrAt } from "../engine/optim.js";
import type { Qwen3Model } from "../model/qwen3.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { saveTrainingCheckpoint } from "../store/checkpoint.js";
import { appendMetrics, type RunPaths } from "../store/run.js";
import { runTrainingSteps } from "../store/steps.js";
import type { SftConfig } from "./config.js";
import type { SftExample } from "./data.js";
import { epochRows, packRows, type WeightedSource } from "./pack.js";
import { localSftUpdater, type SftUpdater } from "./updater.js";

/** One optimizer step's line in metrics.jsonl. */
export interface SftStepMetrics {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  lossTokens: number;
  tokens: number;
  sequences: number;
  paddingFraction: number;
  tokensPerSecond: number;
  stepSeconds: number;
  heldOutLoss?: number;
}

/** Every step's packed sequences (row indexes), all epochs in order: a pure function of the data and seed. */
function planSteps(config: SftConfig, examples: readonly SftExample[], sources: readonly WeightedSource[]) {
  const steps: { epoch: number; sequences: number[][] }[] = [];
  const S = config.train.sequencesPerStep;
  for (let epoch = 0; epoch < config.train.epochs; epoch++) {
    const order = epochRows(sources, config.seed, epoch, config.train.shuffle);
    const bins = packRows(order, (r) => examples[r].ids.length, {
      ...config.pack,
      seed: config.seed,
      epoch,
      shuffle: config.train.shuffle,
    });
    for (let i = 0; i < bins.length; i += S) steps.push({ epoch, sequences: bins.slice(i, i + S) });
  }
  const max = config.train.maxSteps;
  return max > 0 ? steps.slice(0, max) : steps;
}

/** What the step loop needs of its caller's trainer state (the caller may keep more in it). */
export interface SftLoopState {
  step: number;
  firstLoss: number | null;
}

export interface SftStepsOptions<S extends SftLoopState> {
  /** Progress-bar label. */
  label: string;
  paths: RunPaths;
  /** The seed and the pack, train, optimizer, evalEvery and checkpointEvery sections are used. */
  config: SftConfig;
  /** The local engine's model, trained on its fast path (packed segments, fused loss) unless `updater` is given. */
  model?: Qwen3Model;
  /** What trains instead of `model` (e.g. `backendSftUpdater` over a training backend's policy). */
  updater?: SftUpdater;
  tokenizer: Tokenizer;
  examples: readonly SftExample[];
  /** Training rows per source (indexes into `examples`) with their mixing weights. */
  sources: readonly WeightedSource[];
  /** Rows for the held-out loss (none: no held-out loss is logged). */
  heldOut: readonly SftExample[];
  /** The trainer state: step 0 for a new run, else the resumed checkpoint's; updated as steps finish. */
  state: S;
  /** The checkpoint being resumed (the local path restores its optimizer moments here), or null. */
  resumeFrom: { step: number; path: string } | null;
  quiet?: boolean;
  shouldStop?: () => boolean;
  log: (line: string) => void;
}

export interface SftStepsOutcome {
  step: number;
  totalSteps: number;
  interrupted: boolean;
  trainSeconds: number;
  checkpoint: string;
  lastLoss: number | null;
  heldOutLossAfter: number | null;
  /** Padding positions over all computed positions, averaged over this process's steps. */
  paddingFraction: number;
  tokensPerSecond: number;
}

/**
 * The one SFT step loop (used by `klear sft` and the demo's supervised phase): the seeded plan of packed
 * sequences over all epochs, one optimizer step per planned batch, metrics per step, held-out loss every
 * `evalEvery` steps and after the last, resumable checkpoints holding `state`. Appends to the run's metrics.
 */
export async function trainSftSteps<S extends SftLoopState>(
  opts: SftStepsOptions<S>,
): Promise<SftStepsOutcome> {
  const { config, examples, heldOut, state, paths } = opts;
  const plan = planSteps(config, examples, opts.sources);
  const updater = opts.updater ?? (await localUpdaterOf(opts));
  const total = plan.length;
  const warmupSteps = config.optimizer.warmupSteps ?? Math.round(config.optimizer.warmupRatio * total);
  const schedule: LrSchedule = {
    kind: "cosine",
    warmupSteps,
    totalSteps: total,
    minLrRatio: config.optimizer.minLrRatio,
  };
  let lastLoss: number | null = null;
  let heldOutAfter: number | null = null;
  let padSum = 0;
  let tokSum = 0;
  let secSum = 0;
  let stepsHere = 0;
  const evalEvery = config.evalEvery;
  const outcome = await runTrainingSteps({
    label: opts.label,
    runDir: paths.dir,
    startStep: state.step,
    total,
    checkpointEvery: config.checkpointEvery,
    savedStep: opts.resumeFrom?.step ?? null,
    quiet: opts.quiet,
    shouldStop: opts.shouldStop,
    log: opts.log,
    runStep: async () => {
      const t0 = performance.now();
      const planned = plan[state.step];
      const sequences = planned.sequences.map((rows) => rows.map((r) => examples[r]));
      const g = await updater.accumulate(sequences);
      // lrAt counts from 0, so step k (1-based) uses the rate at k: warmup starts above zero.
      const lr = lrAt(schedule, config.optimizer.lr, state.step + 1);
      const gradNorm = await updater.step(lr);
      state.step++;
      state.firstLoss ??= g.loss;
      lastLoss = g.loss;
      const stepSeconds = (performance.now() - t0) / 1000;
      const metrics: SftStepMetrics = {
        step: state.step,
        epoch: planned.epoch,
        loss: g.loss,
        lr,
        gradNorm,
        lossTokens: g.lossTokens,
        tokens: g.realTokens,
        sequences: sequences.length,
        paddingFraction: g.computedTokens > 0 ? 1 - g.realTokens / g.computedTokens : 0,
        tokensPerSecond: g.realTokens / stepSeconds,
        stepSeconds,
      };
      if ((evalEvery > 0 && state.step % evalEvery === 0) || state.step === total) {
        const h = await updater.heldOutLoss(heldOut);
        if (h !== null) metrics.heldOutLoss = h;
        if (state.step === total) heldOutAfter = h;
      }
      appendMetrics(paths, { ...metrics });
      padSum += metrics.paddingFraction;
      tokSum += g.realTokens;
      secSum += stepSeconds;
      stepsHere++;
      const show: Record<string, string | number> = {
        loss: g.loss.toFixed(3),
        "tok/s": Math.round(metrics.tokensPerSecond),
      };
      if (metrics.heldOutLoss !== undefined) show.heldOut = metrics.heldOutLoss.toFixed(3);
      return { step: state.step, show };
    },
    save: async (step) => {
      await saveTrainingCheckpoint(paths, step, {
        payload: updater.payload,
        trainerState: { ...state },
      });
    },
  });
  // A resumed run whose last step was already done still reports the final held-out loss.
  if (!outcome.interrupted && heldOutAfter === null && state.step === total) {
    heldOutAfter = await updater.heldOutLoss(heldOut);
  }
  return {
    step: outcome.step,
    totalSteps: total,
    interrupted: outcome.interrupted,
    trainSeconds: outcome.trainSeconds,
    checkpoint: outcome.checkpoint,
    lastLoss,
    heldOutLossAfter: heldOutAfter,
    paddingFraction: stepsHere > 0 ? padSum / stepsHere : 0,
    tokensPerSecond: secSum > 0 ? tokSum / secSum : 0,
  };
}

function localUpdaterOf<S extends SftLoopState>(opts: SftStepsOptions<S>): Promise<SftUpdater> {
  if (!opts.model) throw new TypeError("trainSftSteps needs a model or an updater");
  return localSftUpdater(
    opts.model,
    opts.tokenizer,
    opts.config,
    opts.resumeFrom && { path: opts.resumeFrom.path, step: opts.state.step },
  );
}
