/**
 * The harness protocol, shared by the local sandbox (local.ts) and the SandboxFusion client (remote.ts): the
 * limits and their defaults, the request for one solution, the checks on the tests before anything runs, and
 * the verdict for each test from the harness's report (expected outputs never enter the sandbox).
 */
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { KlearError } from "../../util/errors.js";
import {
  clip,
  compareStdout,
  type PyValue,
  parsePythonJson,
  pythonEquals,
  reviveHarnessValue,
  showPyValue,
} from "./compare.js";
import type { CodeRunLimits, CodeRunResult, CodeTest, CodeVerdict } from "./types.js";

/** The harness's exit code for a MemoryError it caught. */
const MEMORY_EXIT = 113;

export const CODE_LIMIT_DEFAULTS = {
  timeoutMs: 6000,
  memoryMb: 1024,
  stopAtFirstFailure: true,
  outputLimitBytes: 16 * 1024 * 1024,
  prelude: true,
} as const;

/**
 * The harness ships as a .py file beside this module in src/; tsc does not copy it to dist/, so from
 * dist/rewards/code/ we look in the package's src/ too.
 */
export function locateHarness(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, "harness.py"), resolve(here, "../../../src/rewards/code/harness.py")];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new KlearError(
    "SANDBOX_HARNESS_MISSING",
    `the code sandbox harness was not found (looked in ${candidates.join(", ")})`,
    "reinstall klear: the package must include src/rewards/code/harness.py",
  );
}

