/**
 * The one scorer: a response against a problem (math or code), returning the reward, the verdict, the
 * extracted answers and the reason. RL tasks, evaluation and difficulty tagging all call it, so what
 * counts as correct is decided in one place; callers differ only in the named `ScoreRules` they pass.
 */

import type { RunCodeTestsOptions } from "./code/pool.js";
import { type CodeRewardMode, codeRewardForResponse } from "./code/reward.js";
import type { CodeRunResult, CodeTest } from "./code/types.js";
import {
  KLEAR_REWARD,
  stripThinkBlock,
  type ThinkGateFailure,
  thinkGateFailure,
  thinkGateReward,
} from "./format.js";
import { type MathRewardMode, type MathVerdict, verifyMath, withStringFastPath } from "./math/verify.js";

/** What a scorer needs of a problem; eval's `EvalProblem` and rows/'s `RowProblem` are both one. */
export interface ScoreProblem {
  kind: "math" | "code";
  /** Math: the gold final answer. */
  answer?: string;
  /** Code: the tests. */
  tests?: readonly CodeTest[];
  /** Code: LeetCode starter code, and the method a functional test calls (read from it when absent). */
  starterCode?: string;
  fnName?: string;
}

/** How a response is judged and rewarded. */
export interface ScoreRules {
  /**
   * Klear's think gate: a response without `</think>` (then without `<think>`) is a format failure,
   * rewarded −0.5 (−2) and never correct. Off, the answer is read after the last `</think>` when there
   * is one, else from the whole response (judge_math's reading, for models that do not think aloud).
   */
  thinkGate: boolean;
  /** Math reward scale: "klear" ±1, "binary" 1 / 0. */
  math: MathRewardMode;
  /** Code reward: "soft" 2·passRate − 1, "hard" ±1 (stops at the first failing test), "pass-rate". */
  code: CodeRewardMode;
  /** Code tests drawn per response (Klear's max_test_cases: 16); Infinity runs them all. */
  maxTests: number;
}

/** Klear's RL reward (klear-spec §9): think gate, math ±1, code soft over ≤ 16 tests drawn per response. */
export const KLEAR_RL_RULES: Readonly<ScoreRules> = Object.freeze({
  thinkGate: true,
  math: "klear",
  code: "soft",
  maxTests: 16,
});

/** RL's `rewardMode: "binary"`: no think gate, math 1 / 0, code hard ±1. */
export const BINARY_RL_RULES: Readonly<ScoreRules> = Object.freeze({
  thinkGate: false,
  math: "binary",
  code: "hard",
  maxTests: 16,
});

/**
 * Evaluation (avg@k, pass@k): every test, stop at the first failure, no think gate (judge_math reads
 * the whole response, and a model evaluated with thinking off writes no tags). With the same think
 * gate, a response gets the same verdict here as in RL.
 */
export const EVAL_RULES: Readonly<ScoreRules> = Object.freeze({
  thinkGate: false,
  math: "binary",
  code: "hard",
  maxTests: Number.POSITIVE_INFINITY,
});

/** The rules of an RL task's `rewardMode`. */
export function rlScoreRules(rewardMode: "klear" | "binary"): Readonly<ScoreRules> {
  return rewardMode === "klear" ? KLEAR_RL_RULES : BINARY_RL_RULES;
}

export type ResponseFormat = "ok" | ThinkGateFailure | "no_code_block";

export interface ScoredResponse {
  /** The scalar reward under the rules. */
  reward: number;
  /** The verdict: math verified equal to gold; code every (drawn) test passed. False on a format failure. */
  correct: boolean;
  /** 0..1: math 1 or 0; code the fraction of the drawn tests passed. */
  passRate: number;
  format: ResponseFormat;
  /** Math: the final answer found in the response (as written), null when none. */
  extractedAnswer: string | null;
  /** Math: the gold answer as the verifier read it. */
  extractedGold: string | null;
  /** Code: the program run, null when none was found. */
  program: string | null;
  reason: string;
  /** Math: the check ran out of its time budget (depends on load, not on the answer). */
  timedOut?: boolean;
  /** Math: the verifier failed internally. */
  error?: string;
  /** Code: every test's verdict. */
  run?: CodeRunResult;
}

