// Public API of src/rl (re-exported from the package root). The losses live in ./objectives (re-exported
// from the root separately); here: advantages, group filters and dynamic sampling, overlong handling,
// and the positive-sample SFT term.
export {
  ADVANTAGE_ESTIMATORS,
  type AdvantageConfig,
  type AdvantageEstimatorDefinition,
  type AdvantageEstimatorName,
  type AdvantageEstimatorSpec,
  type AdvantageFn,
  type AdvantageInput,
  type AdvantageOptionKey,
  advantageConfigFrom,
  advantageEstimatorNames,
  advantageEstimatorSpec,
  advantages,
  type ResolvedAdvantageConfig,
  registerAdvantageEstimator,
} from "./advantages.js";
export { evaluateRlPolicy, type HeldOutResult, type HeldOutSampling } from "./evaluate.js";
export {
  checkDynamicSamplingConfig,
  DynamicSampler,
  type DynamicSamplingConfig,
  type DynamicSamplingDecision,
  filterGroups,
  GROUP_FILTER_METRICS,
  type GroupFilterConfig,
  type GroupFilterInput,
  type GroupFilterMetric,
  type GroupFilterResult,
  overlongFilterMask,
  type SoftOverlongConfig,
  softOverlongPenalty,
  truncatedFromFinishReasons,
} from "./filters.js";
export { type RlObjective, rlObjective, rlPolicyLossConfig } from "./loss-options.js";
export {
  type CollectedRollouts,
  type CollectRolloutsInput,
  collectRollouts,
  type GroupFilterCounts,
  type RolloutMetrics,
  type Trajectory,
  truncatePromptLeft,
} from "./rollout.js";
export { codeRlTask, mathRlTask, type RowPrompts, rowTaskPrompts } from "./row-tasks.js";
export {
  type PositiveSftConfig,
  type PositiveSftInput,
  type PositiveSftResult,
  positiveSftTerm,
} from "./sft-term.js";
export type {
  RlPrompt,
  RlScore,
  RlScoreContext,
  RlScorer,
  RlTask,
  RlTaskContext,
  RlTaskFactory,
} from "./task.js";
export * from "./trainer.js";
export {
  assignAdvantages,
  type OldLogprobMetrics,
  oldLogprobs,
  type PolicyUpdateSettings,
  policyUpdate,
  type ScoredTrajectory,
  trainingSequence,
  type UpdateMetrics,
} from "./update.js";
