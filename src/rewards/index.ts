// Public API of src/rewards (beside rewards/code and rewards/math): the one scoring seam and Klear's
// response-format rules.
export {
  KLEAR_REWARD,
  stripThinkBlock,
  THINK_CLOSE,
  THINK_OPEN,
  type ThinkGateFailure,
  thinkGateFailure,
  thinkGateReward,
} from "./format.js";
export {
  BINARY_RL_RULES,
  EVAL_RULES,
  KLEAR_RL_RULES,
  type MathAnswerVerifier,
  type ResponseFormat,
  rlScoreRules,
  type ScoredResponse,
  type ScoreOptions,
  type ScoreProblem,
  type ScoreRules,
  scoreResponse,
} from "./score.js";
