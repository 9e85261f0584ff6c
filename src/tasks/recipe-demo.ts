import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { EvalProblem, LoadedBenchmark } from "../benchmarks/registry.js";
import { LocalEngineGenerator } from "../eval/local-generator.js";
import { evaluate } from "../eval/run.js";
import type { EvalScorer } from "../eval/scoring.js";
import { saveCheckpoint } from "../model/checkpoint.js";
import { tinyQwen3Config } from "../model/config.js";
import { Qwen3Model } from "../model/qwen3.js";
import { reportInput } from "../report/run-input.js";
import { renderRunReport } from "../report/run-report.js";
import { verifyMath } from "../rewards/math/verify.js";
import { EVAL_RULES, scoreResponse } from "../rewards/score.js";
import { runRl } from "../rl/trainer.js";
import { runSft } from "../sft/trainer.js";
import { appendMetrics, type RunPaths, readMetrics, resumeOrCreateRun, runPaths } from "../store/run.js";
import { loadRuns } from "../store/run-data.js";
import { atomicWriteFileSync, atomicWriteJsonSync } from "../util/atomic.js";
import {
  parseRecipeDemoConfig,
  type RecipeDemoConfig,
  recipeRlConfig,
  recipeRunsRl,
  recipeSftConfig,
} from "./recipe-demo-config.js";
import { type RecipeProblem, recipeSplit } from "./recipe-problems.js";
import { RewardCallCounter, type RewardCallCounts, recipeRlTask, recipeTokenizer } from "./recipe-task.js";

/** Held-out accuracy (avg@k through the eval harness) of one checkpoint. */
export interface RecipeEvalSummary {
  dir: string;
  checkpoint: string;
  math: number;
  code: number;
  /** Over all held-out problems (math and code weighted by their counts). */
  overall: number;
}

/** What the demo measured, also in RUN/result.json. */
export interface RecipeDemoResult {
  runDir: string;
  report: string;
  sft: { checkpoint: string; steps: number; firstLoss: number | null; lastLoss: number | null };
  evalSft: RecipeEvalSummary;
  rl: { runDir: string; steps: number; checkpoint: string } | null;
  /** After RL (null when RL did not run). */
  evalRl: RecipeEvalSummary | null;
  /** Verifier and sandbox calls over the whole run (all processes of a resumed one). */
  rewardCalls: RewardCallCounts;
  /** Wall minutes over all processes of the run. */
  minutes: number;
  interrupted: boolean;
}

export interface RecipeDemoOptions {
  out: string;
  resume?: boolean;
  log?: (line: string) => void;
  quiet?: boolean;
  shouldStop?: () => boolean;
}

/** Phase outcomes so far, in RUN/phases.json: a resumed demo skips what is done. */
interface PhaseState {
  sft?: RecipeDemoResult["sft"];
  evalSft?: RecipeEvalSummary;
  rl?: NonNullable<RecipeDemoResult["rl"]>;
  evalRl?: RecipeEvalSummary;
  rewardCalls: RewardCallCounts;
  seconds: number;
}

const PHASES = "phases.json";
export const RECIPE_SFT_DIR = "sft";
export const RECIPE_RL_DIR = "rl";
export const RECIPE_DATA_DIR = "data";

function fmt(x: number | null | undefined, digits = 4): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(digits);
}

function splitOf(config: RecipeDemoConfig) {
  return recipeSplit(config.seed, config.data.heldOutSize, config.data);
}

