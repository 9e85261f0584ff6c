import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AdamW, type AdamWState, clipGradNorm, lrAt } from "../engine/optim.js";
import { loadModel, saveCheckpoint } from "../model/checkpoint.js";
import { tinyQwen3Config } from "../model/config.js";
import { Qwen3Model } from "../model/qwen3.js";
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../model/safetensors.js";
import { ByteTokenizer, type Tokenizer } from "../model/tokenizer.js";
import { generate } from "../rollout/generate.js";
import {
  appendMetrics,
  createRun,
  latestCheckpoint,
  openRun,
  type RunPaths,
  readMetrics,
  saveRunCheckpoint,
  truncateMetricsAfter,
} from "../store/run.js";
import { RunDatabase, type SampleRecord } from "../store/samples.js";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { KlearError } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import { type ArithmeticProblem, arithmeticSplit, verifyArithmetic } from "./arithmetic.js";
import { type DemoConfig, parseDemoConfig } from "./demo-config.js";

/** What the demo measured, also written to `result.json` in the run directory. */
export interface DemoResult {
  runDir: string;
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  /** Held-out accuracy (greedy) of the freshly initialised model. */
  accuracyBefore: number;
  /** Held-out accuracy (greedy) after training, measured on the checkpoint reloaded from disk. */
  accuracyAfter: number;
  /** `(after + 1/N) / (before + 1/N)` with N held-out problems: > 1 means training helped. */
  ratio: number;
  /** The final checkpoint folder (HF-style). */
  checkpoint: string;
  trainSeconds: number;
  interrupted: boolean;
}

export interface DemoOptions {
  /** Run directory. */
  out: string;
  /** Continue the run in `out` from its last checkpoint (its saved config wins). */
  resume?: boolean;
  /** Where lines for a human go (default: stdout). */
  log?: (line: string) => void;
  /** No progress bar (tests). */
  quiet?: boolean;
  /** Checked between steps: when it returns true the demo saves a checkpoint and stops (Ctrl-C). */
  shouldStop?: () => boolean;
}

/**
 * The resumable trainer state next to each checkpoint: the step, the optimizer moments (in
 * optimizer.safetensors) and what the before-training evaluation found.
 */
interface TrainerState {
  step: number;
  accuracyBefore: number;
  firstLoss: number | null;
}

const TRAINER_STATE = "trainer_state.json";
const OPTIMIZER_FILE = "optimizer.safetensors";

/** The demo's tokenizer: bytes plus an end-of-text token, so any character round-trips. */
export function demoTokenizer(): ByteTokenizer {
  return new ByteTokenizer({
    addedTokens: [{ content: "<|endoftext|>", special: true }],
    eosToken: "<|endoftext|>",
  });
}

/** One training batch: prompt + teacher completion + EOS, loss only on the completion and EOS. */
export function demoBatch(
  problems: readonly ArithmeticProblem[],
  tokenizer: Tokenizer,
): { tokens: Int32Array; targets: Int32Array; batchSize: number; seqLen: number; lossTokens: number } {
  const seqs = problems.map((p) => {
    const prompt = tokenizer.encode(p.prompt);
    return {
      ids: [...prompt, ...tokenizer.encode(p.completion), tokenizer.eosTokenId],
      promptLen: prompt.length,
    };
  });
  const seqLen = Math.max(...seqs.map((s) => s.ids.length)) - 1;
  const tokens = new Int32Array(problems.length * seqLen).fill(tokenizer.padTokenId);
  const targets = new Int32Array(problems.length * seqLen).fill(-1);
  let lossTokens = 0;
  seqs.forEach((s, b) => {
    for (let t = 0; t < s.ids.length - 1; t++) {
      tokens[b * seqLen + t] = s.ids[t];
      // Position t predicts token t+1; only completion tokens (and the EOS) carry loss.
      if (t + 1 >= s.promptLen) {
        targets[b * seqLen + t] = s.ids[t + 1];
        lossTokens++;
      }
    }
  });
  return { tokens, targets, batchSize: problems.length, seqLen, lossTokens };
}

/**
 * Greedy held-out accuracy: the fraction of problems whose completion's final `\boxed{}` holds the true
 * sum. Greedy decoding makes it a deterministic function of the weights.
 */
