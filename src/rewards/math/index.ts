// Public API of src/rewards/math (re-exported from the package root).
export { type MathNode, show as showMathNode } from "./ast.js";
export { type MathPair, type VerifyMathBatchOptions, verifyMathBatch } from "./batch.js";
export { DEFAULT_TARGETS as DEFAULT_MATH_TARGETS, type MathTarget } from "./extract.js";
export { MathVerifierPool, type MathVerifierPoolOptions } from "./pool.js";
export {
  type ExtractedMathAnswer,
  type ExtractMathAnswerOptions,
  extractMathAnswer,
  type MathRewardMode,
  type MathRewardOptions,
  type MathRewardResult,
  type MathVerdict,
  mathReward,
  stripThinkBlock,
  type VerifyMathOptions,
  verifyMath,
} from "./verify.js";
