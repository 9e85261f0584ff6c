import { stopRequestedAtStepBoundary } from "../util/config.js";
import { createProgress } from "../util/progress.js";
import { latestCheckpoint } from "./run.js";

/** How a run of training steps ended. */
export interface TrainingStepsOutcome {
  /** Steps finished (including those of earlier processes of a resumed run). */
  step: number;
  /** Stopped on request before `total`; the last finished step is checkpointed. */
  interrupted: boolean;
  /** Seconds spent in steps by this process (the final checkpoint write excluded). */
  trainSeconds: number;
  /** The newest checkpoint folder after the loop (it holds step `step`). */
  checkpoint: string;
}

export interface TrainingStepsOptions {
  /** Progress-bar label, e.g. "rl". */
  label: string;
  runDir: string;
  /** Steps already finished (the resumed checkpoint's step, or 0). */
  startStep: number;
  total: number;
  /** Save a checkpoint every this many steps and after the last. */
  checkpointEvery: number;
  /** The step the resumed checkpoint holds (already on disk), or null. */
  savedStep: number | null;
  quiet?: boolean;
  /** Checked at each step boundary: true saves a checkpoint and stops. */
  shouldStop?: () => boolean;
  log: (line: string) => void;
  /** Runs the next step, returning the step number it finished and the fields the progress bar shows. */
  runStep: () => Promise<{ step: number; show?: Record<string, string | number> }>;
  /** Writes the resumable checkpoint of `step`. */
  save: (step: number) => Promise<void>;
}

/**
 * The loop every training stage shares: steps until `total` or a stop request (seen at a step boundary,
 * so Ctrl-C lands between steps), a checkpoint every `checkpointEvery` steps, and always one for the
 * last finished step, so an interrupted run resumes exactly where it stopped.
 */
export async function runTrainingSteps(opts: TrainingStepsOptions): Promise<TrainingStepsOutcome> {
  const progress = createProgress(opts.label, opts.total, { unit: "steps", silent: opts.quiet });
  progress.update(opts.startStep);
  const t0 = Date.now();
  let step = opts.startStep;
  let interrupted = false;
  let lastSaved = opts.savedStep ?? -1;
  while (step < opts.total) {
    if (await stopRequestedAtStepBoundary(opts.shouldStop)) {
      interrupted = true;
      break;
    }
    const done = await opts.runStep();
    step = done.step;
    progress.tick(1, done.show);
    if (step % opts.checkpointEvery === 0 || step === opts.total) {
      await opts.save(step);
      lastSaved = step;
    }
  }
  progress.stop();
  const trainSeconds = (Date.now() - t0) / 1000;
  if (lastSaved !== step) await opts.save(step);
  const checkpoint = latestCheckpoint(opts.runDir)?.path ?? "";
  if (interrupted) opts.log(`interrupted at step ${step}/${opts.total}; checkpoint saved to ${checkpoint}`);
  return { step, interrupted, trainSeconds, checkpoint };
}