function writeJsonl(path: string, rows: readonly unknown[]): void {
  atomicWriteFileSync(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
}

/**
 * The teacher's SFT rows (chat messages with `reasoning_content`, some wrong as distilled data is) and the
 * held-out sets, written once into `dir`; returns the SFT data file.
 */
export function writeRecipeData(config: RecipeDemoConfig, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const sftFile = join(dir, "sft.jsonl");
  if (existsSync(sftFile)) return sftFile;
  const split = splitOf(config);
  const rows = Array.from({ length: config.sft.steps * config.sft.batchSize }, (_, i) => {
    const { problem, teacher } = split.train(i, config.data.teacherNoise);
    return {
      messages: [
        { role: "user", content: problem.prompt },
        { role: "assistant", content: teacher.content, reasoning_content: teacher.reasoning },
      ],
      key: problem.key,
      kind: problem.kind,
      level: problem.level,
      teacherCorrect: teacher.correct,
    };
  });
  for (const kind of ["math", "code"] as const) {
    writeJsonl(
      join(dir, `heldout-${kind}.jsonl`),
      split.heldOut.filter((p) => p.kind === kind),
    );
  }
  writeJsonl(sftFile, rows);
  return sftFile;
}

/** A fresh tiny Qwen3 with the recipe tokenizer and chat template, saved as the SFT phase's init checkpoint. */
async function writeInitCheckpoint(config: RecipeDemoConfig, dir: string): Promise<string> {
  if (existsSync(join(dir, "config.json"))) return dir;
  const tokenizer = recipeTokenizer();
  const m = config.model;
  const model = Qwen3Model.create(
    tinyQwen3Config({
      vocabSize: tokenizer.vocabSize,
      hiddenSize: m.hiddenSize,
      numHiddenLayers: m.numHiddenLayers,
      numAttentionHeads: m.numAttentionHeads,
      numKeyValueHeads: m.numKeyValueHeads,
      headDim: m.headDim,
      intermediateSize: m.intermediateSize,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: m.maxPositions,
    }),
    { seed: config.seed },
  );
  await saveCheckpoint(dir, model, tokenizer);
  return dir;
}

/**
 * Phase 1 alone: writes the data and the init checkpoint into `dir`, then runs (or resumes) `klear sft` in
 * `dir/sft`. Returns the final SFT checkpoint, or null when stopped (`shouldStop`).
 */
export async function runRecipeSft(
  config: RecipeDemoConfig,
  dir: string,
  opts: Omit<RecipeDemoOptions, "out" | "resume"> = {},
): Promise<RecipeDemoResult["sft"] | null> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const data = writeRecipeData(config, join(dir, RECIPE_DATA_DIR));
  const init = await writeInitCheckpoint(config, join(dir, "checkpoints", "init"));
  const out = join(dir, RECIPE_SFT_DIR);
  const r = await runSft({
    config: recipeSftConfig(config, init, data),
    out,
    resume: existsSync(join(out, "config.json")),
    quiet: opts.quiet,
    shouldStop: opts.shouldStop,
    log: (line) => {
      if (!line.startsWith("continue with: klear sft")) log(line);
    },
  });
  if (r.interrupted) return null;
  return { checkpoint: r.checkpoint, steps: r.steps, firstLoss: r.firstLoss, lastLoss: r.lastLoss };
}

/** The eval harness's scorer for the demo: `scoreResponse` under the eval rules, counting checker calls. */
function countingScorer(counter: RewardCallCounter): EvalScorer {
  return {
    async score(problem, response) {
      let verifierCalled = false;
      const r = await scoreResponse(problem, response, {
        rules: EVAL_RULES,
        verifyMath: (gold, answer) => {
          verifierCalled = true;
          return verifyMath(gold, answer, { stripThink: false, timeoutMs: 5000 });
        },
      });
      counter.record(problem.kind, r, verifierCalled);
      return {
        score: r.passRate,
        correct: r.correct,
        extracted: r.extractedAnswer,
        reason: r.reason,
      };
    },
  };
}

function evalProblem(p: RecipeProblem): EvalProblem {
  const base = { id: p.key, question: p.prompt, fullPrompt: p.prompt, difficulty: `level ${p.level}` };
  return p.kind === "math"
    ? { ...base, kind: "math", answer: p.answer }
    : {
        ...base,
        kind: "code",
        starterCode: "",
        tests: (p.tests ?? []).map((t) => ({ input: t.input, output: t.output, testtype: "stdin" as const })),
      };
}

/** The held-out sets as local benchmarks of the eval harness: `recipe-math` and `recipe-code`. */
export function recipeBenchmarks(config: RecipeDemoConfig): LoadedBenchmark[] {
  const held = splitOf(config).heldOut;
  return (["math", "code"] as const).map((kind) => ({
    spec: {
      name: `recipe-${kind}`,
      kind,
      description: `the demo's held-out ${kind} problems (seed ${config.seed})`,
      defaultN: config.eval.samples,
      localFiles: [`heldout-${kind}.jsonl`],
      hub: { repo: "", files: [] },
    },
    problems: held.filter((p) => p.kind === kind).map(evalProblem),
    source: [`recipeSplit(seed ${config.seed}, ${config.data.heldOutSize})`],
  }));
}

/** Evaluates a checkpoint on the held-out benchmarks (resumable: the harness keeps its samples in `dir`). */
export async function evaluateRecipe(
  config: RecipeDemoConfig,
  checkpoint: string,
  dir: string,
  counter: RewardCallCounter,
  quiet?: boolean,
): Promise<RecipeEvalSummary> {
  const benchmarks = recipeBenchmarks(config);
  const outcome = await evaluate({
    benchmarks,
    generator: await LocalEngineGenerator.load(checkpoint),
    scorer: countingScorer(counter),
    outDir: dir,
    n: config.eval.samples,
    sampling: {
      temperature: config.eval.temperature,
      topP: config.eval.topP,
      maxTokens: config.eval.maxNewTokens,
    },
    promptTemplate: "raw",
    seed: config.seed,
    model: checkpoint,
    progress: { silent: quiet === true, unit: "samples" },
    writeReport: false,
  });
  const avg = (kind: "math" | "code") => {
    const b = outcome.results.benchmarks.find((x) => x.kind === kind);
    return { value: b?.metrics[`avg@${b.n}`]?.value ?? Number.NaN, problems: b?.problems ?? 0 };
  };
  const math = avg("math");
  const code = avg("code");
  const total = math.problems + code.problems;
  return {
    dir,
    checkpoint,
    math: math.value,
    code: code.value,
    overall: total > 0 ? (math.value * math.problems + code.value * code.problems) / total : Number.NaN,
  };
}

