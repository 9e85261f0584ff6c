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
export type { SampleKind, SampleRecord } from "./samples.js";
export { RunDatabase } from "./samples.js";
