// Public API of src/tasks (re-exported from the package root).
export type {
  ArithmeticProblem,
  ArithmeticSplit,
  ArithmeticTaskOptions,
  ArithmeticVerdict,
} from "./arithmetic.js";
export {
  ARITHMETIC_ALPHABET,
  arithmeticProblem,
  arithmeticSplit,
  DEFAULT_ARITHMETIC_OPTIONS,
  sampleArithmeticProblem,
  verifyArithmetic,
} from "./arithmetic.js";
