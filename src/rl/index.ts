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
  advantageEstimatorNames,
  advantageEstimatorSpec,
  advantages,
  type ResolvedAdvantageConfig,
  registerAdvantageEstimator,
} from "./advantages.js";
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
export {
  type PositiveSftConfig,
  type PositiveSftInput,
  type PositiveSftResult,
  positiveSftTerm,
} from "./sft-term.js";
export * from "./trainer.js";
