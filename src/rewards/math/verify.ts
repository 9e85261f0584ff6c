import { ConfigError } from "../../util/errors.js";
import { KLEAR_REWARD, stripThinkBlock, thinkGateFailure, thinkGateReward } from "../format.js";
import { show } from "./ast.js";
import { Budget, BudgetExceeded } from "./budget.js";
import { mathEqual } from "./compare.js";
import { DEFAULT_TARGETS, type Extraction, extractWithTargets, type MathTarget } from "./extract.js";

/** Longest response we look at; beyond it only the tail is read (answers sit at the end). */
const MAX_RESPONSE_CHARS = 200_000;
const MAX_GOLD_CHARS = 20_000;

export { stripThinkBlock };

export interface VerifyMathOptions {
  /** What to extract from the response. Default: LaTeX (boxed at priority 50) and plain expressions. */
  predTargets?: MathTarget[];
  /**
   * How to read gold. Default "auto": a bare answer (no `$`, `\boxed`, `\[`, `\(`) is read as if boxed,
   * as Klear's judge does with `parse("\\boxed{" + gt + "}")`; otherwise it is extracted with
   * `goldTargets` (default LaTeX + expressions).
   */
  goldTargets?: MathTarget[] | "auto";
  /** Decimal places both sides are rounded to when either holds a decimal literal (Math-Verify: 6). */
  floatRounding?: number;
  /** Strict mode (default true): free variables must match by name. */
  strict?: boolean;
  /** Let a gold set/interval match a predicted inequality (default false, as in Math-Verify). */
  allowSetRelationComp?: boolean;
  /** Read only the text after the last `</think>` when present (default true). */
  stripThink?: boolean;
  /** Time budget for this check in milliseconds (default 1000). */
  timeoutMs?: number;
}

export interface MathVerdict {
  correct: boolean;
  extractedGold: string | null;
  extractedPred: string | null;
  reason: string;
  timedOut?: boolean;
  error?: string;
}

export interface ExtractMathAnswerOptions {
  targets?: MathTarget[];
  stripThink?: boolean;
  timeoutMs?: number;
}

export interface ExtractedMathAnswer {
  /** The answer text as written, or null when nothing was found. */
  answer: string | null;
  /** A canonical form of the parsed answer (null when it did not parse). */
  canonical: string | null;
  /** Multiple-choice letter, when a string target matched. */
  choice?: string;
  timedOut?: boolean;
}

function clip(text: string): string {
  return text.length > MAX_RESPONSE_CHARS ? text.slice(text.length - MAX_RESPONSE_CHARS) : text;
}

/** Finds the answer in a model response with Math-Verify's extraction priorities. */
export function extractMathAnswer(
  response: string,
  opts: ExtractMathAnswerOptions = {},
): ExtractedMathAnswer {
  const budget = new Budget(opts.timeoutMs ?? 1000);
  const text = clip(opts.stripThink === false ? response : stripThinkBlock(response));
  try {
    const ex = extractWithTargets(text, opts.targets ?? DEFAULT_TARGETS, budget);
    return { answer: ex.raw, canonical: ex.node ? show(ex.node) : null, choice: ex.choice };
  } catch (e) {
    if (e instanceof BudgetExceeded) return { answer: null, canonical: null, timedOut: true };
    throw e;
  }
}

const sameText = (a: string | null, b: string | null) =>
  !!a && !!b && a.trim() !== "" && a.trim() === b.trim();

const looksWrapped = (s: string) => /(?<!\\)\$|\\boxed|\\fbox|\\\[|\\\(/.test(s);

function extractGold(gold: string, opts: VerifyMathOptions, budget: Budget): Extraction {
  if (gold.length > MAX_GOLD_CHARS) gold = gold.slice(0, MAX_GOLD_CHARS);
  const targets = opts.goldTargets ?? "auto";
  if (targets === "auto") {
    if (looksWrapped(gold)) return extractWithTargets(gold, DEFAULT_TARGETS, budget);
    const boxed = extractWithTargets(`\\boxed{${gold}}`, [{ type: "latex", boxedMatchPriority: 0 }], budget);
    if (boxed.node) return { ...boxed, raw: gold.trim() };
    return extractWithTargets(gold, DEFAULT_TARGETS, budget);
  }
  return extractWithTargets(gold, targets, budget);
}

function checkOptions(opts: VerifyMathOptions): void {
  if (
    opts.floatRounding !== undefined &&
    !(Number.isInteger(opts.floatRounding) && opts.floatRounding >= 0)
  ) {
    throw new ConfigError(
      `verifyMath: floatRounding must be a non-negative integer, got ${opts.floatRounding}`,
      "pass the number of decimal places, e.g. { floatRounding: 6 }",
    );
  }
  if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0)) {
    throw new ConfigError(
      `verifyMath: timeoutMs must be positive, got ${opts.timeoutMs}`,
      "e.g. { timeoutMs: 1000 }",
    );
  }
}

