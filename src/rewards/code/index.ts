// Public API of src/rewards/code: sandboxed execution of generated Python against LiveCodeBench-style
// tests, and Klear's code rewards.
export {
  compareStdout as compareCodeStdout,
  type PyValue,
  parsePythonJson,
  pythonEquals,
} from "./compare.js";
export { type ExtractCodeOptions, extractCode } from "./extract.js";
export {
  type CodeProblem,
  filterCodeProblemsBySolutions,
  filterCodeProblemsByTestCount,
  type SolutionFilterOptions,
  type SolutionFilterResult,
} from "./filter.js";
export {
  BWRAP_PATH,
  CODE_LIMIT_DEFAULTS,
  fnNameFromStarter,
  LocalCodeExecutor,
  type LocalSandboxOptions,
  PYTHON_PATH,
  probeCodeSandbox,
} from "./local.js";
export {
  CodeRunnerPool,
  type CodeRunnerPoolOptions,
  type CodeSandboxChoice,
  makeCodeExecutor,
  type RunCodeTestsOptions,
  runCodeTests,
} from "./pool.js";
export { SandboxFusionClient, type SandboxFusionOptions } from "./remote.js";
export {
  CODE_FORMAT_ERROR_REWARD,
  CODE_MISSING_THINK_CLOSE_REWARD,
  CODE_MISSING_THINK_OPEN_REWARD,
  CODE_REWARD_MODES,
  type CodeResponseReward,
  type CodeResponseRewardOptions,
  type CodeRewardMode,
  codeReward,
  codeRewardForResponse,
  responseTestSeed,
  sampleCodeTests,
} from "./reward.js";
export type {
  CodeExecutor,
  CodeRunLimits,
  CodeRunResult,
  CodeTest,
  CodeVerdict,
  CodeVerdictStatus,
} from "./types.js";
