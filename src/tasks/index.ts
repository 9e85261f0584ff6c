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
export type { DemoOptions, DemoResult } from "./demo.js";
export {
  DEMO_RL_DIR,
  demoBatch,
  demoResultLine,
  demoRlResultLine,
  demoTokenizer,
  evaluateArithmetic,
  runDemo,
} from "./demo.js";
export type { DemoConfig, DemoPresetName } from "./demo-config.js";
export {
  DEMO_PRESET_NAMES,
  DEMO_PRESETS,
  DemoConfigSchema,
  demoRlConfig,
  demoRunsRl,
  describeDemoConfig,
  parseDemoConfig,
  resolveDemoConfig,
} from "./demo-config.js";
export { arithmeticOptionsOf, arithmeticRlTask, rlTaskFromConfig } from "./rl-tasks.js";
