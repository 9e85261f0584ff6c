import { KlearError } from "../util/errors.js";
import type { EvalProblem } from "./registry.js";

/** The verdict on one sampled response. */
export interface EvalVerdict {
  /** 0..1: math 0/1; code the fraction of tests passed. */
  score: number;
  /** Math: verified equal; code: every test passed. avg@k and pass@k count these. */
  correct: boolean;
  /** The final answer extracted (math), the key majority voting groups by; null when none. */
  extracted: string | null;
  reason: string;
}

/**
 * Scores responses. The harness calls `score` once per sample; implementations must never hang and
 * never throw for a bad response (a verdict with a reason instead).
 */
export interface EvalScorer {
  score(problem: EvalProblem, response: string): Promise<EvalVerdict>;
}

export interface DefaultScorerOptions {
  /** Per-test wall limit for code (ms, LiveCodeBench's 6 s by default). */
  codeTimeoutMs?: number;
  /** Per-answer math verification budget (ms). */
  mathTimeoutMs?: number;
}

type VerifyMath = (
  gold: string,
  response: string,
  opts?: { timeoutMs?: number },
) => { correct: boolean; extractedPred?: unknown; reason?: string; timedOut?: boolean; error?: string };
type ExtractCode = (response: string) => string | null;
type RunCodeTests = (
  code: string,
  tests: readonly { input: string; output: string; testtype: "stdin" | "functional" }[],
  opts: { fnName?: string; starterCode?: string; timeoutMs?: number },
) => Promise<{ passed: boolean; passRate: number; verdicts: { status: string; detail?: string }[] }>;

function extractedText(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.length ? String(v[v.length - 1]) : null;
  return String(v);
}

/**
 * The real scorers: rewards/math's verifier (Math-Verify semantics) for math, rewards/code's sandbox
 * with LiveCodeBench's comparison rules for code. Loaded lazily so math-only runs never start a sandbox.
 */
export async function createDefaultScorer(opts: DefaultScorerOptions = {}): Promise<EvalScorer> {
  let verifyMath: VerifyMath | null = null;
  let code: { extractCode: ExtractCode; runCodeTests: RunCodeTests } | null = null;
  const loadMath = async (): Promise<VerifyMath> => {
    if (verifyMath) return verifyMath;
    const mod = (await import("../rewards/math/index.js")) as unknown as { verifyMath?: VerifyMath };
    if (typeof mod.verifyMath !== "function") {
      throw new KlearError(
        "SCORER_MISSING",
        "rewards/math does not export verifyMath",
        "build the math verifier first",
      );
    }
    verifyMath = mod.verifyMath;
    return verifyMath;
  };
  const loadCode = async () => {
    if (code) return code;
    const mod = (await import("../rewards/code/index.js")) as unknown as {
      extractCode?: ExtractCode;
      runCodeTests?: RunCodeTests;
    };
    if (typeof mod.extractCode !== "function" || typeof mod.runCodeTests !== "function") {
      throw new KlearError(
        "SCORER_MISSING",
        "rewards/code does not export extractCode/runCodeTests",
        "build it first",
      );
    }
    code = { extractCode: mod.extractCode, runCodeTests: mod.runCodeTests };
    return code;
  };
  return {
    async score(problem, response) {
      if (problem.kind === "math") {
        const verify = await loadMath();
        try {
          const r = verify(problem.answer ?? "", response, { timeoutMs: opts.mathTimeoutMs ?? 5000 });
          const reason = r.timedOut
            ? "timeout"
            : r.error
              ? `error: ${r.error}`
              : (r.reason ?? (r.correct ? "equal" : "different"));
          return {
            score: r.correct ? 1 : 0,
            correct: r.correct,
            extracted: extractedText(r.extractedPred),
            reason,
          };
        } catch (e) {
          return {
            score: 0,
            correct: false,
            extracted: null,
            reason: `verifier error: ${(e as Error).message}`,
          };
        }
      }
      const c = await loadCode();
      const program = c.extractCode(response);
      if (!program) return { score: 0, correct: false, extracted: null, reason: "no code block" };
      const r = await c.runCodeTests(program, problem.tests ?? [], {
        fnName: problem.fnName,
        starterCode: problem.starterCode,
        timeoutMs: opts.codeTimeoutMs ?? 6000,
      });
      const firstFail = r.verdicts.find((v) => v.status !== "pass");
      return {
        score: r.passRate,
        correct: r.passed,
        extracted: null,
        reason: r.passed ? "all tests passed" : (firstFail?.status ?? "failed"),
      };
    },
  };
}
