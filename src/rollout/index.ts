// Public API of src/rollout (re-exported from the package root).
export type { DecodeModel } from "./generate.js";
export { completionSeed, generate, LocalGenerator } from "./generate.js";
export {
  createWeightSync,
  RestartWeightSync,
  type RestartWeightSyncOptions,
  SglangWeightSync,
  untiedForServing,
  VllmWeightSync,
  versionName,
  WEIGHT_SYNC_KINDS,
  type WeightSync,
  type WeightSyncKind,
  WeightVersions,
  type WeightVersionsOptions,
} from "./handoff.js";
export type { OpenAITokenChoice, OpenAITokenCompletion, OpenAITokenParams } from "./openai.js";
export type { SampledToken, TokenSamplingParams } from "./sampler.js";
export { sampleToken, samplingDistribution, validateTokenSamplingParams } from "./sampler.js";
export {
  SERVER_FLAVORS,
  type ServerFlavor,
  ServerGenerator,
  type ServerGeneratorOptions,
} from "./server-generator.js";
export { httpStatus, ServerProcess, type ServerProcessOptions, waitForServers } from "./server-process.js";
export {
  type BeforeRolloutsInfo,
  type HandoffPolicy,
  logprobDiffStats,
  type ServerRolloutOptions,
  ServerSession,
  type ServerStepMetrics,
  serverStepMetrics,
} from "./server-session.js";
export {
  checkServedVersion,
  checkServerSetup,
  compareLogprobs,
  type ProbeModel,
  policyProbeLogprobs,
  probeTokens,
  servedProbeLogprobs,
  type VersionCheckResult,
} from "./server-version.js";
export type { Completion, FinishReason, GenerateParams, Generator } from "./types.js";
