import { checkChoice } from "../../util/errors.js";
import { Rng } from "../../util/rng.js";
import { KLEAR_REWARD, thinkGateFailure, thinkGateReward } from "../format.js";
import { extractCode } from "./extract.js";
import { fnNameFromStarter } from "./local.js";
import { type RunCodeTestsOptions, runCodeTests } from "./pool.js";
import type { CodeRunResult, CodeTest } from "./types.js";

export const CODE_REWARD_MODES = ["hard", "soft", "pass-rate"] as const;
export type CodeRewardMode = (typeof CODE_REWARD_MODES)[number];

/**
 * The scalar reward of a run:
 * - hard: +1 when every test passed, else −1 (the paper's ablation baseline);
 * - soft: the authors' mean of ±1 over the executed tests, i.e. 2·passRate − 1 in [−1, 1];
 * - pass-rate: passRate in [0, 1] (the paper's prose).
 */
export function codeReward(result: CodeRunResult, mode: CodeRewardMode = "soft"): number {
  checkChoice("code reward mode", mode, CODE_REWARD_MODES);
  if (mode === "hard") return result.passed ? 1 : -1;
  if (mode === "soft") return 2 * result.passRate - 1;
  return result.passRate;
}

/** Klear's reward for a response with no ```python block (format error). */
export const CODE_FORMAT_ERROR_REWARD = KLEAR_REWARD.formatError;
/** Klear's think gate (ScoringConfig): no `</think>` (mostly truncated generations), then no `<think>`. */
export const CODE_MISSING_THINK_CLOSE_REWARD = KLEAR_REWARD.missingThinkClose;
export const CODE_MISSING_THINK_OPEN_REWARD = KLEAR_REWARD.missingThinkOpen;

/**
 * A seed for one response's test draw, from its text: Klear draws the tests with an unseeded `random`
 * per response, so responses in a group see different subsets; hashing keeps that and stays replayable.
 */
export function responseTestSeed(response: string, base = 0): number {
  let h = (2166136261 ^ base) >>> 0;
  for (let i = 0; i < response.length; i++) h = Math.imul(h ^ response.charCodeAt(i), 16777619) >>> 0;
  return h & 0x7fffffff;
}

/**
 * Up to `max` tests (default 16, Klear's max_test_cases) drawn without replacement with a seed, in
 * their original order; all of them when there are no more than `max`.
 */
export function sampleCodeTests<T>(tests: readonly T[], opts: { max?: number; seed?: number } = {}): T[] {
  const max = opts.max ?? 16;
  if (tests.length <= max) return [...tests];
  const idx = new Rng(opts.seed ?? 0).sampleIndices(tests.length, max).sort((a, b) => a - b);
  return idx.map((i) => tests[i]);
}

export interface CodeResponseRewardOptions extends RunCodeTestsOptions {
  mode?: CodeRewardMode;
  /** Tests sampled per response (default 16); pass Infinity for all. */
  maxTests?: number;
  /** Seed of this response's test draw; default {@link responseTestSeed} of the response (a draw per response). */
  seed?: number;
  /** Apply Klear's think gate first: no `</think>` → −0.5, else no `<think>` → −2 (default false). */
  thinkGate?: boolean;
}

export interface CodeResponseReward {
  reward: number;
  /** Null when the response held no program (format error). */
  code: string | null;
  result: CodeRunResult | null;
}

/**
 * Klear's code reward for one response: extract the last ```python block after `</think>`, draw up to
 * 16 tests for this response, run them all (the soft reward needs every sampled test), score.
 */
export async function codeRewardForResponse(
  response: string,
  tests: readonly CodeTest[],
  opts: CodeResponseRewardOptions = {},
): Promise<CodeResponseReward> {
  const { mode = "soft", maxTests = 16, seed, thinkGate = false, ...run } = opts;
  const gate = thinkGate ? thinkGateFailure(response) : null;
  if (gate) return { reward: thinkGateReward(gate), code: null, result: null };
  const code = extractCode(response);
  if (code === null) return { reward: CODE_FORMAT_ERROR_REWARD, code: null, result: null };
  const sampled = sampleCodeTests(tests, { max: maxTests, seed: seed ?? responseTestSeed(response) });
  const result = await runCodeTests(code, sampled, {
    stopAtFirstFailure: mode === "hard",
    ...run,
    fnName: run.fnName ?? fnNameFromStarter(run.starterCode),
  });
  return { reward: codeReward(result, mode), code, result };
}
