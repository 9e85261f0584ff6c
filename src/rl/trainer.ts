/**
 * The GPPO reinforcement-learning loop on the local engine (spec §7.1): per step, sample prompts,
 * generate n responses each, score them, filter groups, compute group advantages, recompute the old
 * log-probs with the current policy, then one optimizer step per mini-batch (ppo epochs) with the
 * policy loss (GPPO by default) plus the positive-sample SFT term. Everything a step needs to be
 * replayed exactly — weights, AdamW moments, the prompt cursor that seeds sampling — is in each
 * checkpoint, so `--resume` continues bit for bit.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { codeTestsFromGroundTruth } from "../data/tag.js";
import { AdamW, type AdamWState, clipGradNorm, lrAt } from "../engine/optim.js";
import { applyChatTemplate } from "../model/chat.js";
import { loadModel, saveCheckpoint } from "../model/checkpoint.js";
import type { Qwen3Batch, Qwen3Model } from "../model/qwen3.js";
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../model/safetensors.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { type CodeResponseRewardOptions, codeRewardForResponse } from "../rewards/code/reward.js";
import type { CodeTest } from "../rewards/code/types.js";
import { mathReward } from "../rewards/math/verify.js";
import { completionSeed, generate } from "../rollout/generate.js";
import {
  appendMetrics,
  createRun,
  latestCheckpoint,
  openRun,
  type RunPaths,
  saveRunCheckpoint,
  truncateMetricsAfter,
} from "../store/run.js";
import { RunDatabase, type SampleRecord } from "../store/samples.js";
import { sampleArithmeticProblem, verifyArithmetic } from "../tasks/arithmetic.js";
import { mapConcurrent } from "../util/concurrency.js";
import { stopRequestedAtStepBoundary } from "../util/config.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { readJsonlObjects } from "../util/jsonl.js";
import { createProgress } from "../util/progress.js";
import { Rng } from "../util/rng.js";
import { type AdvantageConfig, advantages } from "./advantages.js";
import { DynamicSampler, filterGroups, softOverlongPenalty } from "./filters.js";
import { lossMaskCounts } from "./objectives/aggregate.js";
import type { PolicyLossConfig, PolicyLossName } from "./objectives/config.js";
import { type PolicyLossMetrics, policyLoss } from "./objectives/policy-loss.js";
import { positiveSftTerm } from "./sft-term.js";
import { parseRlConfig, type RlConfig } from "./trainer-config.js";

// The config API is public too, through this module (src/rl/index.ts re-exports it whole).
export {
  describeRlConfig,
  parseRlConfig,
  RL_PRESET_NAMES,
  RL_PRESETS,
  type RlConfig,
  RlConfigSchema,
  type RlPresetName,
  resolveRlConfig,
} from "./trainer-config.js";

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

/** Scores one response; may be async (the code sandbox is). */
export type RlScorer = (prompt: RlPrompt, response: string) => RlScore | Promise<RlScore>;

/** Responses scored at once: the code sandbox runs this many programs in parallel. */
const SCORE_CONCURRENCY = 4;

/** Where prompts come from and how responses are scored. */
export interface RlTask {
  readonly name: string;
  /** Held-out prompts (never trained on). */
  readonly heldOut: readonly RlPrompt[];
  /** The training prompts at stream positions [cursor, cursor + count): a pure function of the position. */
  prompts(cursor: number, count: number): RlPrompt[];
  score: RlScorer;
}

export interface RlOptions {
  /** The resolved config (`resolveRlConfig`); ignored on resume, where the run's saved config wins. */
  config: RlConfig;
  /** Run directory. */
  out: string;
  /** Policy checkpoint to start from (overrides config.init). */
  init?: string;
  /** Continue the run in `out` from its last checkpoint. */
  resume?: boolean;
  log?: (line: string) => void;
  /** No progress bar. */
  quiet?: boolean;
  /** Checked between steps: when it returns true the run saves a checkpoint and stops. */
  shouldStop?: () => boolean;
  /** Replaces the task's verifier (library users with their own reward; tests). */
  scorer?: RlScorer;
}

export interface RlResult {
  runDir: string;
  steps: number;
  /** Held-out accuracy of the initial policy. */
  accuracyBefore: number;
  /** Held-out accuracy after RL, measured on the final checkpoint reloaded from disk (NaN when interrupted). */
  accuracyAfter: number;
  /** (after + 1/N) / (before + 1/N) over N held-out prompts: > 1 means RL helped. */
  ratio: number;
  checkpoint: string;
  trainSeconds: number;
  interrupted: boolean;
}

/** Resumable trainer state, written next to each checkpoint. */
interface RlTrainerState {
  step: number;
  /** Position in the training-prompt stream: with the seed it fixes every later prompt and sample. */
  promptCursor: number;
  optimizerSteps: number;
  accuracyBefore: number;
}

