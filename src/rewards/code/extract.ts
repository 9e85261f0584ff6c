export interface ExtractCodeOptions {
  /**
   * Accept only a fence tagged exactly `python`, as Klear's reward does (default true). When false,
   * `py`, `python3`, any capitalisation and untagged fences count too (LiveCodeBench-style eval).
   */
  strict?: boolean;
  /** Require a closed `</think>` (Klear's reward gate); default false. */
  requireThinkClose?: boolean;
}

const FENCE_RE = /```([^\n`]*)\n([\s\S]*?)\n[ \t]*```/g;

/**
 * The program in a model response: the last fenced Python block after the reasoning. Text up to the
 * last `</think>` is dropped; a response whose `<think>` never closes (truncated) has no program.
 * Returns null when there is no block.
 */
export function extractCode(response: string, opts: ExtractCodeOptions = {}): string | null {
  const strict = opts.strict ?? true;
  const close = response.lastIndexOf("</think>");
  let answer: string;
  if (close >= 0) answer = response.slice(close + "</think>".length);
  else if (opts.requireThinkClose || /<think>/.test(response)) return null;
  else answer = response;
  let last: string | null = null;
  for (const m of answer.matchAll(FENCE_RE)) {
    const tag = m[1].trim();
    const ok = strict ? tag === "python" : tag === "" || /^(python3?|py)$/i.test(tag);
    if (ok) last = m[2];
  }
  return last;
}
