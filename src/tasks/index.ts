// Public API of src/tasks (re-exported from the package root).
export type {
  ArithmeticProblem,
  ArithmeticSftOptions,
  ArithmeticSplit,
  ArithmeticTaskOptions,
  ArithmeticVerdict,
} from "./arithmetic.js";
export {
  ARITHMETIC_ALPHABET,
  ARITHMETIC_SFT_MODEL,
  arithmeticProblem,
  arithmeticSftCheckpoint,
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
export type {
  ExperimentLossSummary,
  ExperimentOptions,
  ExperimentResult,
  ExperimentRunOutcome,
} from "./experiment.js";
export { experimentResultLine, runExperiment, writeExperimentReport } from "./experiment.js";
export type { ExperimentConfig } from "./experiment-config.js";
export {
  describeExperimentConfig,
  EXPERIMENT_PRESETS,
  ExperimentConfigSchema,
  parseExperimentConfig,
  resolveExperimentConfig,
} from "./experiment-config.js";
export type { ExperimentAccuracy, ExperimentPhaseOptions, ExperimentRecipe } from "./experiment-recipe.js";
export { recipeExperiment } from "./experiment-recipe.js";
export type { RecipeDemoOptions, RecipeDemoResult, RecipeEvalSummary } from "./recipe-demo.js";
export {
  evaluateRecipe,
  recipeBenchmarks,
  recipeResultLines,
  runRecipeDemo,
  runRecipeSft,
  writeRecipeData,
} from "./recipe-demo.js";
export type { RecipeDemoConfig, RecipeDemoPresetName } from "./recipe-demo-config.js";
export {
  describeRecipeDemoConfig,
  parseRecipeDemoConfig,
  RECIPE_DEMO_PRESET_NAMES,
  RECIPE_DEMO_PRESETS,
  RecipeDemoConfigSchema,
  recipeRlConfig,
  recipeSftConfig,
  resolveRecipeDemoConfig,
} from "./recipe-demo-config.js";
export type { RecipeKind, RecipeProblem, RecipeSplit, TeacherSolution } from "./recipe-problems.js";
export { recipeSplit } from "./recipe-problems.js";
export type { RewardCallCounts } from "./recipe-task.js";
export {
  RECIPE_CHAT_TEMPLATE,
  RewardCallCounter,
  recipePromptText,
  recipeRlTask,
  recipeTokenizer,
} from "./recipe-task.js";
export { arithmeticOptionsOf, arithmeticRlTask, rlTaskFromConfig } from "./rl-tasks.js";
export type { TinyModelShape } from "./tiny-model.js";
export { demoTokenizer, writeFreshCheckpoint } from "./tiny-model.js";