const TRAINER_STATE = "trainer_state.json";
const OPTIMIZER_FILE = "optimizer.safetensors";
// Distinct seed streams for prompts, rollouts and evaluation, so none shifts another.
const PROMPT_STREAM = 0x5eed01;
const ROLLOUT_STREAM = 0x5eed02;
const EVAL_STREAM = 0x5eed03;

// ---- tasks ------------------------------------------------------------------------------------------------

/** The synthetic arithmetic task: ±1 reward from its verifier, held-out prompts never trained on. */
export function arithmeticRlTask(config: RlConfig, tokenizer: Tokenizer): RlTask {
  const opts = {
    minTerms: config.task.minTerms,
    maxTerms: config.task.maxTerms,
    maxOperand: config.task.maxOperand,
    teacherNoise: 0,
  };
  let space = 0;
  for (let k = opts.minTerms; k <= opts.maxTerms; k++) space += (opts.maxOperand + 1) ** k;
  if (config.task.testSize > space / 2) {
    throw new ConfigError(
      `task.testSize = ${config.task.testSize} would hold out more than half of the ${space} possible arithmetic problems`,
      "lower task.testSize or raise task.maxTerms / task.maxOperand",
    );
  }
  const toPrompt = (text: string, answer: number): RlPrompt => ({
    id: text,
    text,
    tokens: tokenizer.encode(text),
    answer: String(answer),
  });
  const heldOutRng = new Rng(config.seed ^ 0x7e57);
  const heldOutSet = new Set<string>();
  const heldOut: RlPrompt[] = [];
  while (heldOut.length < config.task.testSize) {
    const p = sampleArithmeticProblem(heldOutRng, opts);
    if (heldOutSet.has(p.prompt)) continue;
    heldOutSet.add(p.prompt);
    heldOut.push(toPrompt(p.prompt, p.answer));
  }
  return {
    name: "arithmetic",
    heldOut,
    prompts(cursor, count) {
      return Array.from({ length: count }, (_, i) => {
        const rng = new Rng(completionSeed(config.seed ^ PROMPT_STREAM, cursor + i, 0));
        for (;;) {
          const p = sampleArithmeticProblem(rng, opts);
          if (!heldOutSet.has(p.prompt)) return toPrompt(p.prompt, p.answer);
        }
      });
    },
    score(prompt, response) {
      const correct = verifyArithmetic(Number(prompt.answer), response).correct;
      return { reward: correct ? 1 : -1, correct };
    },
  };
}

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

/** Training and held-out prompts read from verl/Klear JSONL rows, in a per-epoch shuffled stream. */
async function rowTaskPrompts(
  config: RlConfig,
  tokenizer: Tokenizer,
): Promise<{ heldOut: RlPrompt[]; prompts: (cursor: number, count: number) => RlPrompt[] }> {
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
export async function mathRlTask(config: RlConfig, tokenizer: Tokenizer): Promise<RlTask> {
  const rows = await rowTaskPrompts(config, tokenizer);
  return {
    name: "math",
    ...rows,
    score(prompt, response) {
      const r = mathReward(prompt.answer, response, { mode: config.task.rewardMode });
      return { reward: r.score, correct: r.correct };
    },
  };
}

/**
 * Code rows (verl/Klear JSONL whose ground truth holds stdin/stdout or functional tests) scored in the
 * sandbox by `codeRewardForResponse`: Klear's soft reward 2·passRate − 1 behind the think gate by default,
 * or hard ±1 (`task.rewardMode: "binary"`). A response counts as correct when every sampled test passes.
 */
export async function codeRlTask(
  config: RlConfig,
  tokenizer: Tokenizer,
  opts: CodeResponseRewardOptions = {},
): Promise<RlTask> {
  const rows = await rowTaskPrompts(config, tokenizer);
  const testsOf = new Map<string, CodeTest[]>();
  const klear = config.task.rewardMode === "klear";
  return {
    name: "code",
    ...rows,
    async score(prompt, response) {
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
        seed: config.seed,
        fnName: prompt.fnName,
        starterCode: prompt.starterCode,
        ...opts,
      });
      return { reward: r.reward, correct: r.result?.passed === true };
    },
  };
}

// ---- batches ----------------------------------------------------------------------------------------------

/** One sampled response with everything the update needs. */
interface Trajectory {
  prompt: RlPrompt;
  uid: string;
  sampleIndex: number;
  completion: number[];
  /** The raw model's log-probs at sampling time (temperature 1, no truncation). */
  samplerLogp: number[];
  text: string;
  finishReason: string;
  reward: number;
  correct: boolean;
  advantage: number;
  oldLogp: Float64Array;
  oldEntropy: Float64Array;
  refLogp: Float64Array | null;
}

