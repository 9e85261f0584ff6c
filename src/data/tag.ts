import { ConfigError, KlearError } from "../util/errors.js";
import { rowAnswer, rowPromptText } from "./rows.js";

/**
 * Difficulty tagging: sample N responses per prompt from a model, score each with a verifier, tag the
 * prompt by pass rate, and apply the paper's RL filters. The sampler and scorer are interfaces so the
 * logic runs against canned answers in tests and against any OpenAI-compatible server in use.
 */
export interface ResponseSampler {
  sample(prompt: string, n: number): Promise<string[]>;
}

export interface ResponseScorer {
  /** Whether `response` solves `row` (math: the answer verifies; code: all tests pass). */
  score(row: Record<string, unknown>, response: string): Promise<boolean>;
}

export type DifficultyTag = "easy" | "medium" | "hard";

export interface DifficultyThresholds {
  /** A pass rate at or above this is easy (default 0.75). */
  easyAtLeast?: number;
  /** A pass rate below this is hard (default 0.25). The paper's exact rule is unpublished. */
  hardBelow?: number;
}

export function difficultyOf(passRate: number, t: DifficultyThresholds = {}): DifficultyTag {
  const easy = t.easyAtLeast ?? 0.75;
  const hard = t.hardBelow ?? 0.25;
  if (hard > easy)
    throw new ConfigError(`hardBelow ${hard} > easyAtLeast ${easy}`, "use hardBelow <= easyAtLeast");
  return passRate >= easy ? "easy" : passRate < hard ? "hard" : "medium";
}

export interface DifficultyResult {
  samples: number;
  passes: number;
  passRate: number;
  difficulty: DifficultyTag;
}

/** Samples and scores one row. */
export async function tagDifficulty(
  row: Record<string, unknown>,
  sampler: ResponseSampler,
  scorer: ResponseScorer,
  opts: DifficultyThresholds & { n?: number } = {},
): Promise<DifficultyResult> {
  const n = opts.n ?? 16;
  const prompt = rowPromptText(row);
  if (prompt === null) {
    throw new KlearError("ROW_NO_PROMPT", "cannot tag a row without a prompt", "check the row format");
  }
  const responses = await sampler.sample(prompt, n);
  let passes = 0;
  for (const r of responses) if (await scorer.score(row, r)) passes++;
  const passRate = responses.length === 0 ? 0 : passes / responses.length;
  return { samples: responses.length, passes, passRate, difficulty: difficultyOf(passRate, opts) };
}

export interface RlFilterOptions {
  /** Math: how a "majority" of samples is counted: more than half (9 of 16) or at least half (8 of 16). */
  mathMajority?: "more-than-half" | "at-least-half";
  /** Code: minimum number of tests a problem must have (paper: 16). */
  codeMinTests?: number;
  /** Code: minimum fraction of samples passing all tests (paper: 0.5). */
  codeMinPassRate?: number;
}

/** The number of tests in a code row's ground truth (stdin/stdout pairs, functional asserts, ...). */
export function codeTestCount(row: Record<string, unknown>): number {
  const gt = rowAnswer(row);
  if (gt === undefined) return 0;
  let parsed: unknown;
  try {
    parsed = JSON.parse(gt);
  } catch {
    return 0;
  }
  if (Array.isArray(parsed)) return parsed.length;
  if (typeof parsed !== "object" || parsed === null) return 0;
  const p = parsed as Record<string, unknown>;
  if (Array.isArray(p.inputs)) return p.inputs.length;
  if (Array.isArray(p.functional)) return p.functional.length;
  if (typeof p.functional === "string") return (p.functional.match(/^\s*assert\b/gm) ?? []).length;
  if (Array.isArray(p.tests)) return p.tests.length;
  return 0;
}

/** The paper's RL keep rule for a tagged row; `reason` names the rule that dropped it. */
export function rlFilter(
  row: Record<string, unknown>,
  result: DifficultyResult,
  opts: RlFilterOptions = {},
): { keep: boolean; reason?: string } {
  const ability = String(row.ability ?? "math").toLowerCase();
  if (ability === "code") {
    const minTests = opts.codeMinTests ?? 16;
    const tests = codeTestCount(row);
    if (tests < minTests) return { keep: false, reason: "code-too-few-tests" };
    if (result.passRate < (opts.codeMinPassRate ?? 0.5)) return { keep: false, reason: "code-low-pass-rate" };
    return { keep: true };
  }
  const half = result.samples / 2;
  const majority =
    (opts.mathMajority ?? "more-than-half") === "more-than-half"
      ? result.passes > half
      : result.passes >= half;
  return majority ? { keep: true } : { keep: false, reason: "math-no-majority" };
}

