import type { MathNode } from "./ast.js";
import { type Budget, BudgetExceeded } from "./budget.js";
import { normalizeLatex } from "./normalize.js";
import { matchBrace, parseLatex } from "./parser.js";

/**
 * Answer extraction with Math-Verify's priority scheme (parser.py): candidate spans are found by
 * several patterns, each with a priority; groups are tried from the lowest priority number up, within a
 * group the rightmost span first, and the first span that parses wins.
 */

export type MathTarget =
  | {
      type: "latex";
      boxedMatchPriority?: number;
      tryExtractWithoutAnchor?: boolean;
      malformedOperators?: boolean;
    }
  | { type: "expr"; tryExtractWithoutAnchor?: boolean }
  | { type: "string"; strings: string[]; tryExtractWithoutAnchor?: boolean; lowercase?: boolean };

/** Math-Verify's default `parse()` targets: LaTeX (boxed at priority 50) and plain expressions. */
export const DEFAULT_TARGETS: MathTarget[] = [{ type: "latex" }, { type: "expr" }];

export interface Extraction {
  /** The parsed answer, or null when no candidate parsed. */
  node: MathNode | null;
  /** The matched answer text as written (Math-Verify's string fallback). */
  raw: string | null;
  /** Multiple-choice answers: the letter chosen (lowercased when asked). */
  choice?: string;
  /**
   * The normalised text of the first span tried, which Math-Verify's verify() also compares as a plain
   * string (so `$\\boxed{10}$ percent` still matches gold `10`, and unparsable answers can match verbatim).
   */
  text: string | null;
}

interface Candidate {
  kind: "latex" | "expr" | "string";
  start: number;
  end: number;
  priority: number;
  raw: string;
  convert: () => MathNode | null;
  choice?: string;
}

const MAX_ENVS_JOINED = 6;

interface Env {
  start: number;
  end: number;
  content: string;
  percent: boolean;
  boxed: boolean;
}

const PERCENT_AFTER = /^\s*(?:\$|\\\)|\\\])?\s*[.,]?\s*(?:\\?%|percent(?:age)?\b|pct\b)/i;

function findLatexEnvs(text: string, budget: Budget): Env[] {
  const envs: Env[] = [];
  const n = text.length;
  // Once a closing delimiter is known to be absent after some point, later openers cannot close
  // either: remembering that keeps the scan linear on adversarial input ("\\[ \\[ \\[ …").
  let noDisplayDollar = false;
  let noBracket = false;
  let parenFailUntil = -1;
  let i = 0;
  while (i < n) {
    budget.step();
    const c = text[i];
    if (c === "$") {
      if (text[i + 1] === "$") {
        const close = noDisplayDollar ? -1 : text.indexOf("$$", i + 2);
        if (close >= 0) {
          envs.push(mkEnv(text, i, close + 2, text.slice(i + 2, close)));
          budget.step((close - i) >> 6);
          i = close + 2;
          continue;
        }
        noDisplayDollar = true;
        i += 2;
        continue;
      }
      // Inline $…$: one line, \$ allowed inside.
      let j = i + 1;
      while (j < n && text[j] !== "$" && text[j] !== "\n") {
        if (text[j] === "\\" && text[j + 1] === "$") j++;
        j++;
      }
      budget.step((j - i) >> 6);
      if (j < n && text[j] === "$" && j > i + 1) {
        envs.push(mkEnv(text, i, j + 1, text.slice(i + 1, j)));
        i = j + 1;
        continue;
      }
      i++;
      continue;
    }
    if (c === "\\" && text[i + 1] === "[" && !noBracket) {
      const close = text.indexOf("\\]", i + 2);
      if (close >= 0) {
        envs.push(mkEnv(text, i, close + 2, text.slice(i + 2, close)));
        budget.step((close - i) >> 6);
        i = close + 2;
        continue;
      }
      noBracket = true;
    }
    if (c === "\\" && text[i + 1] === "(" && i > parenFailUntil) {
      let j = i + 2;
      while (j < n && text[j] !== "\n" && !(text[j] === "\\" && text[j + 1] === ")")) j++;
      budget.step((j - i) >> 6);
      if (j < n && text[j] === "\\") {
        envs.push(mkEnv(text, i, j + 2, text.slice(i + 2, j)));
        i = j + 2;
        continue;
      }
      parenFailUntil = j;
    }
    i++;
  }
  return envs;
}

function mkEnv(text: string, start: number, end: number, content: string, boxed = false): Env {
  const after = PERCENT_AFTER.exec(text.slice(end, end + 40));
  return { start, end: after ? end + after[0].length : end, content, percent: !!after, boxed };
}

