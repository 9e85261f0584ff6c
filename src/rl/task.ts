/**
 * What RL trains on, handed to `runRl` (never imported by it): a stream of training prompts, a held-out
 * set, and a scorer. The arithmetic task (src/tasks), math rows and code rows (./row-tasks) implement it;
 * the CLI or the demo picks one.
 */
import type { Tokenizer } from "../model/tokenizer.js";
import type { RlConfig } from "./trainer-config.js";

/** One prompt of an RL task: what the model sees (text and ids) and the reference answer. */
export interface RlPrompt {
  id: string;
  text: string;
  tokens: number[];
  /** The reference: a math answer, or a code row's tests as JSON. */
  answer: string;
  /** Code rows: the function a functional test calls, and the starter code it came with. */
  fnName?: string;
  starterCode?: string;
}

/** A response's scalar reward and whether it counts as fully correct (the group filter's "acc"). */
export interface RlScore {
  reward: number;
  correct: boolean;
}

/** What a scorer may know about the response besides its text. */
export interface RlScoreContext {
  /**
   * A seed of this response's own (from the run's seed, the prompt's stream position and the sample
   * index), for scorers that draw at random, e.g. the subset of a code problem's tests to run.
   */
  seed: number;
}

/** Scores one response; may be async (the code sandbox is). */
export type RlScorer = (
  prompt: RlPrompt,
  response: string,
  ctx: RlScoreContext,
) => RlScore | Promise<RlScore>;

/** Where prompts come from and how responses are scored. */
export interface RlTask {
  readonly name: string;
  /** Held-out prompts (never trained on). */
  readonly heldOut: readonly RlPrompt[];
  /** The training prompts at stream positions [cursor, cursor + count): a pure function of the position. */
  prompts(cursor: number, count: number): RlPrompt[];
  score: RlScorer;
}

/** What a task is built from: the run's resolved config (its saved one on resume) and the policy's tokenizer. */
export interface RlTaskContext {
  config: RlConfig;
  tokenizer: Tokenizer;
}

/** Builds the task once the run's config and the policy's tokenizer are known. */
export type RlTaskFactory = (ctx: RlTaskContext) => RlTask | Promise<RlTask>;

// Distinct seed streams for prompts, rollouts, evaluation and scoring, so none shifts another.
export const PROMPT_STREAM = 0x5eed01;
export const ROLLOUT_STREAM = 0x5eed02;
export const EVAL_STREAM = 0x5eed03;
export const SCORE_STREAM = 0x5eed04;
