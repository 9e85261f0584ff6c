// Public API of src/eval: benchmark registry and loaders, prompts, metrics, scoring, the resumable
// results store and the evaluate() driver behind `klear eval`. The OpenAI-compatible client lives in
// src/rollout/openai.ts (shared with data generation) and is public through here.

export {
  defaultHubCacheDir,
  type HubOptions,
  hubCachePath,
  hubDatasetFile,
  hubFileUrl,
} from "../benchmarks/hub.js";
export {
  BENCHMARKS,
  type BenchmarkSpec,
  benchmarkNames,
  decodeLcbTests,
  type EvalCodeTest,
  type EvalProblem,
  getBenchmark,
  type LoadBenchmarkOptions,
  type LoadedBenchmark,
  loadBenchmark,
} from "../benchmarks/registry.js";
export {
  type OpenAIChatMessage,
  type OpenAIChoice,
  OpenAIClient,
  type OpenAIClientOptions,
  type OpenAIClientStats,
  type OpenAICompletion,
  type OpenAISamplingParams,
} from "../rollout/openai.js";
export {
  DEFAULT_EVAL_SAMPLING,
  type EvalGenerator,
  type EvalGenRequest,
  type EvalGenResult,
  type EvalSamplingParams,
  OpenAIGenerator,
  type OpenAIGeneratorOptions,
} from "./generator.js";
export { LocalEngineGenerator } from "./local-generator.js";
export {
  defaultKs,
  estimateMean,
  type MetricEstimate,
  majAtK,
  majorityVote,
  passAtK,
  quantileSorted,
} from "./metrics.js";
export {
  buildMessages,
  type ChatTemplate,
  type EvalChatMessage,
  type EvalChatTemplateOptions,
  evalChatTemplateFor,
  LCB_SYSTEM_MESSAGE,
  lcbQuestionPrompt,
  loadEvalChatTemplate,
  MATH_PROMPT_TEMPLATES,
} from "./prompts.js";
export {
  computeBenchResult,
  type EvalBenchResult,
  type EvalProblemResult,
  type EvalResults,
  formatResultsTable,
} from "./results.js";
export { type EvaluateOptions, type EvaluateOutcome, evaluate, importResponses, sampleSeed } from "./run.js";
export { createDefaultScorer, type EvalScorer, type EvalVerdict } from "./scoring.js";
export { EvalStore, type StoredSample, type StoredVerdict } from "./store.js";
