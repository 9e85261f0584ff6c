// Public API of src/store (re-exported from the package root).
export type { RunPaths } from "./run.js";
export {
  appendMetrics,
  checkpointDir,
  createRun,
  latestCheckpoint,
  listCheckpoints,
  openRun,
  readMetrics,
  runPaths,
  saveRunCheckpoint,
  truncateMetricsAfter,
} from "./run.js";
export { discoverRuns, type LoadedRun, type LoadRunsOptions, loadRuns, type RunKind } from "./run-data.js";
export type { SampleKind, SampleRecord } from "./samples.js";
export { RunDatabase } from "./samples.js";
export {
  crc32c,
  listEventFiles,
  maskedCrc32c,
  scalarsOf,
  TensorBoardWriter,
  tensorBoardWriter,
} from "./tensorboard.js";
