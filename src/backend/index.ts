// Public API of src/backend (re-exported from the package root): the training-backend seam and the local engine's implementation.
export { LocalPolicyTrainer, localBackend } from "./local.js";
export { gatherResponse, type PackedSequences, packSequences, scatterResponses } from "./pack.js";
export * from "./tinker/index.js";
export type {
  LogprobOptions,
  LogprobSource,
  OptimizerStepOptions,
  OptimizerStepResult,
  PolicyOptimizerSettings,
  PolicyTrainer,
  SequenceLogprobs,
  TokenGradients,
  TrainingBackend,
  TrainingSequence,
} from "./types.js";
