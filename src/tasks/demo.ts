import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadModel } from "../model/checkpoint.js";
import { tinyQwen3Config } from "../model/config.js";
import { Qwen3Model } from "../model/qwen3.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { type RlResult, runRl } from "../rl/trainer.js";
import { generate } from "../rollout/generate.js";
import { encodeConversation, type SftExample } from "../sft/data.js";
import { buildBatch } from "../sft/pack.js";
import { trainSftSteps } from "../sft/trainer.js";
import { readTrainerState } from "../store/checkpoint.js";
import {
  appendMetrics,
  type RunPaths,
  readMetrics,
  resumeOrCreateRun,
  truncateMetricsAfter,
} from "../store/run.js";
import { RunDatabase, type SampleRecord } from "../store/samples.js";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { type ArithmeticProblem, arithmeticSplit, verifyArithmetic } from "./arithmetic.js";
import {
  DEMO_MAX_TOKENS,
  type DemoConfig,
  demoRlConfig,
  demoRunsRl,
  demoSftConfig,
  parseDemoConfig,
} from "./demo-config.js";
import { arithmeticRlTask } from "./rl-tasks.js";
import { demoTokenizer } from "./tiny-model.js";

export { demoTokenizer };

/** What the demo measured, also written to `result.json` in the run directory. */
export interface DemoResult {
  runDir: string;
  /** Supervised (phase 1) steps. */
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  /** Held-out accuracy (greedy) of the freshly initialised model. */
  accuracyBefore: number;
  /** Held-out accuracy (greedy) after SFT, measured on the SFT checkpoint reloaded from disk. */
  accuracyAfterSft: number;
  /** Held-out accuracy (greedy) at the end (after RL when it ran), on the final checkpoint reloaded from disk. */
  accuracyAfter: number;
  /** `(after + 1/N) / (before + 1/N)` with N held-out problems: > 1 means training helped. */
  ratio: number;
  /** The final checkpoint folder (HF-style): the RL one when RL ran, else the SFT one. */
  checkpoint: string;
  /** Seconds of supervised training in this process. */
  trainSeconds: number;
  /** Phase 2, when it ran (its run directory is `<runDir>/rl`). */
  rl: {
    runDir: string;
    steps: number;
    /** Held-out accuracy after RL. */
    accuracyAfter: number;
    /** `(afterRl + 1/N) / (afterSft + 1/N)`. */
    ratio: number;
    checkpoint: string;
    trainSeconds: number;
  } | null;
  interrupted: boolean;
}

/** What the supervised phase leaves in `sft_result.json`, so a resumed demo skips a finished phase. */
interface SftOutcome {
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  accuracyBefore: number;
  accuracyAfter: number;
  checkpoint: string;
  trainSeconds: number;
  interrupted: boolean;
}

const SFT_RESULT = "sft_result.json";
/** The RL phase's run directory, inside the demo's. */
export const DEMO_RL_DIR = "rl";

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

/** The supervised rows of problems: prompt + teacher completion + EOS as plain text, loss on the completion and EOS. */
export function demoSftExamples(problems: readonly ArithmeticProblem[], tokenizer: Tokenizer): SftExample[] {
  return problems.map((p, i) => ({
    ...encodeConversation(
      tokenizer,
      [
        { role: "user", content: p.prompt },
        { role: "assistant", content: p.completion },
      ],
      { template: "none", trainOn: "all-assistant", maxTokens: DEMO_MAX_TOKENS, overLong: "truncate" },
    ),
    source: "arithmetic teacher",
    where: `problem ${i + 1}`,
  }));
}