/** Verifies a math answer section against gold (eval hands in its worker pool and memo). */
export type MathAnswerVerifier = (gold: string, answerSection: string) => MathVerdict | Promise<MathVerdict>;

export interface ScoreOptions {
  /** Default {@link KLEAR_RL_RULES}. */
  rules?: Readonly<ScoreRules>;
  /** Math verification budget per answer (ms, default 5000 as Klear's judge). */
  mathTimeoutMs?: number;
  /** How math answers are verified; default `verifyMath` in this thread. */
  verifyMath?: MathAnswerVerifier;
  /** Where and how code runs (sandbox, per-test time limit, ...). */
  code?: RunCodeTestsOptions;
  /** Seed of this response's test draw (default: from the response text, so each response draws its own). */
  testSeed?: number;
}

const FORMAT_REASON: Record<ThinkGateFailure, string> = {
  missing_think_close: "no </think> (think gate)",
  missing_think_open: "no <think> (think gate)",
};

const noAnswer = { extractedAnswer: null, extractedGold: null, program: null } as const;

/** Scores one response; never throws for a bad response (a verdict with a reason instead). */
export async function scoreResponse(
  problem: ScoreProblem,
  response: string,
  opts: ScoreOptions = {},
): Promise<ScoredResponse> {
  const rules = opts.rules ?? KLEAR_RL_RULES;
  const gate = rules.thinkGate ? thinkGateFailure(response) : null;
  if (gate) {
    return {
      reward: thinkGateReward(gate),
      correct: false,
      passRate: 0,
      format: gate,
      ...noAnswer,
      reason: FORMAT_REASON[gate],
    };
  }
  return problem.kind === "math"
    ? scoreMath(problem, response, rules, opts)
    : scoreCode(problem, response, rules, opts);
}

async function scoreMath(
  problem: ScoreProblem,
  response: string,
  rules: Readonly<ScoreRules>,
  opts: ScoreOptions,
): Promise<ScoredResponse> {
  const gold = problem.answer ?? "";
  const section = stripThinkBlock(response);
  let verdict: MathVerdict;
  try {
    verdict = opts.verifyMath
      ? await opts.verifyMath(gold, section)
      : verifyMath(gold, section, { stripThink: false, timeoutMs: opts.mathTimeoutMs ?? 5000 });
  } catch (e) {
    verdict = {
      correct: false,
      extractedGold: null,
      extractedPred: null,
      reason: "internal error",
      error: (e as Error).message,
    };
  }
  verdict = withStringFastPath(gold, verdict);
  const wrong = rules.math === "klear" ? KLEAR_REWARD.incorrect : 0;
  const out: ScoredResponse = {
    reward: verdict.correct ? KLEAR_REWARD.correct : wrong,
    correct: verdict.correct,
    passRate: verdict.correct ? 1 : 0,
    format: "ok",
    extractedAnswer: verdict.extractedPred,
    extractedGold: verdict.extractedGold,
    program: null,
    reason: verdict.timedOut ? "timeout" : verdict.error ? `error: ${verdict.error}` : verdict.reason,
  };
  if (verdict.timedOut) out.timedOut = true;
  if (verdict.error) out.error = verdict.error;
  return out;
}

async function scoreCode(
  problem: ScoreProblem,
  response: string,
  rules: Readonly<ScoreRules>,
  opts: ScoreOptions,
): Promise<ScoredResponse> {
  const r = await codeRewardForResponse(response, problem.tests ?? [], {
    ...opts.code,
    mode: rules.code,
    maxTests: rules.maxTests,
    seed: opts.testSeed,
    fnName: problem.fnName ?? opts.code?.fnName,
    starterCode: problem.starterCode ?? opts.code?.starterCode,
  });
  if (r.result === null) {
    return {
      reward: rules.code === "pass-rate" ? 0 : r.reward,
      correct: false,
      passRate: 0,
      format: "no_code_block",
      ...noAnswer,
      reason: "no python code block after </think>",
    };
  }
  const firstFail = r.result.verdicts.find((v) => v.status !== "pass");
  return {
    reward: r.reward,
    correct: r.result.passed,
    passRate: r.result.passRate,
    format: "ok",
    extractedAnswer: null,
    extractedGold: null,
    program: r.code,
    reason: r.result.passed ? "all tests passed" : (firstFail?.status ?? "no tests"),
    run: r.result,
  };
}