function describeEval(what: string, e: RecipeEvalSummary, config: RecipeDemoConfig): string {
  return `held-out ${what}: math ${fmt(e.math, 3)}, code ${fmt(e.code, 3)}, all ${fmt(e.overall, 3)} (avg@${config.eval.samples}, T ${config.eval.temperature}; ${e.dir}/results.json)`;
}

/** Records per-step checker calls into RL's metrics as its steps finish (read at each step boundary). */
function rewardCallRecorder(rlDir: string, counter: RewardCallCounter) {
  let last = counter.snapshot();
  let lastStep = -1;
  const record = (step: number) => {
    const now = counter.snapshot();
    appendMetrics(runPaths(rlDir), {
      step,
      phase: "reward-calls",
      verifierCalls: now.verifierCalls - last.verifierCalls,
      sandboxCalls: now.sandboxCalls - last.sandboxCalls,
    });
    last = now;
    lastStep = step;
  };
  return {
    atBoundary() {
      if (!existsSync(join(rlDir, "metrics.jsonl"))) return;
      const steps = readMetrics(runPaths(rlDir)).filter((m) => "rewardMean" in m);
      const step = steps.length ? steps[steps.length - 1].step : -1;
      if (step > lastStep) record(step);
    },
    finish(step: number) {
      record(Math.max(step, lastStep));
    },
  };
}

/**
 * `klear demo`: the Klear recipe in miniature on the real components. Teacher rows → a fresh tiny Qwen3 →
 * `klear sft` → held-out evaluation through the eval harness → GPPO RL (`runRl`, the recipe task: math
 * verifier and code sandbox rewards, dynamic sampling, the positive-sample SFT term) → evaluation again →
 * RUN/report.html. Resumable: `resume` continues whichever phase was interrupted.
 */
export async function runRecipeDemo(
  configIn: RecipeDemoConfig,
  opts: RecipeDemoOptions,
): Promise<RecipeDemoResult> {
  const started = Date.now();
  const log = opts.log ?? ((line: string) => console.log(line));
  const { paths, config } = resumeOrCreateRun({
    out: opts.out,
    resume: opts.resume,
    log,
    parse: parseRecipeDemoConfig,
    create: () => configIn,
  });
  const phasesPath = join(paths.dir, PHASES);
  const state: PhaseState = existsSync(phasesPath)
    ? (JSON.parse(readFileSync(phasesPath, "utf8")) as PhaseState)
    : { rewardCalls: { verifierCalls: 0, sandboxCalls: 0 }, seconds: 0 };
  const counter = new RewardCallCounter();
  const save = () => {
    const calls = counter.snapshot();
    atomicWriteJsonSync(phasesPath, {
      ...state,
      rewardCalls: {
        verifierCalls: state.rewardCalls.verifierCalls + calls.verifierCalls,
        sandboxCalls: state.rewardCalls.sandboxCalls + calls.sandboxCalls,
      },
      seconds: state.seconds + (Date.now() - started) / 1000,
    });
  };
  const interrupted = (): RecipeDemoResult => {
    save();
    log(`continue with: klear demo --out ${paths.dir} --resume`);
    return result(paths, state, counter, started, true, "");
  };
  const callsRow = (step: number, phase: string, before: RewardCallCounts) => {
    const now = counter.snapshot();
    appendMetrics(paths, {
      step,
      phase,
      verifierCalls: now.verifierCalls - before.verifierCalls,
      sandboxCalls: now.sandboxCalls - before.sandboxCalls,
    });
  };

  if (!state.sft) {
    log(
      `phase 1: ${config.sft.steps * config.sft.batchSize} teacher rows (noise ${config.data.teacherNoise}) → klear sft of a fresh d${config.model.hiddenSize} × ${config.model.numHiddenLayers} Qwen3`,
    );
    const sft = await runRecipeSft(config, paths.dir, opts);
    if (!sft) return interrupted();
    state.sft = sft;
    save();
  }
  const sft = state.sft;
  if (!state.evalSft) {
    const before = counter.snapshot();
    state.evalSft = await evaluateRecipe(
      config,
      sft.checkpoint,
      join(paths.dir, "eval-sft"),
      counter,
      opts.quiet,
    );
    callsRow(sft.steps, "eval-sft", before);
    save();
  }
  log(describeEval("accuracy after SFT", state.evalSft, config));

  if (recipeRunsRl(config)) {
    if (!state.rl) {
      const rlDir = join(paths.dir, RECIPE_RL_DIR);
      log(`phase 2: GPPO RL for ${config.rl.steps} steps from ${sft.checkpoint} (run directory ${rlDir})`);
      const recorder = rewardCallRecorder(rlDir, counter);
      const rl = await runRl({
        config: recipeRlConfig(config, sft.checkpoint),
        task: recipeRlTask({ seed: config.seed, ...config.data, counter }),
        out: rlDir,
        resume: existsSync(join(rlDir, "config.json")),
        log: (line) => {
          if (!line.startsWith("continue with: klear rl")) log(line);
        },
        quiet: opts.quiet,
        shouldStop: () => {
          recorder.atBoundary();
          return opts.shouldStop?.() ?? false;
        },
      });
      if (rl.interrupted) return interrupted();
      recorder.finish(rl.steps);
      state.rl = { runDir: rl.runDir, steps: rl.steps, checkpoint: rl.checkpoint };
      save();
    }
    if (!state.evalRl) {
      const before = counter.snapshot();
      state.evalRl = await evaluateRecipe(
        config,
        state.rl.checkpoint,
        join(paths.dir, "eval-rl"),
        counter,
        opts.quiet,
      );
      callsRow(sft.steps + state.rl.steps, "eval-rl", before);
      save();
    }
    log(describeEval("accuracy after RL", state.evalRl, config));
  }
  save();
  const saved = JSON.parse(readFileSync(phasesPath, "utf8")) as PhaseState;
  const report = join(paths.dir, "report.html");
  const done = result(paths, saved, new RewardCallCounter(), Date.now(), false, report);
  atomicWriteJsonSync(join(paths.dir, "result.json"), done);
  atomicWriteFileSync(
    report,
    renderRunReport(reportInput(loadRuns([paths.dir]), `klear demo: ${paths.dir}`)),
  );
  log(
    `verifier calls ${done.rewardCalls.verifierCalls}, sandbox calls ${done.rewardCalls.sandboxCalls}; ${done.minutes.toFixed(1)} min`,
  );
  log(`report: ${report}`);
  return done;
}

