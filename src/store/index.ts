// Public API of src/store (re-exported from the package root).
export {
  type CheckpointPayload,
  type LocalTrainingState,
  loadTrainingCheckpoint,
  OPTIMIZER_STATE_FILE,
  readOptimizerState,
  readTrainerState,
  requireInitCheckpoint,
  saveTrainingCheckpoint,
  TRAINER_STATE_FILE,
  type TrainerStateBase,
  writeLocalTrainingState,
} from "./checkpoint.js";
export type { OpenedTrainingRun, RunPaths } from "./run.js";
export {
  appendMetrics,
  checkpointDir,
  createRun,
  latestCheckpoint,
  listCheckpoints,
  openRun,
  readMetrics,
  resumeOrCreateRun,
  runPaths,
  saveRunCheckpoint,
  truncateMetricsAfter,
} from "./run.js";
export { discoverRuns, type LoadedRun, type LoadRunsOptions, loadRuns, type RunKind } from "./run-data.js";
export type { SampleKind, SampleRecord } from "./samples.js";
export { RunDatabase } from "./samples.js";
export { runTrainingSteps, type TrainingStepsOptions, type TrainingStepsOutcome } from "./steps.js";
export {
  crc32c,
  listEventFiles,
  maskedCrc32c,
  scalarsOf,
  TensorBoardWriter,
  tensorBoardWriter,
} from "./tensorboard.js";
export {
  finishRunLogging,
  openRunLogging,
  WANDB_STATE_FILE,
  type WandbLoggerOptions,
  WandbRunLogger,
} from "./wandb.js";
export { type WandbSection, WandbSectionSchema, wandbApiKey, wandbTarget } from "./wandb-config.js";
