import { availableParallelism } from "node:os";
import type { EvalProblem } from "../benchmarks/registry.js";
import type { CodeSandboxChoice } from "../rewards/code/index.js";
import { type MathVerdict, MathVerifierPool } from "../rewards/math/index.js";
import { EVAL_RULES, type ScoreRules, scoreResponse } from "../rewards/score.js";

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
  /** Releases workers (the default scorer's math threads). */
  close?(): Promise<void>;
}

export interface DefaultScorerOptions {
  /** Per-test wall limit for code (ms, LiveCodeBench's 6 s by default). */
  codeTimeoutMs?: number;
  /** Per-answer math verification budget (ms, Klear's judge used 5 s). */
  mathTimeoutMs?: number;
  /** Where code runs: the bubblewrap sandbox (default), "unsafe-none", or a remote executor. */
  sandbox?: CodeSandboxChoice;
  /**
   * Worker threads verifying math off the main thread (default: cores - 1, 1 to 4); 0 verifies inline.
   * Started on the first math answer.
   */
  mathWorkers?: number;
  /**
   * Math verdicts remembered per (gold, answer text the verifier reads), default 20 000; 0 verifies every
   * sample. n samples of one problem often end with the same answer section, and the check is
   * deterministic, so each distinct one is verified once.
   */
  mathMemoEntries?: number;
  /**
   * How responses are judged (rewards/score.ts); default `EVAL_RULES` (no think gate, every test). Pass
   * `{ ...EVAL_RULES, thinkGate: true }` to judge exactly as Klear's RL reward does.
   */
  rules?: Readonly<ScoreRules>;
}

/**
 * Answer sections longer than this are verified without the memo: they rarely repeat, and keys that size
 * would hold megabytes.
 */
const MEMO_MAX_KEY_CHARS = 4096;
/** All remembered keys together (UTF-16, so about 16 MB): the memo is forgotten past it. */
const MEMO_MAX_TOTAL_CHARS = 8_000_000;

/**
 * The real scorer: rewards/score.ts's `scoreResponse` (the one RL and data tagging use), with math
 * verified on worker threads behind a verdict memo, and code in rewards/code's sandbox with
 * LiveCodeBench's comparison rules. The majority-vote key is the extracted answer with whitespace removed.
 */
export function createDefaultScorer(opts: DefaultScorerOptions = {}): EvalScorer {
  const mathTimeoutMs = opts.mathTimeoutMs ?? 5000;
  const workers = opts.mathWorkers ?? Math.max(1, Math.min(4, availableParallelism() - 1));
  const memoLimit = Math.max(0, opts.mathMemoEntries ?? 20_000);
  let pool: MathVerifierPool | null = null;
  // Checks in flight share one promise, so 64 identical answers arriving together cost one check.
  const memo = new Map<string, Promise<MathVerdict>>();
  let memoChars = 0;
  // Started on the first math answer, so a code-only run never spawns threads.
  const check = (gold: string, response: string) => {
    pool ??= new MathVerifierPool({ workers: Math.max(0, workers), timeoutMs: mathTimeoutMs });
    return pool.verify(gold, response);
  };
  const verify = (gold: string, answerSection: string): Promise<MathVerdict> => {
    // The key is exactly what verifyMath reads (gold, and the answer section after the last </think>),
    // so a remembered verdict is the verdict a fresh check would give.
    if (memoLimit === 0 || answerSection.length > MEMO_MAX_KEY_CHARS) return check(gold, answerSection);
    const key = `${gold}\u0000${answerSection}`;
    const known = memo.get(key);
    if (known) return known;
    // Forgetting everything at the cap is crude but O(1), and an eval rarely has that many distinct answers.
    if (memo.size >= memoLimit || memoChars + key.length > MEMO_MAX_TOTAL_CHARS) {
      memo.clear();
      memoChars = 0;
    }
    const verdict = check(gold, answerSection);
    memo.set(key, verdict);
    memoChars += key.length;
    // A timeout or a crash depends on the machine's load, not the answer: the next sample checks afresh.
    verdict.then(
      (v) => {
        if ((v.timedOut || v.error) && memo.get(key) === verdict) memo.delete(key);
      },
      () => {
        if (memo.get(key) === verdict) memo.delete(key);
      },
    );
    return verdict;
  };
  return {
    async close() {
      await pool?.close();
      pool = null;
      memo.clear();
      memoChars = 0;
    },
    async score(problem, response) {
      const r = await scoreResponse(problem, response, {
        rules: opts.rules ?? EVAL_RULES,
        verifyMath: verify,
        code: { timeoutMs: opts.codeTimeoutMs ?? 6000, sandbox: opts.sandbox },
      });
      return {
        score: r.passRate,
        correct: r.correct,
        extracted: r.extractedAnswer === null ? null : r.extractedAnswer.replace(/\s+/g, ""),
        reason: r.reason,
      };
    },
  };
}
