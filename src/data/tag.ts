import { extractCode } from "../rewards/code/extract.js";
import type { RunCodeTestsOptions } from "../rewards/code/pool.js";
import { type VerifyMathOptions, verifyMath } from "../rewards/math/index.js";
import { EVAL_RULES, type ScoreRules, scoreResponse } from "../rewards/score.js";
import { OpenAIClient, type OpenAIClientOptions } from "../rollout/openai.js";
import type { GenerateParams, Generator } from "../rollout/types.js";
import { codeTestsFromGroundTruth, groundTruthTestCount } from "../rows/problems.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { rowAnswer, rowPromptText } from "./rows.js";

export { codeTestsFromGroundTruth };

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
  return gt === undefined ? 0 : groundTruthTestCount(gt);
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

export interface TagScorerOptions {
  /**
   * How samples are judged; default `EVAL_RULES`, as evaluation judges them (no think gate, every test
   * of a code row: the keep rule asks whether a sample passes all of them). Pass
   * `{ ...EVAL_RULES, thinkGate: true }` to drop samples that break Klear's format rules too.
   */
  rules?: Readonly<ScoreRules>;
}

/** Math scorer: `scoreResponse` against the row's ground truth (math verifier options apply to each check). */
export function mathScorer(opts: VerifyMathOptions & TagScorerOptions = {}): ResponseScorer {
  const { rules = EVAL_RULES, ...verify } = opts;
  return {
    async score(row, response) {
      const gold = rowAnswer(row);
      if (gold === undefined) return false;
      const r = await scoreResponse({ kind: "math", answer: gold }, response, {
        rules,
        verifyMath: (g, section) => verifyMath(g, section, { timeoutMs: 5000, ...verify, stripThink: false }),
      });
      return r.correct;
    },
  };
}

/**
 * Code scorer: `scoreResponse` in the project's sandbox; a sample "passes" when its program passes every
 * test of the row, as in the paper's pass-rate filter. Rows whose tests the sandbox cannot run are an
 * error naming the row format, never a silent fail.
 */
export function codeScorer(opts: RunCodeTestsOptions & TagScorerOptions = {}): ResponseScorer {
  const { rules = EVAL_RULES, ...run } = opts;
  return {
    async score(row, response) {
      const gt = rowAnswer(row);
      const tests = gt === undefined ? null : codeTestsFromGroundTruth(gt);
      if (tests === null) {
        if (extractCode(response) === null) return false;
        throw new KlearError(
          "CODE_TESTS_UNSUPPORTED",
          "a code row's reward_model.ground_truth is not {inputs, outputs} or a list of {input, output, testtype}",
          "convert the tests to stdin/stdout pairs, or tag math rows only",
        );
      }
      const problem = {
        kind: "code" as const,
        tests,
        starterCode: run.starterCode ?? (typeof row.starter_code === "string" ? row.starter_code : undefined),
        fnName: run.fnName ?? (typeof row.fn_name === "string" ? row.fn_name : undefined),
      };
      return (await scoreResponse(problem, response, { rules, code: run })).correct;
    },
  };
}

export interface OpenAiSamplerOptions extends OpenAIClientOptions {
  model: string;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
}

/**
 * A sampler over any OpenAI-compatible chat endpoint (vLLM, SGLang, ...) through the project's
 * client (bounded concurrency, retries with backoff), asking for all N samples in one request.
 */
export function openAiCompatibleSampler(o: OpenAiSamplerOptions): ResponseSampler & { close(): void } {
  const client = new OpenAIClient(o);
  return {
    async sample(prompt, n) {
      const res = await client.chat([{ role: "user", content: prompt }], {
        model: o.model,
        n,
        temperature: o.temperature ?? 0.6,
        topP: o.topP ?? 0.95,
        maxTokens: o.maxTokens ?? 4096,
      });
      return res.choices.map((c) => c.text);
    },
    close: () => client.close(),
  };
}

export interface GeneratorSamplerOptions {
  /** Prompt text to token ids, chat template included (e.g. the model's tokenizer + template). */
  encode: (prompt: string) => number[];
  /** Token ids to text. */
  decode: (tokens: number[]) => string;
  /** Sampling parameters (temperature, top-p, max new tokens, stop tokens, seed...). */
  params: Omit<GenerateParams, "n" | "decode">;
}

/**
 * A sampler over any rollout `Generator`, e.g. the local engine (`LocalGenerator`), so a small model
 * on this machine can tag difficulty without a server.
 */
export function generatorSampler(generator: Generator, o: GeneratorSamplerOptions): ResponseSampler {
  return {
    async sample(prompt, n) {
      const completions = await generator.generate([o.encode(prompt)], { ...o.params, n, decode: o.decode });
      return completions
        .sort((a, b) => a.sampleIndex - b.sampleIndex)
        .map((c) => c.text ?? o.decode(c.tokens));
    },
  };
}
