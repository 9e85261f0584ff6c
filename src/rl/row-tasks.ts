/**
 * RL tasks over verl/Klear rows (read by rows/, JSONL, .jsonl.gz or parquet, including what `klear data
 * convert` writes), scored by the one scorer in rewards/. Both read the rows once, hold out a test set,
 * and stream the training rows in a fresh shuffle per epoch.
 */
import { applyChatTemplate } from "../model/chat.js";
import type { RunCodeTestsOptions } from "../rewards/code/pool.js";
import { rlScoreRules, type ScoreRules, scoreResponse } from "../rewards/score.js";
import { completionSeed } from "../rollout/generate.js";
import { type RowProblem, readRowProblems } from "../rows/problems.js";
import { ConfigError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { PROMPT_STREAM, type RlPrompt, type RlTask, type RlTaskContext } from "./task.js";

/** The prompt half of a row task: held-out prompts and the training stream. */
export interface RowPrompts {
  heldOut: RlPrompt[];
  prompts(cursor: number, count: number): RlPrompt[];
  /** The row a prompt came from, as the scorer reads it. */
  problem(prompt: RlPrompt): RowProblem;
}

/** Training and held-out prompts read from verl/Klear rows, in a per-epoch shuffled stream. */
export async function rowTaskPrompts({ config, tokenizer }: RlTaskContext): Promise<RowPrompts> {
  const { kind, trainFile, testFile, testSize, chatTemplate } = config.task;
  if (kind === "arithmetic" || trainFile === "") {
    throw new ConfigError(
      `task.kind is "${kind}" but task.trainFile is empty`,
      "set task.trainFile to verl rows (JSONL, .jsonl.gz or parquet: prompt, reward_model.ground_truth)",
    );
  }
  const problems = new Map<string, RowProblem>();
  const load = async (file: string): Promise<RlPrompt[]> =>
    (await readRowProblems(file, { kind })).map((problem) => {
      problems.set(problem.id, problem);
      const text = chatTemplate
        ? applyChatTemplate(
            tokenizer,
            problem.messages.map((m) => ({ role: m.role, content: m.content })),
            { addGenerationPrompt: true },
          )
        : problem.prompt;
      const prompt: RlPrompt = {
        id: problem.id,
        text,
        tokens: tokenizer.encode(text),
        answer: problem.answer,
      };
      if (problem.fnName !== undefined) prompt.fnName = problem.fnName;
      if (problem.starterCode !== undefined) prompt.starterCode = problem.starterCode;
      return prompt;
    });
  let train = await load(trainFile);
  let heldOut: RlPrompt[];
  if (testFile !== "") heldOut = (await load(testFile)).slice(0, testSize);
  else {
    if (train.length <= testSize) {
      throw new ConfigError(
        `${trainFile} has ${train.length} rows, not enough to hold out task.testSize = ${testSize} and train on the rest`,
        "set task.testFile, or lower task.testSize",
      );
    }
    heldOut = train.slice(train.length - testSize);
    train = train.slice(0, train.length - testSize);
  }
  if (train.length === 0) throw new ConfigError(`${trainFile} has no rows`, "give it at least one row");
  const epochOrder = new Map<number, number[]>();
  const orderOf = (epoch: number): number[] => {
    let order = epochOrder.get(epoch);
    if (!order) {
      // A fresh shuffle per epoch, as a RandomSampler over epochs; a pure function of (seed, epoch).
      order = new Rng(completionSeed(config.seed ^ PROMPT_STREAM, epoch, 1)).shuffle(
        Array.from({ length: train.length }, (_, i) => i),
      );
      epochOrder.clear();
      epochOrder.set(epoch, order);
    }
    return order;
  };
  return {
    heldOut,
    problem: (prompt) => {
      const problem = problems.get(prompt.id);
      if (problem === undefined) {
        throw new ConfigError(`${prompt.id} is not a row of this task`, "score the task's own prompts");
      }
      return problem;
    },
    prompts(cursor, count) {
      return Array.from({ length: count }, (_, i) => {
        const k = cursor + i;
        return train[orderOf(Math.floor(k / train.length))[k % train.length]];
      });
    },
  };
}

/** How a row task scores: the rules (default: those of `task.rewardMode`) and where code runs. */
export interface RowTaskOptions {
  rules?: Readonly<ScoreRules>;
  code?: RunCodeTestsOptions;
}

/**
 * A row task scored by the one scorer, `scoreResponse` (rewards/score.ts), so a verdict in training is
 * the verdict evaluation gives. Math: Klear's ±1 behind the think gate by default, or binary 1/0 with
 * `task.rewardMode: "binary"`. Code (rows whose ground truth holds stdin/stdout or functional tests):
 * run in the sandbox, Klear's soft reward 2·passRate − 1 behind the think gate by default, or hard ±1;
 * a response counts as correct when every drawn test passes. The tests run are drawn per response from
 * its own seed (the scorer's context), as Klear draws them per call.
 */
async function rowTask(name: "math" | "code", ctx: RlTaskContext, opts: RowTaskOptions): Promise<RlTask> {
  const { problem, ...rows } = await rowTaskPrompts(ctx);
  const rules = opts.rules ?? rlScoreRules(ctx.config.task.rewardMode);
  return {
    name,
    ...rows,
    async score(prompt, response, scoreCtx) {
      const r = await scoreResponse(problem(prompt), response, {
        rules,
        code: opts.code,
        testSeed: scoreCtx.seed,
      });
      return { reward: r.reward, correct: r.correct };
    },
  };
}

/** Math rows (verl/Klear JSONL or parquet), scored by `scoreResponse`. */
export function mathRlTask(ctx: RlTaskContext, opts: RowTaskOptions = {}): Promise<RlTask> {
  return rowTask("math", ctx, opts);
}

/** Code rows (verl/Klear JSONL or parquet with tests), scored by `scoreResponse` in the sandbox. */
export function codeRlTask(ctx: RlTaskContext, opts: RowTaskOptions = {}): Promise<RlTask> {
  return rowTask("code", ctx, opts);
}