function result(
  paths: RunPaths,
  state: PhaseState,
  counter: RewardCallCounter,
  started: number,
  interrupted: boolean,
  report: string,
): RecipeDemoResult {
  const calls = counter.snapshot();
  const none: RecipeEvalSummary = {
    dir: "",
    checkpoint: "",
    math: Number.NaN,
    code: Number.NaN,
    overall: Number.NaN,
  };
  return {
    runDir: paths.dir,
    report,
    sft: state.sft ?? { checkpoint: "", steps: 0, firstLoss: null, lastLoss: null },
    evalSft: state.evalSft ?? none,
    rl: state.rl ?? null,
    evalRl: state.evalRl ?? null,
    rewardCalls: {
      verifierCalls: state.rewardCalls.verifierCalls + calls.verifierCalls,
      sandboxCalls: state.rewardCalls.sandboxCalls + calls.sandboxCalls,
    },
    minutes: (state.seconds + (Date.now() - started) / 1000) / 60,
    interrupted,
  };
}

/**
 * The demo's RESULT lines, last one last: `RESULT demo-rl` (after RL vs after SFT, when RL ran) and
 * `RESULT demo klear=<RL acc> peer=<SFT acc> … math_sft=… math_rl=… code_sft=… code_rl=… minutes=…`, with
 * ratio = (klear + 1/N) / (peer + 1/N) over N held-out problems.
 */
export function recipeResultLines(r: RecipeDemoResult, heldOut: number): string[] {
  const after = r.evalRl ?? r.evalSft;
  const eps = 1 / Math.max(1, heldOut);
  const ratio = (after.overall + eps) / (r.evalSft.overall + eps);
  const parts = `math_sft=${fmt(r.evalSft.math)} math_rl=${fmt(r.evalRl?.math)} code_sft=${fmt(r.evalSft.code)} code_rl=${fmt(r.evalRl?.code)}`;
  const lines: string[] = [];
  if (r.evalRl) {
    lines.push(
      `RESULT demo-rl klear=${fmt(r.evalRl.overall)} peer=${fmt(r.evalSft.overall)} unit=accuracy ratio=${fmt(ratio, 3)}`,
    );
  }
  lines.push(
    `RESULT demo klear=${fmt(after.overall)} peer=${fmt(r.evalSft.overall)} unit=accuracy ratio=${fmt(ratio, 3)} ${parts} minutes=${r.minutes.toFixed(2)}`,
  );
  return lines;
}