function findBoxed(text: string, budget: Budget): Env[] {
  const out: Env[] = [];
  const re = /\\(?:boxed|fbox)\s*\{/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    budget.step();
    const open = m.index + m[0].length - 1;
    const close = matchBrace(text, open, budget);
    if (close < 0) {
      // An unterminated box runs to the end of the text; the parser decides whether it is usable.
      out.push(mkEnv(text, m.index, text.length, text.slice(open + 1), true));
      break;
    }
    out.push(mkEnv(text, m.index, close + 1, text.slice(open + 1, close), true));
    re.lastIndex = close + 1;
  }
  return out;
}

/** Text between two answers that still reads as one list ("1 and 2", "(1,2), (2,1)", "\quad\text{and}\quad"). */
function joins(gap: string, boxed: boolean): boolean {
  if (/^\s*$/.test(gap)) return boxed;
  if (gap.length > 60 || gap.includes("\n\n")) return false;
  if (boxed) return /(^|[^A-Za-z])(and|or)([^A-Za-z]|$)|,/.test(gap);
  return /^\s*(?:,|and|or|,\s*and|,\s*or)\s*$/i.test(gap);
}

function groupEnvs(text: string, envs: Env[], boxed: boolean): Env[][] {
  const groups: Env[][] = [];
  for (const e of envs) {
    const last = groups[groups.length - 1];
    if (
      last &&
      last.length < MAX_ENVS_JOINED &&
      joins(text.slice(last[last.length - 1].end, e.start), boxed) &&
      !last[last.length - 1].percent
    ) {
      last.push(e);
    } else groups.push([e]);
  }
  return groups;
}

function groupText(text: string, g: Env[]): string {
  return text.slice(g[0].start, g[g.length - 1].end);
}

function convertLatexGroup(g: Env[], budget: Budget, malformed: boolean): MathNode | null {
  const nodes: MathNode[] = [];
  for (const e of g) {
    const node = parseContent(e.content, budget, malformed, e.percent);
    if (!node) return null;
    nodes.push(node);
  }
  if (nodes.length === 1) return nodes[0];
  // Joined answers form one set; an answer that is itself a list contributes its members.
  const items: MathNode[] = [];
  for (const n of nodes) {
    if (n.k === "set" && !n.pm) items.push(...n.items);
    else items.push(n);
  }
  return { k: "set", items };
}