/** Extracts the last `\boxed{...}` (balanced braces) from a response. */
export function lastBoxed(text: string): string | null {
  const at = text.lastIndexOf("\\boxed");
  if (at === -1) return null;
  let i = text.indexOf("{", at);
  if (i === -1) return null;
  let depth = 0;
  const start = i + 1;
  for (; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(start, i);
  }
  return null;
}

/**
 * Math scorer: the project's math verifier (rewards/math `verifyMath`) when it is available, else an
 * exact comparison of the last boxed answer after whitespace removal.
 */
export async function mathScorer(): Promise<ResponseScorer> {
  let verify: ((gold: string, response: string) => unknown) | null = null;
  try {
    const mod = (await import("../rewards/math/index.js")) as Record<string, unknown>;
    if (typeof mod.verifyMath === "function") verify = mod.verifyMath as (g: string, r: string) => unknown;
  } catch {
    verify = null;
  }
  return {
    async score(row, response) {
      const gold = rowAnswer(row);
      if (gold === undefined) return false;
      if (verify) {
        const v = (await verify(gold, response)) as { correct?: boolean } | boolean;
        return typeof v === "boolean" ? v : v?.correct === true;
      }
      const got = lastBoxed(response);
      const norm = (s: string) => s.replace(/\s+/g, "").replace(/^\\boxed\{(.*)\}$/, "$1");
      return got !== null && norm(got) === norm(gold);
    },
  };
}

/** Code scorer over the project's sandbox (rewards/code `runCodeTests` + `extractCode`). */
export async function codeScorer(): Promise<ResponseScorer> {
  const mod = (await import("../rewards/code/index.js").catch(() => ({}))) as Record<string, unknown>;
  const run = mod.runCodeTests as
    | ((code: string, tests: unknown, limits?: unknown) => Promise<unknown>)
    | undefined;
  const extract = mod.extractCode as ((response: string) => string | null) | undefined;
  if (typeof run !== "function" || typeof extract !== "function") {
    throw new KlearError(
      "CODE_SANDBOX_UNAVAILABLE",
      "the code sandbox (rewards/code runCodeTests/extractCode) is not available in this build",
      "tag math rows only (--ability math), or build klear with the code rewards module",
    );
  }
  return {
    async score(row, response) {
      const code = extract(response);
      if (!code) return false;
      const gt = rowAnswer(row);
      if (gt === undefined) return false;
      const result = (await run(code, JSON.parse(gt))) as
        | {
            passed?: number;
            total?: number;
            allPassed?: boolean;
            verdicts?: { ok?: boolean; passed?: boolean }[];
          }
        | undefined;
      if (!result) return false;
      if (typeof result.allPassed === "boolean") return result.allPassed;
      if (Array.isArray(result.verdicts))
        return result.verdicts.every((v) => v.ok === true || v.passed === true);
      return result.passed !== undefined && result.passed === result.total;
    },
  };
}

export interface OpenAiSamplerOptions {
  /** Base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1. */
  baseUrl: string;
  model: string;
  apiKey?: string;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  /** Per request, milliseconds. */
  timeoutMs?: number;
  retries?: number;
}

/**
 * A sampler over any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, ...), asking for all
 * N samples in one request (`n`), with retries and backoff on transport errors and 5xx answers.
 */
export function openAiCompatibleSampler(o: OpenAiSamplerOptions): ResponseSampler {
  const url = `${o.baseUrl.replace(/\/+$/, "")}/chat/completions`;
  return {
    async sample(prompt, n) {
      const body = JSON.stringify({
        model: o.model,
        messages: [{ role: "user", content: prompt }],
        n,
        temperature: o.temperature ?? 0.6,
        top_p: o.topP ?? 0.95,
        max_tokens: o.maxTokens ?? 4096,
      });
      const attempts = (o.retries ?? 3) + 1;
      let lastError = "";
      for (let a = 0; a < attempts; a++) {
        if (a > 0) await new Promise((r) => setTimeout(r, 200 * 2 ** a));
        try {
          const res = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${o.apiKey ?? "none"}` },
            body,
            signal: AbortSignal.timeout(o.timeoutMs ?? 600_000),
          });
          if (res.status >= 500) {
            lastError = `HTTP ${res.status}`;
            continue;
          }
          if (!res.ok) {
            throw new KlearError(
              "ENDPOINT_REJECTED",
              `${url} answered HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`,
              "check --model and the server's accepted parameters",
            );
          }
          const json = (await res.json()) as { choices?: { message?: { content?: string | null } }[] };
          return (json.choices ?? []).map((c) => c.message?.content ?? "");
        } catch (e) {
          if (e instanceof KlearError) throw e;
          lastError = (e as Error).message;
        }
      }
      throw new KlearError(
        "ENDPOINT_UNREACHABLE",
        `cannot sample from ${url}: ${lastError}`,
        "check that the server is running and --endpoint points at its /v1 base URL",
      );
    },
  };
}