interface PackedBatch {
  batch: Qwen3Batch;
  /** Flat index in [B·T] of each row's first response position. */
  starts: number[];
  lengths: number[];
}

/** Right-padded prompt+response rows; position t predicts token t+1, so only response targets are set. */
function packBatch(trajs: readonly Trajectory[], padId: number): PackedBatch {
  const seqLen = Math.max(...trajs.map((t) => t.prompt.tokens.length + t.completion.length - 1));
  const B = trajs.length;
  const tokens = new Int32Array(B * seqLen).fill(padId);
  const targets = new Int32Array(B * seqLen).fill(-1);
  const rowLengths = new Int32Array(B);
  const starts: number[] = [];
  const lengths: number[] = [];
  trajs.forEach((tr, b) => {
    const P = tr.prompt.tokens.length;
    const ids = [...tr.prompt.tokens, ...tr.completion];
    const L = ids.length - 1;
    rowLengths[b] = L;
    for (let t = 0; t < L; t++) tokens[b * seqLen + t] = ids[t];
    for (let t = P - 1; t < L; t++) targets[b * seqLen + t] = ids[t + 1];
    starts.push(b * seqLen + P - 1);
    lengths.push(tr.completion.length);
  });
  return { batch: { tokens, targets, batchSize: B, seqLen, lengths: rowLengths }, starts, lengths };
}

function gather(values: Float32Array, packed: PackedBatch, row: number): Float64Array {
  const out = new Float64Array(packed.lengths[row]);
  const s = packed.starts[row];
  for (let j = 0; j < out.length; j++) out[j] = values[s + j];
  return out;
}

/** The inverse of `gather` for a whole micro-batch: flat per-response values back to [B·T] positions. */
function scatter(flat: Float64Array, packed: PackedBatch, size: number): Float32Array {
  const out = new Float32Array(size);
  let k = 0;
  packed.starts.forEach((s, r) => {
    for (let j = 0; j < packed.lengths[r]; j++) out[s + j] = flat[k++];
  });
  return out;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function concat(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The config of `policyLoss` for this run: only the options the chosen loss accepts. */
export function rlPolicyLossConfig(config: RlConfig): PolicyLossConfig {
  const l = config.loss;
  const name: PolicyLossName = l.name;
  const cfg: PolicyLossConfig = {
    aggregation: l.aggregation,
    klCoeff: l.klCoeff,
    klEstimator: l.klEstimator,
  };
  if (l.entropyCoeff !== 0) cfg.entropyCoeff = l.entropyCoeff;
  if (l.tisCap !== null) cfg.tisCap = l.tisCap;
  if (l.entropyRatioClip !== null) cfg.entropyRatioClip = l.entropyRatioClip;
  if (l.aggregation === "seq-mean-token-sum-norm") cfg.lengthDivisor = config.rollout.maxNewTokens;
  if (l.epsLow !== null) cfg.epsLow = l.epsLow;
  if (l.epsHigh !== null) cfg.epsHigh = l.epsHigh;
  if (name !== "cispo" && name !== "gspo" && l.clipRatioC !== null) cfg.clipRatioC = l.clipRatioC;
  if (name === "gppo") {
    cfg.beta1 = l.beta1;
    cfg.beta2 = l.beta2;
  }
  return cfg;
}

// ---- checkpoints ------------------------------------------------------------------------------------------

/**
 * Saves a resumable training checkpoint into the run: the HF-style model folder plus the AdamW moments
 * (optimizer.safetensors) and the trainer's own state (trainer_state.json). Shared by `klear rl` and the
 * demo's supervised phase.
 */
export async function saveTrainerCheckpoint(
  paths: RunPaths,
  step: number,
  model: Qwen3Model,
  tokenizer: Tokenizer,
  optimizer: AdamW,
  trainerState: object,
): Promise<string> {
  return saveRunCheckpoint(paths, step, async (dir) => {
    await saveCheckpoint(dir, model, tokenizer);
    const opt = optimizer.state();
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, m] of opt.m) tensors.set(`m.${name}`, { data: m, shape: [m.length] });
    for (const [name, v] of opt.v) tensors.set(`v.${name}`, { data: v, shape: [v.length] });
    await writeSafetensors(join(dir, OPTIMIZER_FILE), tensors, { metadata: { step: String(opt.step) } });
    writeFileSync(join(dir, TRAINER_STATE), `${JSON.stringify(trainerState, null, 2)}\n`);
  });
}