/** One training batch of problems as the supervised phase builds it (one problem per row). */
export function demoBatch(
  problems: readonly ArithmeticProblem[],
  tokenizer: Tokenizer,
): { tokens: Int32Array; targets: Int32Array; batchSize: number; seqLen: number; lossTokens: number } {
  const { batch, lossTokens } = buildBatch(
    demoSftExamples(problems, tokenizer).map((e) => [e]),
    tokenizer.padTokenId,
  );
  return { ...batch, lossTokens };
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

function fmt(x: number | null, digits = 4): string {
  return x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(digits);
}

/**
 * `klear demo` as a library call: the Klear recipe in miniature. Phase 1 trains a tiny Qwen3 from
 * scratch by supervised fine-tuning on (noisy) teacher solutions of the synthetic arithmetic task;
 * phase 2 runs GPPO RL from that checkpoint in `<out>/rl`. Greedy held-out accuracy is measured before
 * training, after SFT and after RL, each on the checkpoint reloaded from disk; both phases checkpoint
 * resumably, and `resume` continues whichever phase was interrupted. Ends by sampling from the final
 * checkpoint.
 */
export async function runDemo(configIn: DemoConfig, opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const { paths, config, resumeFrom } = resumeOrCreateRun({
    out: opts.out,
    resume: opts.resume,
    log,
    parse: parseDemoConfig,
    create: () => configIn,
  });
  const db = RunDatabase.open(paths.database);
  try {
    const split = arithmeticSplit(config.seed, config.task.testSize, config.task);
    const sftResultPath = join(paths.dir, SFT_RESULT);
    let sft: SftOutcome;
    if (opts.resume && existsSync(sftResultPath)) {
      sft = JSON.parse(readFileSync(sftResultPath, "utf8")) as SftOutcome;
      log(`phase 1 (SFT) finished earlier: held-out accuracy ${fmt(sft.accuracyAfter)} at ${sft.checkpoint}`);
    } else {
      sft = await trainSft(config, paths, db, split, resumeFrom, { ...opts, log });
      if (sft.interrupted) return interruptedResult(paths, sft, log);
      atomicWriteJsonSync(sftResultPath, sft);
    }

    let rl: RlResult | null = null;
    if (demoRunsRl(config)) {
      const rlDir = join(paths.dir, DEMO_RL_DIR);
      log(`phase 2: GPPO RL for ${config.rl.steps} steps from ${sft.checkpoint} (run directory ${rlDir})`);
      rl = await runRl({
        config: demoRlConfig(config, sft.checkpoint),
        // The same split function and seed as phase 1: RL is measured on the very problems SFT was.
        task: arithmeticRlTask,
        out: rlDir,
        // Resume RL exactly when an earlier demo process got as far as creating its run directory.
        resume: opts.resume && existsSync(join(rlDir, "config.json")),
        // The demo, not `klear rl`, is what the user resumes.
        log: (line) => {
          if (!line.startsWith("continue with: klear rl")) log(line);
        },
        quiet: opts.quiet,
        shouldStop: opts.shouldStop,
      });
      if (rl.interrupted) return interruptedResult(paths, { ...sft, interrupted: true }, log);
    }
    return await finish(config, paths, db, split.test, sft, rl, log);
  } finally {
    db.close();
  }
}

/** The result fields phase 1 decides. */
function sftFields(paths: RunPaths, sft: SftOutcome) {
  return {
    runDir: paths.dir,
    steps: sft.steps,
    firstLoss: sft.firstLoss,
    lastLoss: sft.lastLoss,
    accuracyBefore: sft.accuracyBefore,
    accuracyAfterSft: sft.accuracyAfter,
  };
}

function interruptedResult(paths: RunPaths, sft: SftOutcome, log: (line: string) => void): DemoResult {
  log(`continue with: klear demo --out ${paths.dir} --resume`);
  return {
    ...sftFields(paths, sft),
    accuracyAfter: Number.NaN,
    ratio: Number.NaN,
    checkpoint: sft.checkpoint,
    trainSeconds: sft.trainSeconds,
    rl: null,
    interrupted: true,
  };
}

/** Samples from the final checkpoint, the summary, and result.json. */
async function finish(
  config: DemoConfig,
  paths: RunPaths,
  db: RunDatabase,
  test: readonly ArithmeticProblem[],
  sft: SftOutcome,
  rl: RlResult | null,
  log: (line: string) => void,
): Promise<DemoResult> {
  const n = test.length;
  const checkpoint = rl ? rl.checkpoint : sft.checkpoint;
  const accuracyAfter = rl ? rl.accuracyAfter : sft.accuracyAfter;
  const shown = test.slice(0, config.eval.showSamples);
  if (shown.length > 0) {
    const { model, tokenizer } = await loadModel(checkpoint);
    const samples = evaluateArithmetic(model, tokenizer, shown, {
      maxNewTokens: config.eval.maxNewTokens,
      temperature: config.eval.showTemperature,
      seed: config.seed,
    });
    db.addSamples(sampleRecords(sft.steps + (rl?.steps ?? 0), "sample", samples.records));
    log(`samples from ${checkpoint} (temperature ${config.eval.showTemperature}):`);
    for (const r of samples.records) {
      log(`  ${r.correct ? "✓" : "✗"} ${r.problem.prompt}  →  ${JSON.stringify(r.text)}`);
    }
  }
  log(
    `held-out accuracy: before training ${fmt(sft.accuracyBefore)} → after SFT ${fmt(sft.accuracyAfter)}` +
      (rl ? ` → after RL ${fmt(rl.accuracyAfter)}` : "") +
      ` (${n} problems, greedy)`,
  );
  const result: DemoResult = {
    ...sftFields(paths, sft),
    accuracyAfter,
    ratio: (accuracyAfter + 1 / n) / (sft.accuracyBefore + 1 / n),
    checkpoint,
    trainSeconds: sft.trainSeconds,
    rl: rl && {
      runDir: rl.runDir,
      steps: rl.steps,
      accuracyAfter: rl.accuracyAfter,
      ratio: (rl.accuracyAfter + 1 / n) / (sft.accuracyAfter + 1 / n),
      checkpoint: rl.checkpoint,
      trainSeconds: rl.trainSeconds,
    },
    interrupted: false,
  };
  atomicWriteJsonSync(join(paths.dir, "result.json"), result);
  return result;
}

/** Phase 1: supervised training on teacher solutions, then the held-out evaluation of its checkpoint. */
async function trainSft(
  config: DemoConfig,
  paths: RunPaths,
  db: RunDatabase,
  split: ReturnType<typeof arithmeticSplit>,
  resumeFrom: { step: number; path: string } | null,
  opts: DemoOptions & { log: (line: string) => void },
): Promise<SftOutcome> {
  const { log } = opts;
  const tokenizer = demoTokenizer();
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
    maxPositionEmbeddings: DEMO_MAX_TOKENS,
  });
  let model: Qwen3Model;
  let state: TrainerState;
  const evalOpts = { maxNewTokens: config.eval.maxNewTokens };

  if (resumeFrom) {
    model = (await loadModel(resumeFrom.path)).model;
    log(describeModel(model, config));
    state = readTrainerState<TrainerState>(resumeFrom.path, "the demo");
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

  // The supervised rows: the first steps × batchSize problems of the seeded training stream, in order, one
  // problem per sequence and one step per batchSize of them (src/sft's loop, without shuffling or packing).
  const problems = Array.from({ length: config.train.steps * config.train.batchSize }, () => split.train());
  const examples = demoSftExamples(problems, tokenizer);
  const run = await trainSftSteps({
    label: "demo sft",
    paths,
    config: demoSftConfig(config),
    model,
    tokenizer,
    examples,
    sources: [{ indexes: examples.map((_, i) => i), weight: 1 }],
    heldOut: [],
    state,
    resumeFrom,
    quiet: opts.quiet,
    shouldStop: opts.shouldStop,
    log,
  });
  const { checkpoint, trainSeconds, interrupted } = run;
  const lastLoss = run.lastLoss ?? lastLoggedLoss(paths);
  const outcome: SftOutcome = {
    steps: state.step,
    firstLoss: state.firstLoss,
    lastLoss,
    accuracyBefore: state.accuracyBefore,
    accuracyAfter: Number.NaN,
    checkpoint,
    trainSeconds,
    interrupted,
  };
  if (interrupted) return outcome;

  log(
    `loss: first ${fmt(state.firstLoss)} → last ${fmt(lastLoss)} over ${state.step} steps (${trainSeconds.toFixed(1)} s)`,
  );
  // Evaluate the checkpoint as written to disk, so what is measured is what a user gets.
  const { model: reloaded, tokenizer: savedTokenizer } = await loadModel(checkpoint);
  const after = evaluateArithmetic(reloaded, savedTokenizer, split.test, evalOpts);
  db.addSamples(sampleRecords(state.step, "eval", after.records));
  appendMetrics(paths, { step: state.step, phase: "eval-after", heldOutAccuracy: after.accuracy });
  log(`held-out accuracy after SFT: ${fmt(after.accuracy)} (before: ${fmt(state.accuracyBefore)})`);
  return { ...outcome, accuracyAfter: after.accuracy };
}