export function evaluateArithmetic(
  model: Qwen3Model,
  tokenizer: Tokenizer,
  problems: readonly ArithmeticProblem[],
  opts: { maxNewTokens: number; temperature?: number; seed?: number },
): {
  accuracy: number;
  records: {
    problem: ArithmeticProblem;
    text: string;
    correct: boolean;
    finishReason: string;
    numTokens: number;
  }[];
} {
  const completions = generate(
    model,
    problems.map((p) => tokenizer.encode(p.prompt)),
    {
      temperature: opts.temperature ?? 0,
      maxNewTokens: opts.maxNewTokens,
      stopTokenIds: [tokenizer.eosTokenId],
      decode: (ids) => tokenizer.decode(ids),
      seed: opts.seed ?? 0,
    },
  );
  const records = completions.map((c) => {
    const problem = problems[c.promptIndex];
    const text = c.text ?? "";
    return {
      problem,
      text,
      correct: verifyArithmetic(problem.answer, text).correct,
      finishReason: c.finishReason,
      numTokens: c.tokens.length,
    };
  });
  const accuracy = records.filter((r) => r.correct).length / Math.max(1, records.length);
  return { accuracy, records };
}

function sampleRecords(
  step: number,
  kind: SampleRecord["kind"],
  records: ReturnType<typeof evaluateArithmetic>["records"],
): SampleRecord[] {
  return records.map((r) => ({
    step,
    kind,
    problemId: r.problem.prompt,
    prompt: r.problem.prompt,
    completion: r.text,
    reward: r.correct ? 1 : 0,
    correct: r.correct,
    finishReason: r.finishReason,
    numTokens: r.numTokens,
  }));
}

async function saveDemoCheckpoint(
  paths: RunPaths,
  step: number,
  model: Qwen3Model,
  tokenizer: Tokenizer,
  optimizer: AdamW,
  state: TrainerState,
): Promise<string> {
  return saveRunCheckpoint(paths, step, async (dir) => {
    await saveCheckpoint(dir, model, tokenizer);
    const opt = optimizer.state();
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, m] of opt.m) tensors.set(`m.${name}`, { data: m, shape: [m.length] });
    for (const [name, v] of opt.v) tensors.set(`v.${name}`, { data: v, shape: [v.length] });
    await writeSafetensors(join(dir, OPTIMIZER_FILE), tensors, { metadata: { step: String(opt.step) } });
    writeFileSync(join(dir, TRAINER_STATE), `${JSON.stringify(state, null, 2)}\n`);
  });
}

async function loadOptimizerState(dir: string, optimizer: AdamW, step: number): Promise<void> {
  const tensors = await readSafetensors(join(dir, OPTIMIZER_FILE));
  const state: AdamWState = { step, m: new Map(), v: new Map() };
  for (const [key, t] of tensors) {
    const [kind, ...rest] = key.split(".");
    (kind === "m" ? state.m : state.v).set(rest.join("."), t.data);
  }
  optimizer.loadState(state);
}

function fmt(x: number | null, digits = 4): string {
  return x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(digits);
}

/**
 * `klear demo` as a library call: trains a tiny Qwen3 from scratch on the synthetic arithmetic task,
 * measures greedy held-out accuracy before and after, checkpoints resumably into the run directory,
 * reloads the final checkpoint from disk and samples from it.
 */
export async function runDemo(configIn: DemoConfig, opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  let paths: RunPaths;
  let config: DemoConfig;
  let resumeFrom: { step: number; path: string } | null = null;
  if (opts.resume) {
    const opened = openRun(opts.out);
    paths = opened.paths;
    config = parseDemoConfig(opened.config, paths.config);
    resumeFrom = latestCheckpoint(paths.dir);
    log(
      resumeFrom
        ? `resuming ${paths.dir} from step ${resumeFrom.step}`
        : `resuming ${paths.dir}: no checkpoint yet, starting from step 0`,
    );
  } else {
    config = configIn;
    paths = createRun(opts.out, config);
    log(`run directory: ${paths.dir}`);
  }
  const db = RunDatabase.open(paths.database);
  try {
    return await train(config, paths, db, resumeFrom, { ...opts, log });
  } finally {
    db.close();
  }
}