/** Restores the AdamW moments `saveTrainerCheckpoint` wrote; `steps` is the optimizer's step count. */
export async function loadTrainerOptimizerState(dir: string, optimizer: AdamW, steps: number): Promise<void> {
  const tensors = await readSafetensors(join(dir, OPTIMIZER_FILE));
  const state: AdamWState = { step: steps, m: new Map(), v: new Map() };
  for (const [key, t] of tensors) {
    const [kind, ...rest] = key.split(".");
    (kind === "m" ? state.m : state.v).set(rest.join("."), t.data);
  }
  optimizer.loadState(state);
}

/** The trainer state `saveTrainerCheckpoint` wrote next to a checkpoint, or a clear error when it is missing. */
export function readTrainerState<T>(checkpointDir: string, who: string): T {
  const statePath = join(checkpointDir, TRAINER_STATE);
  if (!existsSync(statePath)) {
    throw new KlearError(
      "CHECKPOINT_INCOMPLETE",
      `${checkpointDir} has no ${TRAINER_STATE}, so ${who} cannot resume from it`,
      "delete that checkpoint folder to resume from the one before, or start a new run",
    );
  }
  return JSON.parse(readFileSync(statePath, "utf8")) as T;
}

/**
 * Opens the run in `out` to resume it (its saved config wins, validated by `parse`) or creates it with
 * the config `create` returns (which may throw before the directory exists, so a bad config needs no
 * cleanup). Resuming finds the latest checkpoint, if any.
 */
export function startTrainingRun<C>(opts: {
  out: string;
  resume?: boolean;
  log: (line: string) => void;
  parse: (value: unknown, source: string) => C;
  create: () => C;
}): { paths: RunPaths; config: C; resumeFrom: { step: number; path: string } | null } {
  if (opts.resume) {
    const opened = openRun(opts.out);
    const config = opts.parse(opened.config, opened.paths.config);
    const resumeFrom = latestCheckpoint(opened.paths.dir);
    opts.log(
      resumeFrom
        ? `resuming ${opened.paths.dir} from step ${resumeFrom.step}`
        : `resuming ${opened.paths.dir}: no checkpoint yet, starting from step 0`,
    );
    return { paths: opened.paths, config, resumeFrom };
  }
  const config = opts.create();
  const paths = createRun(opts.out, config);
  opts.log(`run directory: ${paths.dir}`);
  return { paths, config, resumeFrom: null };
}

// ---- evaluation -------------------------------------------------------------------------------------------

/** Held-out accuracy (greedy by default): the fraction of prompts whose response the task scores correct. */
export async function evaluateRlPolicy(
  model: Qwen3Model,
  tokenizer: Tokenizer,
  prompts: readonly RlPrompt[],
  score: RlScorer,
  opts: { maxNewTokens: number; temperature: number; seed: number },
): Promise<{ accuracy: number; records: SampleRecord[] }> {
  if (prompts.length === 0) return { accuracy: 0, records: [] };
  const completions = generate(
    model,
    prompts.map((p) => p.tokens),
    {
      temperature: opts.temperature,
      maxNewTokens: opts.maxNewTokens,
      stopTokenIds: [tokenizer.eosTokenId],
      decode: (ids) => tokenizer.decode(ids),
      seed: opts.seed,
    },
  );
  let correct = 0;
  const scores = await mapConcurrent(completions, SCORE_CONCURRENCY, async (c) =>
    score(prompts[c.promptIndex], c.text ?? ""),
  );
  const records = completions.map((c, i): SampleRecord => {
    const prompt = prompts[c.promptIndex];
    const s = scores[i];
    if (s.correct) correct++;
    return {
      step: 0,
      kind: "eval",
      problemId: prompt.id,
      prompt: prompt.text,
      completion: c.text ?? "",
      reward: s.reward,
      correct: s.correct,
      finishReason: c.finishReason,
      numTokens: c.tokens.length,
    };
  });
  return { accuracy: correct / prompts.length, records };
}

// ---- the loop ---------------------------------------------------------------------------------------------