function describeModel(model: Qwen3Model, config: DemoConfig): string {
  const c = model.config;
  const layers = `${c.numHiddenLayers} layer${c.numHiddenLayers === 1 ? "" : "s"}`;
  return (
    `model: Qwen3, ${layers}, d_model ${c.hiddenSize}, ${c.numAttentionHeads}/${c.numKeyValueHeads} q/kv heads, ` +
    `${(model.parameterCount() / 1e6).toFixed(2)}M parameters, vocab ${c.vocabSize}; ` +
    `phase 1 (SFT): ${config.train.steps} steps × ${config.train.batchSize} problems, teacher noise ${config.task.teacherNoise}`
  );
}

function lastLoggedLoss(paths: RunPaths): number | null {
  const losses = readMetrics(paths).filter((m) => typeof m.loss === "number");
  return losses.length ? (losses[losses.length - 1].loss as number) : null;
}

/** The RESULT line of the RL phase (after RL vs after SFT), or null when RL did not run. */
export function demoRlResultLine(r: DemoResult): string | null {
  if (!r.rl) return null;
  return `RESULT demo-rl klear=${fmt(r.rl.accuracyAfter)} peer=${fmt(r.accuracyAfterSft)} unit=accuracy ratio=${fmt(r.rl.ratio, 3)}`;
}

/** The one summary line benchmarks and CI grep for: final held-out accuracy vs before training. */
export function demoResultLine(r: DemoResult): string {
  return `RESULT demo klear=${fmt(r.accuracyAfter)} peer=${fmt(r.accuracyBefore)} unit=accuracy ratio=${fmt(r.ratio, 3)}`;
}
