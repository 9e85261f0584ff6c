import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type AdamW, adamWStateFromTensors, adamWStateTensors } from "../engine/optim.js";
import { type CheckpointableModel, saveCheckpoint } from "../model/checkpoint.js";
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from "../model/safetensors.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { type RunPaths, saveRunCheckpoint } from "./run.js";

/**
 * Resumable training checkpoints, one format for every stage (SFT, RL, the demo): a checkpoint folder
 * `checkpoints/step-N/` holds
 *
 *   config.json, model.safetensors, tokenizer files   the HF-style model folder (`loadModel` reads it)
 *   optimizer.safetensors                             AdamW's moments, its step count in the metadata
 *   trainer_state.json                                the stage's own state: step, data cursor, what
 *                                                     seeds its random streams, measured baselines
 *
 * and is renamed into place whole, so `latestCheckpoint` never sees a half-written one.
 */
export const TRAINER_STATE_FILE = "trainer_state.json";
export const OPTIMIZER_STATE_FILE = "optimizer.safetensors";

/** The least every trainer state holds: the number of finished steps. */
export interface TrainerStateBase {
  step: number;
}

/** The local engine's training state: the model and its tokenizer, and the optimizer moments. */
export interface LocalTrainingState {
  model: CheckpointableModel;
  tokenizer: Tokenizer;
  optimizer: AdamW;
}

/**
 * What fills a checkpoint besides the trainer state: the local model and optimizer, or anything that
 * writes its own weights and optimizer state into the folder (a training backend).
 */
export type CheckpointPayload = LocalTrainingState | { save(dir: string): Promise<void> };

/** Writes the model folder and the optimizer moments of a local training state into `dir`. */
export async function writeLocalTrainingState(dir: string, state: LocalTrainingState): Promise<void> {
  await saveCheckpoint(dir, state.model, state.tokenizer);
  const opt = state.optimizer.state();
  await writeSafetensors(join(dir, OPTIMIZER_STATE_FILE), adamWStateTensors(opt), {
    metadata: { step: String(opt.step) },
  });
}

/**
 * Restores the AdamW moments a checkpoint holds into `optimizer`. The step count comes from the file's
 * metadata (older checkpoints lack it: then `fallbackStep`, the count the trainer state recorded).
 */
export async function readOptimizerState(
  dir: string,
  optimizer: AdamW,
  fallbackStep?: number,
): Promise<void> {
  const path = join(dir, OPTIMIZER_STATE_FILE);
  if (!existsSync(path)) {
    throw new KlearError(
      "CHECKPOINT_INCOMPLETE",
      `${dir} has no ${OPTIMIZER_STATE_FILE}, so the optimizer cannot resume from it`,
      "delete that checkpoint folder to resume from the one before, or start a new run",
    );
  }
  const header = await readSafetensorsHeader(path);
  const saved = Number(header.metadata?.step);
  const step = Number.isInteger(saved) ? saved : fallbackStep;
  if (step === undefined) {
    throw new KlearError(
      "CHECKPOINT_INCOMPLETE",
      `${path} does not record the optimizer's step count`,
      "resume from a checkpoint klear wrote, or start a new run",
    );
  }
  optimizer.loadState(adamWStateFromTensors(await readSafetensors(path), step));
}

/**
 * Saves the resumable checkpoint for `step` into the run: the payload (model folder and optimizer
 * moments) plus `trainerState` as trainer_state.json, atomically. Returns the checkpoint folder.
 */
export async function saveTrainingCheckpoint<S extends TrainerStateBase>(
  run: RunPaths,
  step: number,
  contents: { payload: CheckpointPayload; trainerState: S },
): Promise<string> {
  return saveRunCheckpoint(run, step, async (dir) => {
    const { payload } = contents;
    if ("save" in payload) await payload.save(dir);
    else await writeLocalTrainingState(dir, payload);
    writeFileSync(join(dir, TRAINER_STATE_FILE), `${JSON.stringify(contents.trainerState, null, 2)}\n`);
  });
}

/** The trainer state a checkpoint holds, or a clear error naming `who` cannot resume when it is missing. */
export function readTrainerState<S extends TrainerStateBase>(checkpointDir: string, who: string): S {
  const statePath = join(checkpointDir, TRAINER_STATE_FILE);
  if (!existsSync(statePath)) {
    throw new KlearError(
      "CHECKPOINT_INCOMPLETE",
      `${checkpointDir} has no ${TRAINER_STATE_FILE}, so ${who} cannot resume from it`,
      "delete that checkpoint folder to resume from the one before, or start a new run",
    );
  }
  let state: S;
  try {
    state = JSON.parse(readFileSync(statePath, "utf8")) as S;
  } catch (e) {
    throw new KlearError(
      "CHECKPOINT_CORRUPT",
      `${statePath} is not valid JSON: ${(e as Error).message}`,
      "delete that checkpoint folder to resume from the one before, or start a new run",
      { cause: e },
    );
  }
  if (!Number.isInteger(state?.step) || state.step < 0) {
    throw new KlearError(
      "CHECKPOINT_CORRUPT",
      `${statePath} has no step count`,
      "delete that checkpoint folder to resume from the one before, or start a new run",
    );
  }
  return state;
}

/**
 * Loads what `saveTrainingCheckpoint` wrote besides the model weights (which `loadModel(dir)` reads):
 * the trainer state, and the optimizer moments into `optimizer` when one is given.
 */
export async function loadTrainingCheckpoint<S extends TrainerStateBase>(
  dir: string,
  opts: { who: string; optimizer?: AdamW; optimizerStepOf?: (state: S) => number },
): Promise<S> {
  const state = readTrainerState<S>(dir, opts.who);
  if (opts.optimizer) await readOptimizerState(dir, opts.optimizer, opts.optimizerStepOf?.(state));
  return state;
}

/**
 * The `--init` checkpoint a new training run starts from, checked before the run directory exists:
 * given, and an HF-style folder (it has config.json). Returns its absolute path.
 */
export function requireInitCheckpoint(
  init: string | undefined,
  command: string,
  what = "a checkpoint",
): string {
  if (!init) {
    throw new ConfigError(
      `klear ${command} needs ${what} to start from`,
      "pass --init CHECKPOINT_DIR (an HF-style checkpoint folder, e.g. one `klear demo` or `klear sft` wrote)",
    );
  }
  if (!existsSync(join(init, "config.json"))) {
    throw new ConfigError(
      `--init ${init} is not a checkpoint folder (no config.json)`,
      "pass an HF-style checkpoint folder (config.json, model.safetensors, tokenizer.json), e.g. runs/demo-…/checkpoints/step-300",
    );
  }
  return resolve(init);
}