function fmt(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

/** The RESULT line `klear rl` ends with. */
export function rlResultLine(r: RlResult): string {
  return `RESULT rl klear=${fmt(r.accuracyAfter)} peer=${fmt(r.accuracyBefore)} unit=accuracy ratio=${fmt(r.ratio)}`;
}

/**
 * `klear rl` as a library call: GPPO (or any registered loss) RL from `init` on the configured task,
 * checkpointing resumably into the run directory, with held-out accuracy before and after.
 */
export async function runRl(opts: RlOptions): Promise<RlResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const { paths, config, resumeFrom } = startTrainingRun({
    out: opts.out,
    resume: opts.resume,
    log,
    parse: parseRlConfig,
    create: () => {
      const init = opts.init ?? opts.config.init;
      if (!init) {
        throw new ConfigError(
          "klear rl needs the policy to start from",
          "pass --init CHECKPOINT_DIR (e.g. the checkpoint `klear demo` or `klear sft` wrote)",
        );
      }
      if (!existsSync(join(init, "config.json"))) {
        throw new ConfigError(
          `--init ${init} is not a checkpoint folder (no config.json)`,
          "pass an HF-style checkpoint folder, e.g. runs/demo-…/checkpoints/step-300",
        );
      }
      const config = parseRlConfig({ ...opts.config, init: resolve(init) }, "rl options");
      // Checked before the run directory exists, so fixing the config and retrying needs no cleanup.
      if (config.task.kind !== "arithmetic" && config.task.trainFile === "") {
        throw new ConfigError(
          `task.kind is "${config.task.kind}" but task.trainFile is empty`,
          "set task.trainFile to a JSONL of verl rows (prompt, reward_model.ground_truth)",
        );
      }
      return config;
    },
  });
  const db = RunDatabase.open(paths.database);
  try {
    return await train(config, paths, db, resumeFrom, { ...opts, log });
  } finally {
    db.close();
  }
}

interface StepMetrics {
  [key: string]: number | string | boolean;
}

