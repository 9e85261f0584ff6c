/** One LiveCodeBench-style test: stdin/stdout, or a LeetCode-style method call with JSON arguments. */
export interface CodeTest {
  input: string;
  output: string;
  testtype: "stdin" | "functional";
}

export type CodeVerdictStatus =
  | "pass"
  | "wrong_answer"
  | "runtime_error"
  | "timeout"
  | "memory"
  | "output_limit"
  | "sandbox_error";

export interface CodeVerdict {
  status: CodeVerdictStatus;
  /** Wall time of the test process (ms). */
  timeMs: number;
  /** Peak resident memory of the test process (KiB), where the executor measures it. */
  memoryKb?: number;
  /** Why it failed: a diff summary, the last traceback line, the limit hit. */
  detail?: string;
}

export interface CodeRunResult {
  /** Every test ran and passed (never true for an empty test list). */
  passed: boolean;
  /** Passed tests over all tests given (tests not run after a stop count as failed). */
  passRate: number;
  /** One per test given, in order; tests skipped after the first failure are absent. */
  verdicts: CodeVerdict[];
}

/** Limits and semantics of one solution's run; every field has a default. */
export interface CodeRunLimits {
  /** The method to call for functional tests; read from `starterCode` when absent. */
  fnName?: string;
  starterCode?: string;
  /** Wall limit per test (ms); the CPU limit is the same rounded up plus one second. Default 6000 (LCB). */
  timeoutMs?: number;
  /** Address-space limit per test (MiB). Default 1024 (Klear's firejail setting). */
  memoryMb?: number;
  /** Stop at the first failing test, as LiveCodeBench does. Default true. */
  stopAtFirstFailure?: boolean;
  /** Cap on one test's stdout (bytes). Default 16 MiB. */
  outputLimitBytes?: number;
  /** Run LiveCodeBench's import prelude before the solution. Default true. */
  prelude?: boolean;
}

/**
 * Something that runs one solution against its tests: the local bubblewrap sandbox, the explicitly
 * unsafe unsandboxed runner, or a remote SandboxFusion service. `slot` is the pool's worker slot
 * (0 ≤ slot < concurrency): local executors give each slot its own uid.
 */
export interface CodeExecutor {
  readonly name: string;
  runSolution(
    code: string,
    tests: readonly CodeTest[],
    limits: CodeRunLimits,
    slot: number,
  ): Promise<CodeRunResult>;
}
