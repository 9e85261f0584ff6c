/**
 * The RL tasks klear ships, picked by `task.kind`: the synthetic arithmetic task, math rows, code rows.
 * `klear rl` and the demo hand the chosen task to `runRl`; a library user hands in a task of their own.
 */
import type { Tokenizer } from "../model/tokenizer.js";
import { codeRlTask, mathRlTask } from "../rl/row-tasks.js";
import {
  PROMPT_STREAM,
  type RlPrompt,
  type RlTask,
  type RlTaskContext,
  type RlTaskFactory,
} from "../rl/task.js";
import type { RlConfig } from "../rl/trainer-config.js";
import { completionSeed } from "../rollout/generate.js";
import { Rng } from "../util/rng.js";
import { type ArithmeticProblem, arithmeticSplit, verifyArithmetic } from "./arithmetic.js";

/** The arithmetic options of an RL config (the teacher never matters to RL: prompts and answers only). */
export function arithmeticOptionsOf(config: RlConfig) {
  return {
    minTerms: config.task.minTerms,
    maxTerms: config.task.maxTerms,
    maxOperand: config.task.maxOperand,
    teacherNoise: 0,
  };
}

function arithmeticPrompt(p: ArithmeticProblem, tokenizer: Tokenizer): RlPrompt {
  return { id: p.prompt, text: p.prompt, tokens: tokenizer.encode(p.prompt), answer: String(p.answer) };
}

/**
 * The synthetic arithmetic task: ±1 reward from its verifier. Its held-out set is `arithmeticSplit`'s,
 * the very problems the demo's SFT phase is measured on (same seed, same split function); training
 * prompt k is drawn from a stream seeded by (seed, k), so any position is reproducible on its own.
 */
export function arithmeticRlTask({ config, tokenizer }: RlTaskContext): RlTask {
  const split = arithmeticSplit(config.seed, config.task.testSize, arithmeticOptionsOf(config));
  return {
    name: "arithmetic",
    heldOut: split.test.map((p) => arithmeticPrompt(p, tokenizer)),
    prompts(cursor, count) {
      return Array.from({ length: count }, (_, i) => {
        const rng = new Rng(completionSeed(config.seed ^ PROMPT_STREAM, cursor + i, 0));
        return arithmeticPrompt(split.drawTrain(rng), tokenizer);
      });
    },
    score(prompt, response) {
      const correct = verifyArithmetic(Number(prompt.answer), response).correct;
      return { reward: correct ? 1 : -1, correct };
    },
  };
}

/** The task `task.kind` names, built from the run's config and the policy's tokenizer. */
export const rlTaskFromConfig: RlTaskFactory = (ctx) => {
  switch (ctx.config.task.kind) {
    case "math":
      return mathRlTask(ctx);
    case "code":
      return codeRlTask(ctx);
    case "arithmetic":
      return arithmeticRlTask(ctx);
  }
};