/**
 * Is `response` a correct answer to a problem whose answer is `gold`? Synchronous and bounded: every
 * loop runs on a step budget, so a check past `timeoutMs` returns `timedOut: true` (never a silent
 * "wrong"). Math-Verify's semantics; see docs/math-verifier.md for the rules.
 */
export function verifyMath(gold: string, response: string, opts: VerifyMathOptions = {}): MathVerdict {
  checkOptions(opts);
  const budget = new Budget(opts.timeoutMs ?? 1000);
  let extractedGold: string | null = null;
  let extractedPred: string | null = null;
  try {
    const g = extractGold(String(gold), opts, budget);
    extractedGold = g.raw;
    if (!g.node)
      return { correct: false, extractedGold, extractedPred, reason: "gold answer could not be parsed" };
    const text = clip(opts.stripThink === false ? String(response) : stripThinkBlock(String(response)));
    const p = extractWithTargets(text, opts.predTargets ?? DEFAULT_TARGETS, budget);
    extractedPred = p.raw;
    if (!p.node) {
      if (sameText(g.text, p.text))
        return { correct: true, extractedGold, extractedPred, reason: "same answer text" };
      return {
        correct: false,
        extractedGold,
        extractedPred,
        reason: p.raw === null ? "no answer found in response" : "answer found but could not be parsed",
      };
    }
    const correct = mathEqual(
      g.node,
      p.node,
      {
        floatRounding: opts.floatRounding ?? 6,
        strict: opts.strict ?? true,
        allowSetRelationComp: opts.allowSetRelationComp ?? false,
      },
      budget,
    );
    if (correct) return { correct, extractedGold, extractedPred, reason: "equivalent" };
    // Math-Verify also compares the extracted strings themselves.
    if (sameText(g.text, p.text))
      return { correct: true, extractedGold, extractedPred, reason: "same answer text" };
    return { correct, extractedGold, extractedPred, reason: "not equivalent" };
  } catch (e) {
    if (e instanceof BudgetExceeded) {
      return {
        correct: false,
        extractedGold,
        extractedPred,
        reason: "timed out",
        timedOut: true,
        error: e.message,
      };
    }
    if (e instanceof ConfigError) throw e;
    // An internal failure is reported, never passed off as a plain "wrong".
    return {
      correct: false,
      extractedGold,
      extractedPred,
      reason: "internal error",
      error: (e as Error).message ?? String(e),
    };
  }
}

export type MathRewardMode = "klear" | "binary";

export interface MathRewardOptions extends VerifyMathOptions {
  mode?: MathRewardMode;
}

export interface MathRewardResult {
  /** klear: +1 correct, −1 wrong or unparsable, −0.5 no `</think>`, −2 no `<think>`; binary: 1 or 0. */
  score: number;
  correct: boolean;
  formatError?: "missing_think_close" | "missing_think_open";
  verdict?: MathVerdict;
}

/**
 * Klear's fast path (`math_dapo.py`, `judge_math.py`): an extracted answer that is literally the ground
 * truth is correct even when the verifier cannot show it.
 */
export function withStringFastPath(gold: string, verdict: MathVerdict): MathVerdict {
  if (verdict.correct || verdict.extractedPred === null || verdict.extractedPred !== gold.trim())
    return verdict;
  return { ...verdict, correct: true, reason: "string match" };
}

/**
 * The authors' reward (klear-spec §9.1, `math_dapo.py` in long-CoT mode): format rules first (klear
 * mode), then the string fast path, then the verifier. The synchronous form of `scoreResponse` for math
 * (rewards/score.ts), which applies the same rules.
 */
export function mathReward(gold: string, response: string, opts: MathRewardOptions = {}): MathRewardResult {
  const mode = opts.mode ?? "klear";
  if (mode !== "klear" && mode !== "binary") {
    throw new ConfigError(
      `mathReward: unknown mode "${mode}"`,
      'use mode "klear" (±1 with format rules) or "binary" (0/1)',
    );
  }
  const gate = mode === "klear" ? thinkGateFailure(response) : null;
  if (gate) return { score: thinkGateReward(gate), correct: false, formatError: gate };
  const verdict = withStringFastPath(
    gold,
    verifyMath(gold, opts.stripThink === false ? response : stripThinkBlock(response), {
      ...opts,
      stripThink: false,
    }),
  );
  const wrong = mode === "klear" ? KLEAR_REWARD.incorrect : 0;
  return { score: verdict.correct ? KLEAR_REWARD.correct : wrong, correct: verdict.correct, verdict };
}