async function train(
  config: DemoConfig,
  paths: RunPaths,
  db: RunDatabase,
  resumeFrom: { step: number; path: string } | null,
  opts: DemoOptions & { log: (line: string) => void },
): Promise<DemoResult> {
  const { log } = opts;
  const tokenizer = demoTokenizer();
  const split = arithmeticSplit(config.seed, config.task.testSize, config.task);
  const modelConfig = tinyQwen3Config({
    // Exactly the tokenizer's ids: a larger head could sample ids the tokenizer cannot decode.
    vocabSize: tokenizer.vocabSize,
    hiddenSize: config.model.hiddenSize,
    numHiddenLayers: config.model.numHiddenLayers,
    numAttentionHeads: config.model.numAttentionHeads,
    numKeyValueHeads: config.model.numKeyValueHeads,
    headDim: config.model.headDim,
    intermediateSize: config.model.intermediateSize,
    tieWordEmbeddings: config.model.tieWordEmbeddings,
    maxPositionEmbeddings: 256,
  });
  let model: Qwen3Model;
  let state: TrainerState;
  const evalOpts = { maxNewTokens: config.eval.maxNewTokens };

  if (resumeFrom) {
    model = (await loadModel(resumeFrom.path)).model;
    log(describeModel(model, config));
    const statePath = join(resumeFrom.path, TRAINER_STATE);
    if (!existsSync(statePath)) {
      throw new KlearError(
        "CHECKPOINT_INCOMPLETE",
        `${resumeFrom.path} has no ${TRAINER_STATE}, so the demo cannot resume from it`,
        `delete that checkpoint folder to resume from the one before, or start a new run`,
      );
    }
    state = JSON.parse(readFileSync(statePath, "utf8")) as TrainerState;
    truncateMetricsAfter(paths, state.step);
    db.deleteAfterStep(state.step);
  } else {
    // A resumed run that crashed before its first checkpoint starts over: forget what it logged.
    truncateMetricsAfter(paths, -1);
    db.deleteAfterStep(-1);
    model = Qwen3Model.create(modelConfig, { seed: config.seed });
    log(describeModel(model, config));
    const before = evaluateArithmetic(model, tokenizer, split.test, evalOpts);
    db.addSamples(sampleRecords(0, "eval", before.records));
    appendMetrics(paths, { step: 0, phase: "eval-before", heldOutAccuracy: before.accuracy });
    log(`held-out accuracy before training: ${fmt(before.accuracy)} (${split.test.length} problems, greedy)`);
    state = { step: 0, accuracyBefore: before.accuracy, firstLoss: null };
  }

  const params = model.parameters();
  const optimizer = new AdamW(params, {
    lr: config.train.lr,
    beta1: config.train.beta1,
    beta2: config.train.beta2,
    weightDecay: config.train.weightDecay,
    // Norm gains and biases stay undecayed, as in most LM recipes.
    decay: (_name, p) => p.shape.length >= 2,
  });
  if (resumeFrom) await loadOptimizerState(resumeFrom.path, optimizer, state.step);
  // The training stream is a pure function of the seed: skip what the resumed steps consumed.
  for (let i = 0; i < state.step * config.train.batchSize; i++) split.train();

  const schedule = {
    kind: "cosine" as const,
    warmupSteps: config.train.warmupSteps,
    totalSteps: config.train.steps,
    minLrRatio: config.train.minLrRatio,
  };
  const total = config.train.steps;
  const progress = createProgress("demo train", total, { unit: "steps", silent: opts.quiet });
  progress.update(state.step);
  const t0 = Date.now();
  let lastLoss: number | null = null;
  let interrupted = false;
  let lastSaved = resumeFrom?.step ?? -1;
  while (state.step < total) {
    // Training is synchronous compute: yield once per step so a Ctrl-C handler gets to run.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (opts.shouldStop?.()) {
      interrupted = true;
      break;
    }
    const problems = Array.from({ length: config.train.batchSize }, () => split.train());
    const batch = demoBatch(problems, tokenizer);
    model.zeroGrad();
    const { logp } = model.logprobs(batch);
    const dLogp = new Float32Array(logp.length);
    let loss = 0;
    for (let i = 0; i < logp.length; i++) {
      if (batch.targets[i] < 0) continue;
      loss -= logp[i];
      dLogp[i] = -1 / batch.lossTokens;
    }
    loss /= batch.lossTokens;
    model.backward(dLogp);
    const gradNorm = clipGradNorm(params, config.train.gradClip);
    // lrAt counts from 0, so step k (1-based) uses the rate at k: warmup starts above zero.
    const lr = lrAt(schedule, config.train.lr, state.step + 1);
    optimizer.step(lr);
    state.step++;
    state.firstLoss ??= loss;
    lastLoss = loss;
    appendMetrics(paths, { step: state.step, loss, lr, gradNorm, lossTokens: batch.lossTokens });
    progress.tick(1, { loss: loss.toFixed(3) });
    if (state.step % config.train.checkpointEvery === 0 || state.step === total) {
      await saveDemoCheckpoint(paths, state.step, model, tokenizer, optimizer, state);
      lastSaved = state.step;
    }
  }
  progress.stop();
  const trainSeconds = (Date.now() - t0) / 1000;

  if (lastSaved !== state.step)
    await saveDemoCheckpoint(paths, state.step, model, tokenizer, optimizer, state);
  const checkpoint = latestCheckpoint(paths.dir)!.path;
  if (lastLoss === null) lastLoss = lastLoggedLoss(paths);
  const n = split.test.length;

  if (interrupted) {
    log(`interrupted at step ${state.step}/${total}; checkpoint saved to ${checkpoint}`);
    log(`continue with: klear demo --out ${paths.dir} --resume`);
    return {
      runDir: paths.dir,
      steps: state.step,
      firstLoss: state.firstLoss,
      lastLoss,
      accuracyBefore: state.accuracyBefore,
      accuracyAfter: Number.NaN,
      ratio: Number.NaN,
      checkpoint,
      trainSeconds,
      interrupted,
    };
  }

  log(
    `loss: first ${fmt(state.firstLoss)} → last ${fmt(lastLoss)} over ${state.step} steps (${trainSeconds.toFixed(1)} s)`,
  );
  // Evaluate the checkpoint as written to disk, so what is measured is what a user gets.
  const { model: reloaded, tokenizer: savedTokenizer } = await loadModel(checkpoint);
  const after = evaluateArithmetic(reloaded, savedTokenizer, split.test, evalOpts);
  db.addSamples(sampleRecords(state.step, "eval", after.records));
  appendMetrics(paths, { step: state.step, phase: "eval-after", heldOutAccuracy: after.accuracy });
  log(`held-out accuracy after training: ${fmt(after.accuracy)} (before: ${fmt(state.accuracyBefore)})`);

  const shown = split.test.slice(0, config.eval.showSamples);
  if (shown.length > 0) {
    const samples = evaluateArithmetic(reloaded, savedTokenizer, shown, {
      ...evalOpts,
      temperature: config.eval.showTemperature,
      seed: config.seed,
    });
    db.addSamples(sampleRecords(state.step, "sample", samples.records));
    log(`samples from ${checkpoint} (temperature ${config.eval.showTemperature}):`);
    for (const r of samples.records) {
      log(`  ${r.correct ? "✓" : "✗"} ${r.problem.prompt}  →  ${JSON.stringify(r.text)}`);
    }
  }

  const ratio = (after.accuracy + 1 / n) / (state.accuracyBefore + 1 / n);
  const result: DemoResult = {
    runDir: paths.dir,
    steps: state.step,
    firstLoss: state.firstLoss,
    lastLoss,
    accuracyBefore: state.accuracyBefore,
    accuracyAfter: after.accuracy,
    ratio,
    checkpoint,
    trainSeconds,
    interrupted,
  };
  atomicWriteJsonSync(join(paths.dir, "result.json"), result);
  return result;
}

function describeModel(model: Qwen3Model, config: DemoConfig): string {
  const c = model.config;
  const layers = `${c.numHiddenLayers} layer${c.numHiddenLayers === 1 ? "" : "s"}`;
  return (
    `model: Qwen3, ${layers}, d_model ${c.hiddenSize}, ${c.numAttentionHeads}/${c.numKeyValueHeads} q/kv heads, ` +
    `${(model.parameterCount() / 1e6).toFixed(2)}M parameters, vocab ${c.vocabSize}; ` +
    `training ${config.train.steps} steps × ${config.train.batchSize} problems`
  );
}

function lastLoggedLoss(paths: RunPaths): number | null {
  const losses = readMetrics(paths).filter((m) => typeof m.loss === "number");
  return losses.length ? (losses[losses.length - 1].loss as number) : null;
}

/** The one summary line benchmarks and CI grep for. */
export function demoResultLine(r: DemoResult): string {
  return `RESULT demo klear=${fmt(r.accuracyAfter)} peer=${fmt(r.accuracyBefore)} unit=accuracy ratio=${fmt(r.ratio, 3)}`;
}