function parseContent(
  content: string,
  budget: Budget,
  malformed: boolean,
  percent: boolean,
): MathNode | null {
  if (content.trim() === "") return null;
  // Normalisation is a few dozen regex passes: charge it to the budget so many tiny candidates add up.
  budget.step(64 + (content.length >> 3));
  let s = content;
  // \approx: "x ≈ 11" answers 11; "x = 1/3 ≈ 0.33" answers 1/3.
  const ap = s.indexOf("\\approx");
  if (ap >= 0) {
    const before = s.slice(0, ap);
    s = before.includes("=") ? before : s.slice(s.lastIndexOf("\\approx") + 7);
  }
  // Nested boxes inside an environment: the box holds the answer.
  const bx = /\\(?:boxed|fbox)\s*\{/.exec(s);
  if (bx) {
    const open = bx.index + bx[0].length - 1;
    const close = matchBrace(s, open, budget);
    const inner = s.slice(open + 1, close < 0 ? s.length : close);
    const tail = close < 0 ? "" : s.slice(close + 1);
    if (/^\s*(?:\\?%|percent|pct)/i.test(tail)) percent = true;
    s = inner;
  }
  const pctWord = /\s*(?:\\?%|percent(?:age)?|pct)\s*$/i;
  if (pctWord.test(s)) {
    s = s.replace(pctWord, "");
    percent = true;
  }
  s = normalizeLatex(s, { malformedOperators: malformed });
  s = s.replace(/[.,;:\s]+$/, "").replace(/^[\s,;:]+/, "");
  if (s === "") return null;
  try {
    let node = parseLatex(s, budget, { malformedOperators: malformed });
    if (percent) node = { k: "mul", args: [node, { k: "num", v: { n: 1n, d: 100n }, float: false }] };
    return node;
  } catch (e) {
    if (e instanceof BudgetExceeded) throw e;
    // latex2sympy2_extended retries on the part after the last "=".
    const eq = s.lastIndexOf("=");
    if (eq > 0 && eq < s.length - 1) {
      try {
        return parseLatex(s.slice(eq + 1), budget, { malformedOperators: malformed });
      } catch (e2) {
        if (e2 instanceof BudgetExceeded) throw e2;
      }
    }
    return null;
  }
}

// Plain-text numbers: thousands separators, decimal commas, leading dots, currency, percent. As in
// Math-Verify, a number must start the text or follow whitespace, `=` or `**` (so `XDY2K` and the `2` of `m^2` are not answers).
const EXPR_RE =
  /(?<=^|[\s=]|(?:^|[\s=])\*\*)(?:[$€£]\s?)?-?(?:[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?: \d{3})+(?!\d)(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)(?:\s*(?:[-+*/^]|\\times|\\cdot)\s*-?(?:\d+(?:\.\d+)?|\.\d+))*(?:\s*(?:%|percent\b|pct\b))?/g;

function convertExpr(raw: string, budget: Budget): MathNode | null {
  budget.step(32 + (raw.length >> 3));
  let s = raw.replace(/^[$€£]\s?/, "");
  let percent = false;
  const pct = /\s*(?:%|percent|pct)$/;
  if (pct.test(s)) {
    percent = true;
    s = s.replace(pct, "");
  }
  s = s.replace(/(?<![\d,.])[1-9]\d{0,2}(?:,\d{3})+(?![\d,])/g, (m) => m.replace(/,/g, ""));
  s = s.replace(/(\d) (\d{3})(?=\D|$)/g, "$1$2").replace(/(\d) (\d{3})(?=\D|$)/g, "$1$2");
  s = s.replace(/(\d),(\d+)/g, "$1.$2");
  try {
    let node = parseLatex(s, budget);
    if (percent) node = { k: "mul", args: [node, { k: "num", v: { n: 1n, d: 100n }, float: false }] };
    return node;
  } catch (e) {
    if (e instanceof BudgetExceeded) throw e;
    return null;
  }
}

const FINAL_IS_HOPE = /final answer is\s*:?\s*$/i;
const FINAL_JUST_IS = /final answer[^\n]{0,100}?\s+is:?\s*$/i;
const FINAL_JUST_IS_NOSPACE = /final answer[^\n]{0,100}?\s*:\s*$/i;
const ANSWER_COLON = /answer\s*:\s*$/i;
const ANSWER_LOOSE = /answer(?:\s+is)?\s*$/i;

/** Positions of "answer" in the text, so candidates far from any anchor skip the anchor regexes. */
function answerPositions(text: string): number[] {
  const out: number[] = [];
  const re = /answer/gi;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m.index);
  return out;
}

function nearAnswer(positions: number[], start: number): boolean {
  let lo = 0;
  let hi = positions.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (positions[mid] < start - 140) lo = mid + 1;
    else hi = mid;
  }
  return lo < positions.length && positions[lo] < start;
}

function anchorPriority(text: string, start: number, end: number, anchors: number[]): number | null {
  if (!nearAnswer(anchors, start)) return null;
  const before = text.slice(Math.max(0, start - 140), start);
  if (FINAL_IS_HOPE.test(before) && /^\.?\s?I hope/.test(text.slice(end, end + 10))) return 0;
  if (FINAL_JUST_IS.test(before)) return 50;
  if (ANSWER_COLON.test(before) || FINAL_JUST_IS_NOSPACE.test(before)) return 100;
  if (ANSWER_LOOSE.test(before)) return 200;
  return null;
}

function latexCandidates(
  text: string,
  t: Extract<MathTarget, { type: "latex" }>,
  budget: Budget,
  anchors: number[],
): Candidate[] {
  const out: Candidate[] = [];
  const kind = "latex";
  const malformed = t.malformedOperators !== false;
  const envGroups = groupEnvs(text, findLatexEnvs(text, budget), false);
  for (const g of envGroups) {
    const start = g[0].start;
    const end = g[g.length - 1].end;
    let memo: MathNode | null | undefined;
    const convert = () => {
      if (memo === undefined) memo = convertLatexGroup(g, budget, malformed);
      return memo;
    };
    const raw = g.length === 1 ? g[0].content.trim() : groupText(text, g);
    const pr = anchorPriority(text, start, end, anchors);
    if (pr !== null) out.push({ kind, start, end, priority: pr, raw, convert });
    if (t.tryExtractWithoutAnchor !== false) out.push({ kind, start, end, priority: 300, raw, convert });
  }
  // A bare \frac{a}{b} of numbers outside any environment is also a LaTeX answer.
  if (t.tryExtractWithoutAnchor !== false) {
    const fracRe = /-?\\frac\{-?\d+(?:[.,]\d+)?\}\{-?\d+(?:[.,]\d+)?\}/g;
    for (let m = fracRe.exec(text); m; m = fracRe.exec(text)) {
      const raw = m[0];
      const inEnv = envGroups.some((g) => g[0].start <= m.index && m.index < g[g.length - 1].end);
      if (inEnv) continue;
      out.push({
        kind,
        start: m.index,
        end: m.index + raw.length,
        priority: 300,
        raw,
        convert: () => parseContent(raw, budget, malformed, false),
      });
    }
  }
  const boxedPriority = t.boxedMatchPriority ?? 50;
  if (boxedPriority >= 0) {
    for (const g of groupEnvs(text, findBoxed(text, budget), true)) {
      const raw = g.length === 1 ? g[0].content.trim() : g.map((e) => e.content.trim()).join(", ");
      out.push({
        kind,
        start: g[0].start,
        end: g[g.length - 1].end,
        priority: boxedPriority,
        raw,
        convert: () => convertLatexGroup(g, budget, malformed),
      });
    }
  }
  return out;
}

