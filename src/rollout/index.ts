// Public API of src/rollout (re-exported from the package root).
export type { DecodeModel } from "./generate.js";
export { completionSeed, generate, LocalGenerator } from "./generate.js";
export type { SampledToken, TokenSamplingParams } from "./sampler.js";
export { sampleToken, samplingDistribution, validateTokenSamplingParams } from "./sampler.js";
export type { Completion, FinishReason, GenerateParams, Generator } from "./types.js";
