/**
 * RL tasks over verl/Klear rows: math rows scored by `mathReward`, code rows run in the sandbox. Both
 * read the rows once, hold out a test set, and stream the training rows in a fresh shuffle per epoch.
 */
import { codeTestsFromGroundTruth } from "../data/tag.js";
import { applyChatTemplate } from "../model/chat.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { type CodeResponseRewardOptions, codeRewardForResponse } from "../rewards/code/reward.js";
import type { CodeTest } from "../rewards/code/types.js";
import { mathReward } from "../rewards/math/verify.js";
import { completionSeed } from "../rollout/generate.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { readJsonlObjects } from "../util/jsonl.js";
import { Rng } from "../util/rng.js";
import { PROMPT_STREAM, type RlPrompt, type RlTask, type RlTaskContext } from "./task.js";

function rowPrompt(row: Record<string, unknown>, tokenizer: Tokenizer, chat: boolean, where: string): string {
  const p = row.prompt ?? row.problem ?? row.question;
  if (typeof p === "string") {
    return chat
      ? applyChatTemplate(tokenizer, [{ role: "user", content: p }], { addGenerationPrompt: true })
      : p;
  }
  if (Array.isArray(p) && p.every((m) => typeof m?.role === "string" && typeof m?.content === "string")) {
    if (chat) return applyChatTemplate(tokenizer, p, { addGenerationPrompt: true });
    return p.map((m) => m.content).join("\n");
  }
  throw new ConfigError(
    `${where}: the row has no usable prompt (a string, or chat messages with role and content)`,
    "give each row `prompt` as a string or as [{role, content}, …] (verl/Klear rows)",
  );
}

function rowGold(row: Record<string, unknown>, where: string): string {
  const rm = row.reward_model as Record<string, unknown> | undefined;
  const gold = rm?.ground_truth ?? row.answer;
  if (gold === undefined || gold === null) {
    throw new ConfigError(
      `${where}: the row has no reference answer`,
      "give each row reward_model.ground_truth (verl/Klear) or answer",
    );
  }
  return typeof gold === "string" ? gold : JSON.stringify(gold);
}

/** The prompt half of a row task: held-out prompts and the training stream. */
export interface RowPrompts {
  heldOut: RlPrompt[];
  prompts(cursor: number, count: number): RlPrompt[];
}

/** Training and held-out prompts read from verl/Klear JSONL rows, in a per-epoch shuffled stream. */
export async function rowTaskPrompts({ config, tokenizer }: RlTaskContext): Promise<RowPrompts> {
  const { kind, trainFile, testFile, testSize, chatTemplate } = config.task;
  if (trainFile === "") {
    throw new ConfigError(
      `task.kind is "${kind}" but task.trainFile is empty`,
      "set task.trainFile to a JSONL of verl rows (prompt, reward_model.ground_truth)",
    );
  }
  const load = async (file: string): Promise<RlPrompt[]> =>
    (await readJsonlObjects(file)).map((row, i) => {
      const where = `${file}:${i + 1}`;
      const text = rowPrompt(row, tokenizer, chatTemplate, where);
      const prompt: RlPrompt = {
        id: `${file}#${i}`,
        text,
        tokens: tokenizer.encode(text),
        answer: rowGold(row, where),
      };
      if (typeof row.fn_name === "string") prompt.fnName = row.fn_name;
      if (typeof row.starter_code === "string") prompt.starterCode = row.starter_code;
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
    prompts(cursor, count) {
      return Array.from({ length: count }, (_, i) => {
        const k = cursor + i;
        return train[orderOf(Math.floor(k / train.length))[k % train.length]];
      });
    },
  };
}

/** Math rows (verl/Klear JSONL) scored by `mathReward` (Klear's ±1 with the </think> format rules by default). */
export async function mathRlTask(ctx: RlTaskContext): Promise<RlTask> {
  const rows = await rowTaskPrompts(ctx);
  const mode = ctx.config.task.rewardMode;
  return {
    name: "math",
    ...rows,
    score(prompt, response) {
      const r = mathReward(prompt.answer, response, { mode });
      return { reward: r.score, correct: r.correct };
    },
  };
}

/**
 * Code rows (verl/Klear JSONL whose ground truth holds stdin/stdout or functional tests) scored in the
 * sandbox by `codeRewardForResponse`: Klear's soft reward 2·passRate − 1 behind the think gate by default,
 * or hard ±1 (`task.rewardMode: "binary"`). A response counts as correct when every sampled test passes.
 * The subset of tests run is drawn per response (from its own seed), as Klear draws it per call.
 */
export async function codeRlTask(ctx: RlTaskContext, opts: CodeResponseRewardOptions = {}): Promise<RlTask> {
  const rows = await rowTaskPrompts(ctx);
  const testsOf = new Map<string, CodeTest[]>();
  const klear = ctx.config.task.rewardMode === "klear";
  return {
    name: "code",
    ...rows,
    async score(prompt, response, scoreCtx) {
      let tests = testsOf.get(prompt.id);
      if (!tests) {
        const parsed = codeTestsFromGroundTruth(prompt.answer);
        if (parsed === null) {
          throw new KlearError(
            "CODE_TESTS_UNSUPPORTED",
            `${prompt.id}: reward_model.ground_truth is not {inputs, outputs} or a list of {input, output, testtype}`,
            "convert the row's tests to stdin/stdout pairs or functional tests",
          );
        }
        tests = parsed;
        testsOf.set(prompt.id, tests);
      }
      const r = await codeRewardForResponse(response, tests, {
        mode: klear ? "soft" : "hard",
        thinkGate: klear,
        seed: scoreCtx.seed,
        fnName: prompt.fnName,
        starterCode: prompt.starterCode,
        ...opts,
      });
      return { reward: r.reward, correct: r.result?.passed === true };
    },
  };
}