async function train(
  config: RlConfig,
  paths: RunPaths,
  db: RunDatabase,
  resumeFrom: { step: number; path: string } | null,
  opts: RlOptions & { log: (line: string) => void },
): Promise<RlResult> {
  const { log } = opts;
  const loaded = await loadModel(resumeFrom ? resumeFrom.path : config.init);
  const { model, tokenizer } = loaded;
  const task =
    config.task.kind === "math"
      ? await mathRlTask(config, tokenizer)
      : config.task.kind === "code"
        ? await codeRlTask(config, tokenizer)
        : arithmeticRlTask(config, tokenizer);
  const score = opts.scorer ?? task.score;
  const refModel = config.loss.klCoeff > 0 ? (await loadModel(config.init)).model : null;
  const evalOpts = {
    maxNewTokens: config.eval.maxNewTokens,
    temperature: config.eval.temperature,
    seed: config.seed ^ EVAL_STREAM,
  };

  let state: RlTrainerState;
  if (resumeFrom) {
    state = readTrainerState<RlTrainerState>(resumeFrom.path, "the RL run");
    truncateMetricsAfter(paths, state.step);
    db.deleteAfterStep(state.step);
  } else {
    // A resumed run that crashed before its first checkpoint starts over: forget what it logged.
    truncateMetricsAfter(paths, -1);
    db.deleteAfterStep(-1);
    const before = await evaluateRlPolicy(model, tokenizer, task.heldOut, score, evalOpts);
    db.addSamples(before.records);
    appendMetrics(paths, { step: 0, phase: "eval-before", heldOutAccuracy: before.accuracy });
    log(`held-out accuracy before RL: ${fmt(before.accuracy)} (${task.heldOut.length} prompts)`);
    state = { step: 0, promptCursor: 0, optimizerSteps: 0, accuracyBefore: before.accuracy };
  }
  log(
    `policy: ${model.parameterCount().toLocaleString("en-US")} parameters; loss ${config.loss.name}, ` +
      `${config.rollout.trainBatchPrompts}×${config.rollout.n} responses per step, mini-batch ${config.update.miniBatchPrompts} prompts`,
  );

  const params = model.parameters();
  const optimizer = new AdamW(params, {
    lr: config.optimizer.lr,
    beta1: config.optimizer.beta1,
    beta2: config.optimizer.beta2,
    eps: config.optimizer.eps,
    weightDecay: config.optimizer.weightDecay,
  });
  if (resumeFrom) await loadTrainerOptimizerState(resumeFrom.path, optimizer, state.optimizerSteps);

  const loss = policyLoss(config.loss.name, rlPolicyLossConfig(config));
  const advantageConfig: AdvantageConfig =
    config.advantage.estimator === "grpo" || config.advantage.estimator.startsWith("reinforce")
      ? { std: config.advantage.std }
      : {};
  const advantageFn = advantages(config.advantage.estimator, advantageConfig);
  const sftConfig = {
    alpha: config.loss.sftAlpha,
    correctScore: 1,
    aggregation: config.loss.aggregation,
    lengthDivisor:
      config.loss.aggregation === "seq-mean-token-sum-norm" ? config.rollout.maxNewTokens : undefined,
  };

  const total = config.steps;
  const progress = createProgress("rl", total, { unit: "steps", silent: opts.quiet });
  progress.update(state.step);
  const t0 = Date.now();
  let interrupted = false;
  let lastSaved = resumeFrom?.step ?? -1;
  while (state.step < total) {
    if (await stopRequestedAtStepBoundary(opts.shouldStop)) {
      interrupted = true;
      break;
    }
    const stepStart = Date.now();
    const m = await trainStep();
    m.stepSeconds = (Date.now() - stepStart) / 1000;
    appendMetrics(paths, { step: state.step, ...m });
    progress.tick(1, {
      reward: fmt(m.rewardMean as number, 3),
      acc: fmt(m.accuracy as number, 3),
    });
    if (state.step % config.checkpointEvery === 0 || state.step === total) {
      await saveTrainerCheckpoint(paths, state.step, model, tokenizer, optimizer, state);
      lastSaved = state.step;
    }
  }
  progress.stop();
  const trainSeconds = (Date.now() - t0) / 1000;
  if (lastSaved !== state.step)
    await saveTrainerCheckpoint(paths, state.step, model, tokenizer, optimizer, state);
  const checkpoint = latestCheckpoint(paths.dir)?.path ?? "";
  const n = task.heldOut.length;

  if (interrupted) {
    log(`interrupted at step ${state.step}/${total}; checkpoint saved to ${checkpoint}`);
    log(`continue with: klear rl --out ${paths.dir} --resume`);
    return {
      runDir: paths.dir,
      steps: state.step,
      accuracyBefore: state.accuracyBefore,
      accuracyAfter: Number.NaN,
      ratio: Number.NaN,
      checkpoint,
      trainSeconds,
      interrupted,
    };
  }

  // Evaluate the checkpoint as written to disk, so what is measured is what a user gets.
  const reloaded = await loadModel(checkpoint);
  const after = await evaluateRlPolicy(reloaded.model, reloaded.tokenizer, task.heldOut, score, evalOpts);
  db.addSamples(after.records.map((r) => ({ ...r, step: state.step })));
  appendMetrics(paths, { step: state.step, phase: "eval-after", heldOutAccuracy: after.accuracy });
  log(
    `held-out accuracy after RL: ${fmt(after.accuracy)} (before: ${fmt(state.accuracyBefore)}) in ${trainSeconds.toFixed(1)} s`,
  );
  const ratio = (after.accuracy + 1 / Math.max(1, n)) / (state.accuracyBefore + 1 / Math.max(1, n));
  const result: RlResult = {
    runDir: paths.dir,
    steps: state.step,
    accuracyBefore: state.accuracyBefore,
    accuracyAfter: after.accuracy,
    ratio,
    checkpoint,
    trainSeconds,
    interrupted,
  };
  writeFileSync(join(paths.dir, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
  return result;

  /** One training step; mutates `state` and the model, returns the step's metrics. */
  async function trainStep(): Promise<StepMetrics> {
    const { rollout } = config;
    const stepNumber = state.step + 1;
    const sampler = new DynamicSampler<Trajectory>({
      trainBatchPrompts: rollout.trainBatchPrompts,
      responsesPerPrompt: rollout.n,
      genBatchPrompts: rollout.genBatchPrompts,
      maxGenBatches: rollout.maxGenBatches,
      onShortfall: "truncate",
    });
    const generated: Trajectory[] = [];
    const filterCounts = { keptGroups: 0, droppedAllCorrect: 0, droppedAllWrong: 0, droppedZeroVariance: 0 };
    let overlongDropped = 0;
    let batch: Trajectory[] = [];
    let genBatches = 0;
    for (;;) {
      const cursor = state.promptCursor;
      const prompts = task.prompts(cursor, rollout.genBatchPrompts);
      state.promptCursor += prompts.length;
      genBatches++;
      const completions = generate(
        model,
        prompts.map((p) => p.tokens),
        {
          n: rollout.n,
          temperature: rollout.temperature,
          topP: rollout.topP,
          topK: Math.max(0, rollout.topK),
          maxNewTokens: rollout.maxNewTokens,
          stopTokenIds: [tokenizer.eosTokenId],
          decode: (ids) => tokenizer.decode(ids),
          seed: completionSeed(config.seed ^ ROLLOUT_STREAM, cursor, 0),
        },
      );
      const scores = await mapConcurrent(completions, SCORE_CONCURRENCY, async (c) =>
        score(prompts[c.promptIndex], c.text ?? ""),
      );
      const trajs = completions.map((c, i): Trajectory => {
        const prompt = prompts[c.promptIndex];
        const text = c.text ?? "";
        const s = scores[i];
        let reward = s.reward;
        if (config.overlong.softPunishment) {
          reward += softOverlongPenalty(c.tokens.length, {
            maxResponseTokens: rollout.maxNewTokens,
            bufferTokens: config.overlong.bufferTokens,
            penaltyFactor: config.overlong.penaltyFactor,
          });
        }
        return {
          prompt,
          uid: String(cursor + c.promptIndex),
          sampleIndex: c.sampleIndex,
          completion: c.tokens,
          samplerLogp: c.modelLogprobs,
          text,
          finishReason: c.finishReason,
          reward,
          correct: s.correct,
          advantage: 0,
          oldLogp: new Float64Array(0),
          oldEntropy: new Float64Array(0),
          refLogp: null,
        };
      });
      generated.push(...trajs);
      // The overlong filter drops truncated responses before group filtering (spec §7.1 step 4).
      const candidates = config.overlong.filter ? trajs.filter((t) => t.finishReason !== "length") : trajs;
      overlongDropped += trajs.length - candidates.length;
      let kept = candidates;
      if (config.groupFilter.enabled) {
        // "acc" is the verifier's verdict, before any overlong penalty shifts the reward (as DAPO's acc).
        const byAcc = config.groupFilter.metric === "acc";
        const f = filterGroups(
          {
            groupIds: candidates.map((t) => t.uid),
            rewards: candidates.map((t) => (byAcc ? (t.correct ? 1 : 0) : t.reward)),
          },
          { metric: config.groupFilter.metric, correctScore: 1 },
        );
        kept = f.keptIndices.map((i) => candidates[i]);
        filterCounts.keptGroups += f.keptGroups;
        filterCounts.droppedAllCorrect += f.droppedAllCorrect;
        filterCounts.droppedAllWrong += f.droppedAllWrong;
        filterCounts.droppedZeroVariance += f.droppedZeroVariance;
      } else {
        filterCounts.keptGroups += new Set(candidates.map((t) => t.uid)).size;
      }
      sampler.add(kept);
      const decision = sampler.next();
      if (decision.action === "generate") continue;
      if (decision.action === "train") batch = decision.batch;
      break;
    }

    const lr = lrAt(
      { kind: "constant", warmupSteps: config.optimizer.warmupSteps },
      config.optimizer.lr,
      state.step,
    );
    const metrics: StepMetrics = {
      rewardMean: mean(generated.map((t) => t.reward)),
      accuracy: mean(generated.map((t) => (t.correct ? 1 : 0))),
      responseLengthMean: mean(generated.map((t) => t.completion.length)),
      responseLengthMax: Math.max(...generated.map((t) => t.completion.length)),
      truncatedFrac: mean(generated.map((t) => (t.finishReason === "length" ? 1 : 0))),
      genBatches,
      promptsGenerated: genBatches * rollout.genBatchPrompts,
      ...filterCounts,
      overlongDropped,
      trajectories: batch.length,
      trainRewardMean: batch.length > 0 ? mean(batch.map((t) => t.reward)) : Number.NaN,
      lr,
    };

    if (batch.length > 0) Object.assign(metrics, update(batch, lr));
    else metrics.skipped = true;
    const trained = new Set(batch);
    db.addSamples(
      generated.map((t) => ({
        step: stepNumber,
        kind: "rollout" as const,
        problemId: t.prompt.id,
        prompt: t.prompt.text,
        completion: t.text,
        reward: t.reward,
        correct: t.correct,
        finishReason: t.finishReason,
        numTokens: t.completion.length,
        meta: { uid: t.uid, sampleIndex: t.sampleIndex, trained: trained.has(t), advantage: t.advantage },
      })),
    );
    state.step = stepNumber;
    return metrics;
  }

  /** Advantages, old log-probs, then one optimizer step per mini-batch for each ppo epoch. */
  function update(batch: Trajectory[], lr: number): StepMetrics {
    const adv = advantageFn({ rewards: batch.map((t) => t.reward), groupIds: batch.map((t) => t.uid) });
    batch.forEach((t, i) => {
      t.advantage = adv[i];
    });

    // Old log-probs from the current policy (spec §16.1), and how far the sampler's were from them.
    let diffMax = 0;
    let diffSum = 0;
    let diffCount = 0;
    let entropySum = 0;
    for (const micro of chunks(batch, config.update.microBatchSize)) {
      const packed = packBatch(micro, tokenizer.padTokenId);
      const { logp, entropy } = model.logprobs(packed.batch, { entropy: true });
      const ref = refModel?.logprobs(packed.batch).logp ?? null;
      micro.forEach((t, r) => {
        t.oldLogp = gather(logp, packed, r);
        t.oldEntropy = gather(entropy as Float32Array, packed, r);
        t.refLogp = ref ? gather(ref, packed, r) : null;
        for (let j = 0; j < t.oldLogp.length; j++) {
          const d = Math.abs(t.oldLogp[j] - t.samplerLogp[j]);
          if (d > diffMax) diffMax = d;
          diffSum += d;
          entropySum += t.oldEntropy[j];
        }
        diffCount += t.oldLogp.length;
      });
    }

    const weighted: Partial<Record<keyof PolicyLossMetrics, number>> = {};
    const weightedKeys = [
      "pgLoss",
      "clipFracHigh",
      "clipFracLow",
      "dualClipFrac",
      "boundedGradFrac",
      "approxKlK1",
      "approxKlK3",
      "ratioMean",
      "klLoss",
    ] as const;
    let tokensSeen = 0;
    let ratioMax = 0;
    let sftLoss = 0;
    let positiveTokens = 0;
    let optimizerSteps = 0;
    let skippedUpdates = 0;
    const gradNorms: number[] = [];
    const miniSize = config.update.miniBatchPrompts * config.rollout.n;
    // The entropy's gradient needs the full distribution, so the forward keeps it only when a term uses it.
    const needEntropy = config.loss.entropyCoeff !== 0 || config.loss.entropyRatioClip !== null;
    for (let epoch = 0; epoch < config.update.ppoEpochs; epoch++) {
      for (const mini of chunks(batch, miniSize)) {
        // Whole-mini-batch normalisers, so the micro-batch split never changes the gradient.
        const lengths = mini.map((t) => t.completion.length);
        const counts = lossMaskCounts(lengths.map((len) => new Uint8Array(len).fill(1)));
        const positives = mini.filter((t) => t.correct);
        const positiveTokenCount = positives.reduce((a, t) => a + t.completion.length, 0);
        model.zeroGrad();
        for (const micro of chunks(mini, config.update.microBatchSize)) {
          const packed = packBatch(micro, tokenizer.padTokenId);
          const { logp, entropy } = model.logprobs(packed.batch, { entropy: needEntropy });
          const flatLogp = concat(micro.map((_, r) => gather(logp, packed, r)));
          const result = loss({
            logp: flatLogp,
            oldLogp: concat(micro.map((t) => t.oldLogp)),
            advantages: micro.map((t) => t.advantage),
            lengths: packed.lengths,
            refLogp: refModel ? concat(micro.map((t) => t.refLogp as Float64Array)) : undefined,
            entropy: entropy ? concat(micro.map((_, r) => gather(entropy, packed, r))) : undefined,
            oldEntropy: needEntropy ? concat(micro.map((t) => t.oldEntropy)) : undefined,
            rolloutLogp:
              config.loss.tisCap !== null
                ? concat(micro.map((t) => Float64Array.from(t.samplerLogp)))
                : undefined,
            globalTokenCount: counts.tokens,
            globalSeqCount: counts.sequences,
          });
          const dFlat = result.dLogp;
          if (sftConfig.alpha > 0) {
            const sft = positiveSftTerm(
              {
                logp: flatLogp,
                lengths: packed.lengths,
                positive: micro.map((t) => t.correct),
                globalTokenCount: positiveTokenCount,
                globalSeqCount: positives.length,
              },
              sftConfig,
            );
            for (let k = 0; k < dFlat.length; k++) dFlat[k] += sft.dLogp[k];
            sftLoss += sft.loss;
            positiveTokens += sft.positiveTokens;
          }
          const dLogp = scatter(dFlat, packed, logp.length);
          model.backward(dLogp, result.dEntropy ? scatter(result.dEntropy, packed, logp.length) : undefined);
          const w = result.metrics.tokens;
          for (const key of weightedKeys) weighted[key] = (weighted[key] ?? 0) + result.metrics[key] * w;
          tokensSeen += w;
          ratioMax = Math.max(ratioMax, result.metrics.ratioMax);
        }
        const norm = clipGradNorm(params, config.optimizer.gradClip);
        gradNorms.push(norm);
        // A non-finite norm would poison AdamW's moments: skip that update, as verl does.
        if (Number.isFinite(norm)) {
          optimizer.step(lr);
          optimizerSteps++;
        } else skippedUpdates++;
        model.zeroGrad();
      }
    }
    state.optimizerSteps += optimizerSteps;
    const out: StepMetrics = {};
    for (const key of weightedKeys) out[key] = tokensSeen > 0 ? (weighted[key] ?? 0) / tokensSeen : 0;
    Object.assign(out, {
      ratioMax,
      sftLoss: sftLoss / Math.max(1, optimizerSteps + skippedUpdates),
      positiveTokens: positiveTokens / config.update.ppoEpochs,
      entropy: diffCount > 0 ? entropySum / diffCount : 0,
      advantageAbsMean: mean(Array.from(adv, Math.abs)),
      logprobDiffMax: diffMax,
      logprobDiffMean: diffCount > 0 ? diffSum / diffCount : 0,
      gradNorm: mean(gradNorms),
      gradNormMax: Math.max(...gradNorms),
      optimizerSteps,
      skippedUpdates,
    });
    return out;
  }
}

function mean(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}