/** Reads the function name from LeetCode starter code: the first `def name(self, ...)`. */
export function fnNameFromStarter(starterCode: string | undefined): string | undefined {
  const m = /def\s+([A-Za-z_]\w*)\s*\(\s*self\b/.exec(starterCode ?? "");
  return m?.[1];
}

/**
 * The harness request for one solution, as both the local sandbox and the remote client send it, with
 * the resolved limits; or, when the tests themselves are unusable, the result to return instead.
 */
export function harnessRequest(
  code: string,
  tests: readonly CodeTest[],
  limitsIn: CodeRunLimits,
): { limits: Required<CodeRunLimits>; request: Record<string, unknown> } | { invalid: CodeRunResult } {
  const limits = resolveLimits(limitsIn);
  const invalid = checkTests(tests, limits);
  if (invalid) return { invalid };
  const fnName = limits.fnName || fnNameFromStarter(limits.starterCode);
  const request = {
    code,
    mode: tests[0].testtype,
    fn_name: fnName ?? "",
    inputs: tests.map((t) => t.input),
    timeout_s: limits.timeoutMs / 1000,
    memory_bytes: limits.memoryMb * 1024 * 1024,
    output_limit: limits.outputLimitBytes,
    prelude: limits.prelude,
  };
  return { limits, request };
}

export function resolveLimits(l: CodeRunLimits): Required<CodeRunLimits> {
  return {
    fnName: l.fnName ?? "",
    starterCode: l.starterCode ?? "",
    timeoutMs: l.timeoutMs ?? CODE_LIMIT_DEFAULTS.timeoutMs,
    memoryMb: l.memoryMb ?? CODE_LIMIT_DEFAULTS.memoryMb,
    stopAtFirstFailure: l.stopAtFirstFailure ?? CODE_LIMIT_DEFAULTS.stopAtFirstFailure,
    outputLimitBytes: l.outputLimitBytes ?? CODE_LIMIT_DEFAULTS.outputLimitBytes,
    prelude: l.prelude ?? CODE_LIMIT_DEFAULTS.prelude,
  };
}

/**
 * Problems with the tests themselves, before anything runs. No tests is never a pass (a reward of 1 for
 * an empty test list would be free reward), and one sandbox runs one test type.
 */
export function checkTests(
  tests: readonly CodeTest[],
  limits: Required<CodeRunLimits>,
): CodeRunResult | null {
  if (tests.length === 0) return { passed: false, passRate: 0, verdicts: [] };
  const bad = tests.findIndex((t) => typeof t?.input !== "string" || typeof t?.output !== "string");
  if (bad >= 0) return failAll(tests, "sandbox_error", `test ${bad} needs string input and output`);
  const mode = tests[0].testtype;
  if (mode !== "stdin" && mode !== "functional") {
    return failAll(tests, "sandbox_error", `unknown testtype "${mode}" (use "stdin" or "functional")`);
  }
  if (tests.some((t) => t.testtype !== mode)) {
    return failAll(tests, "sandbox_error", "a solution's tests must all have the same testtype");
  }
  if (mode === "functional" && !(limits.fnName || fnNameFromStarter(limits.starterCode))) {
    return failAll(
      tests,
      "sandbox_error",
      "functional tests need fn_name or starter code with a `def name(self, ...)`",
    );
  }
  return null;
}

export function failAll(
  tests: readonly CodeTest[],
  status: CodeVerdict["status"],
  detail: string,
): CodeRunResult {
  return { passed: false, passRate: 0, verdicts: tests.map(() => ({ status, timeMs: 0, detail })) };
}

export function summarise(verdicts: CodeVerdict[], total: number): CodeRunResult {
  const passes = verdicts.filter((v) => v.status === "pass").length;
  return { passed: total > 0 && passes === total, passRate: total > 0 ? passes / total : 0, verdicts };
}

export interface HarnessReport {
  i: number;
  status: "exited" | "timeout" | "memory" | "output_limit";
  exit: number | null;
  signal: number | null;
  stdout: string;
  result: string;
  err: string;
  time_ms: number;
  memory_kb: number | null;
}

const SIGNAL_NAMES: Record<number, string> = {
  6: "SIGABRT",
  9: "SIGKILL",
  11: "SIGSEGV",
  24: "SIGXCPU",
  25: "SIGXFSZ",
};

/** Turns what the harness saw into a verdict, comparing outputs here (expected outputs never enter the sandbox). */
export function judgeReport(r: HarnessReport, test: CodeTest, limits: Required<CodeRunLimits>): CodeVerdict {
  const base = { timeMs: r.time_ms, ...(r.memory_kb != null ? { memoryKb: r.memory_kb } : {}) };
  if (r.status === "timeout")
    return { status: "timeout", ...base, detail: `exceeded ${limits.timeoutMs} ms` };
  if (r.status === "output_limit") {
    return {
      status: "output_limit",
      ...base,
      detail: `more than ${limits.outputLimitBytes} bytes of output`,
    };
  }
  if (r.status === "memory" || r.exit === MEMORY_EXIT) {
    return { status: "memory", ...base, detail: `MemoryError (limit ${limits.memoryMb} MiB)` };
  }
  if (r.signal != null) {
    const name = SIGNAL_NAMES[r.signal] ?? `signal ${r.signal}`;
    const nearLimit = r.memory_kb != null && r.memory_kb * 1024 > 0.9 * limits.memoryMb * 1024 * 1024;
    if (nearLimit && (r.signal === 9 || r.signal === 11 || r.signal === 6)) {
      return { status: "memory", ...base, detail: `killed by ${name} at the memory limit` };
    }
    if (r.signal === 25)
      return { status: "runtime_error", ...base, detail: "file size limit exceeded (SIGXFSZ)" };
    return { status: "runtime_error", ...base, detail: `killed by ${name}${r.err ? `: ${r.err}` : ""}` };
  }
  if (r.exit !== 0) {
    if (/\bMemoryError\b/.test(r.err)) return { status: "memory", ...base, detail: r.err };
    return { status: "runtime_error", ...base, detail: r.err || `exit code ${r.exit}` };
  }
  if (test.testtype === "stdin") {
    const why = compareStdout(r.stdout, test.output);
    return why === null ? { status: "pass", ...base } : { status: "wrong_answer", ...base, detail: why };
  }
  let expected: PyValue;
  try {
    expected = parsePythonJson(test.output);
  } catch (e) {
    return { status: "sandbox_error", ...base, detail: `test output is not JSON: ${(e as Error).message}` };
  }
  if (r.result === "")
    return { status: "runtime_error", ...base, detail: "the method returned nothing (no result)" };
  let got: PyValue;
  try {
    got = reviveHarnessValue(JSON.parse(r.result));
  } catch {
    return { status: "wrong_answer", ...base, detail: `unreadable result ${clip(r.result)}` };
  }
  if (pythonEquals(got, expected)) return { status: "pass", ...base };
  return {
    status: "wrong_answer",
    ...base,
    detail: `got ${clip(showPyValue(got), 120)}, expected ${clip(test.output.trim(), 120)}`,
  };
}
