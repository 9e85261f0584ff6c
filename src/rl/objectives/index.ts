// Public API of src/rl/objectives (re-exported from the package root): the policy-loss registry,
// policy losses, aggregation, KL.
export {
  AGGREGATION_MODES,
  type AggregationMode,
  type AggregationOptions,
  aggregate,
  aggregationScales,
  checkAggregation,
  lossMaskCounts,
} from "./aggregate.js";
export {
  type ClipRule,
  cispoToken,
  clippedToken,
  Region,
  type RegionCode,
  safeRatio,
  type TokenTerm,
} from "./clip.js";
export {
  POLICY_LOSS_NAMES,
  type PolicyLossConfig,
  type PolicyLossName,
  policyLossConfigFrom,
  type ResolvedPolicyLossConfig,
  resolvePolicyLossConfig,
} from "./config.js";
export { KL_ESTIMATORS, type KlEstimator, klToken } from "./kl.js";
export {
  type KlearObjectiveInput,
  type KlearObjectiveMetrics,
  type KlearObjectiveResult,
  klearObjective,
} from "./klear.js";
export { COMMON_LOSS_KEYS, LOSS_SPECIFIC_KEYS, type LossSpecificKey } from "./options.js";
export {
  type PolicyLossFn,
  type PolicyLossInput,
  type PolicyLossMetrics,
  type PolicyLossResult,
  policyLoss,
} from "./policy-loss.js";
export {
  KLEAR_RL_PRESETS,
  type KlearRlPreset,
  klearCodeRlPreset,
  klearMathGeneralGppoPreset,
  klearMathOnlyHighPreset,
  klearMathRlPreset,
} from "./presets.js";
export {
  isPolicyLossName,
  type PolicyLossDefaults,
  type PolicyLossDefinition,
  type PolicyLossSpec,
  policyLossNames,
  policyLossSpec,
  registerPolicyLoss,
  type TokenRule,
} from "./registry.js";
