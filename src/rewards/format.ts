/**
 * Klear's response-format rules (klear-spec §9.1, §9.2, §14; the authors' `ScoringConfig`), shared by
 * the math and code rewards and by `scoreResponse`: the model must write its reasoning between
 * `<think>` and `</think>` itself, and the answer (a boxed expression, a ```python block) after it.
 */

export const THINK_OPEN = "<think>";
export const THINK_CLOSE = "</think>";

/** `ScoringConfig`'s values. A missing `</think>` (mostly truncation) scores above a wrong answer, as in Klear. */
export const KLEAR_REWARD = {
  correct: 1,
  incorrect: -1,
  /** Code: no ```python block after `</think>`. */
  formatError: -1,
  missingThinkOpen: -2,
  missingThinkClose: -0.5,
} as const;

export type ThinkGateFailure = "missing_think_close" | "missing_think_open";

/**
 * Klear's think gate: no `</think>` fails first (a truncated generation), then no `<think>`; null when
 * the response has both. A failed response is not checked further.
 */
export function thinkGateFailure(response: string): ThinkGateFailure | null {
  if (!response.includes(THINK_CLOSE)) return "missing_think_close";
  if (!response.includes(THINK_OPEN)) return "missing_think_open";
  return null;
}

/** The reward a think-gate failure gets. */
export function thinkGateReward(failure: ThinkGateFailure): number {
  return failure === "missing_think_close" ? KLEAR_REWARD.missingThinkClose : KLEAR_REWARD.missingThinkOpen;
}

/** The answer section: the text after the last `</think>`, or the whole response when it has none. */
export function stripThinkBlock(text: string): string {
  const i = text.lastIndexOf(THINK_CLOSE);
  return i >= 0 ? text.slice(i + THINK_CLOSE.length) : text;
}