function exprCandidates(
  text: string,
  t: Extract<MathTarget, { type: "expr" }>,
  budget: Budget,
  anchors: number[],
): Candidate[] {
  const out: Candidate[] = [];
  const kind = "expr";
  EXPR_RE.lastIndex = 0;
  for (let m = EXPR_RE.exec(text); m; m = EXPR_RE.exec(text)) {
    budget.step();
    const raw = m[0].trim();
    const start = m.index;
    const end = m.index + m[0].length;
    let memo: MathNode | null | undefined;
    const convert = () => {
      if (memo === undefined) memo = convertExpr(raw, budget);
      return memo;
    };
    const pr = anchorPriority(text, start, end, anchors);
    if (pr !== null) out.push({ kind, start, end, priority: pr, raw, convert });
    if (t.tryExtractWithoutAnchor !== false) out.push({ kind, start, end, priority: 300, raw, convert });
  }
  return out;
}

function stringCandidates(
  text: string,
  t: Extract<MathTarget, { type: "string" }>,
  anchors: number[],
): Candidate[] {
  const out: Candidate[] = [];
  const alts = t.strings.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  if (!alts) return out;
  const re = new RegExp(`(?<![A-Za-z])\\(?(${alts})\\)?(?![A-Za-z])`, "g");
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const letter = m[1];
    const choice = t.lowercase ? letter.toLowerCase() : letter;
    const start = m.index;
    const end = m.index + m[0].length;
    const convert = (): MathNode => ({ k: "word", text: choice.toLowerCase() });
    const pr = anchorPriority(text, start, end, anchors);
    if (pr !== null) out.push({ start, end, priority: pr, raw: letter, convert, choice, kind: "string" });
    // A letter opening the response ("A. Because …") is an answer too.
    if (start === 0) out.push({ start, end, priority: 250, raw: letter, convert, choice, kind: "string" });
    if (t.tryExtractWithoutAnchor !== false)
      out.push({ start, end, priority: 300, raw: letter, convert, choice, kind: "string" });
  }
  return out;
}

export function extractWithTargets(text: string, targets: MathTarget[], budget: Budget): Extraction {
  const cands: Candidate[] = [];
  const anchors = answerPositions(text);
  for (const t of targets) {
    if (t.type === "latex") cands.push(...latexCandidates(text, t, budget, anchors));
    else if (t.type === "expr") cands.push(...exprCandidates(text, t, budget, anchors));
    else cands.push(...stringCandidates(text, t, anchors));
  }
  const priorities = [...new Set(cands.map((c) => c.priority))].sort((a, b) => a - b);
  let first: Candidate | null = null;
  for (const pr of priorities) {
    const group = cands.filter((c) => c.priority === pr).sort((a, b) => b.end - a.end || a.start - b.start);
    for (const c of group) {
      first ??= c;
      const node = c.convert();
      if (node) return { node, raw: c.raw, choice: c.choice, text: candidateText(first, budget) };
    }
  }
  return { node: null, raw: first?.raw ?? null, text: first ? candidateText(first, budget) : null };
}

function candidateText(c: Candidate, budget: Budget): string {
  budget.step(16 + (c.raw.length >> 3));
  if (c.kind === "string") return c.raw;
  if (c.kind === "expr") {
    return c.raw
      .replace(/^[$€£]\s?/, "")
      .replace(/\s*(?:%|percent|pct)$/, "")
      .replace(/(?<![\d,.])[1-9]\d{0,2}(?:[, ]\d{3})+(?![\d,])/g, (m) => m.replace(/[, ]/g, ""))
      .replace(/(\d),(\d+)/g, "$1.$2")
      .replace(/^(-?)0+(?=\d)/, "$1")
      .trim();
  }
  let s = c.raw;
  const bx = /^\\(?:boxed|fbox)\s*\{/.exec(s.trim());
  if (bx) s = s.trim().slice(bx[0].length, s.trim().endsWith("}") ? -1 : undefined);
  return normalizeLatex(s)
    .replace(/[.,;:\s]+$/, "")
    .trim();
}
