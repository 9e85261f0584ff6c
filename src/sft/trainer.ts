/**
 * `klear sft` as a library call: supervised fine-tuning of a checkpoint on chat rows, with the assistant-only
 * loss, packing, token-mean NLL over each optimizer batch (gradient accumulation that does not depend on the
 * micro-batch split), AdamW with warmup + cosine to a floor, clipping, epochs, held-out loss, and resumable,
 * HF-loadable checkpoints in a run directory.
 */
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { trainingBackendFromConfig } from "../backend/tinker/config.js";
import { type TinkerCheckpointState, tinkerCheckpointState } from "../backend/tinker/trainer.js";
import type { PolicyTrainer, TrainingBackend } from "../backend/types.js";
import { chatTurnEndToken } from "../model/chat.js";
import { loadModel } from "../model/checkpoint.js";
import type { Qwen3Model } from "../model/qwen3.js";
import { type Tokenizer, tokenizerFromFiles } from "../model/tokenizer.js";
import { expandRowPaths } from "../rows/index.js";
import { readTrainerState } from "../store/checkpoint.js";
import { appendMetrics, type RunPaths, resumeOrCreateRun, truncateMetricsAfter } from "../store/run.js";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import { parseSftConfig, type SftConfig } from "./config.js";
import {
  checkSomeRowsKept,
  describeSummary,
  emptySummary,
  readSftSource,
  type SftDataSummary,
  type SftExample,
} from "./data.js";
import { epochRows } from "./pack.js";
import { trainSftSteps } from "./step-loop.js";
import { backendSftUpdater, localSftUpdater, type SftUpdater } from "./updater.js";

export { heldOutLoss, sftStepGradients } from "./loss.js";
export {
  type SftLoopState,
  type SftStepMetrics,
  type SftStepsOptions,
  type SftStepsOutcome,
  trainSftSteps,
} from "./step-loop.js";

/** What reading the data found (rows kept, truncated, dropped per cause, the first drops), in the run folder. */
export const DATA_SUMMARY_FILE = "data_summary.json";

export interface SftOptions {
  config: SftConfig;
  /** Run directory (created; or resumed with `resume`). */
  out: string;
  /** Checkpoint to start from (overrides config.init). */
  init?: string;
  /** Row files (overrides config.data.sources with one weight-1 auto-format source per path). */
  data?: string[];
  resume?: boolean;
  /**
   * The training backend (default: the config's `backend` section). `backend.kind = local` trains on the
   * engine's fast path; a backend handed in, or `kind = tinker`, trains through the backend seam.
   */
  backend?: TrainingBackend;
  quiet?: boolean;
  shouldStop?: () => boolean;
  log?: (line: string) => void;
}

export interface SftResult {
  runDir: string;
  steps: number;
  totalSteps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  heldOutLossBefore: number | null;
  heldOutLossAfter: number | null;
  /** Padding positions over all computed positions, averaged over this process's steps. */
  paddingFraction: number;
  tokensPerSecond: number;
  checkpoint: string;
  data: SftDataSummary;
  interrupted: boolean;
  /** A Tinker run: the server state and the sampler export (`save_weights_for_sampler`) of the final checkpoint. */
  serverWeights?: TinkerCheckpointState;
}

/** Resumable trainer state, written next to each checkpoint (the data cursor is the step: the plan is seeded). */
interface SftTrainerState {
  step: number;
  firstLoss: number | null;
  heldOutLossBefore: number | null;
  /** Rows and tokens trained on, so a resume over changed data is refused rather than silently different. */
  fingerprint: { rows: number; tokens: number; heldOut: number };
}

function fmt(x: number | null, digits = 4): string {
  return x !== null && Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

/** The RESULT line `klear sft` ends with: held-out NLL after vs before (ratio above 1: SFT lowered it). */
export function sftResultLine(r: SftResult): string {
  const ratio =
    r.heldOutLossBefore !== null && r.heldOutLossAfter !== null && r.heldOutLossAfter > 0
      ? r.heldOutLossBefore / r.heldOutLossAfter
      : Number.NaN;
  return `RESULT sft klear=${fmt(r.heldOutLossAfter)} peer=${fmt(r.heldOutLossBefore)} unit=heldout-nll ratio=${fmt(ratio)}`;
}

function checkNewRunConfig(opts: SftOptions): SftConfig {
  const init = opts.init ?? opts.config.init;
  if (!init) {
    throw new ConfigError(
      "klear sft needs a checkpoint to start from",
      "pass --init CHECKPOINT_DIR (an HF-style Qwen3 folder)",
    );
  }
  if (!existsSync(join(init, "config.json"))) {
    throw new ConfigError(
      `--init ${init} is not a checkpoint folder (no config.json)`,
      "pass an HF-style checkpoint folder (config.json, model.safetensors, tokenizer.json)",
    );
  }
  const sources = opts.data?.length
    ? opts.data.map((p) => ({ path: resolve(p) }))
    : opts.config.data.sources.map((s) => ({
        ...s,
        path: typeof s.path === "string" ? resolve(s.path) : s.path.map((p) => resolve(p)),
      }));
  if (sources.length === 0) {
    throw new ConfigError(
      "klear sft has no data",
      "pass --data FILE... (jsonl, .jsonl.gz, parquet or folders of shards)",
    );
  }
  const heldOut =
    typeof opts.config.data.heldOut === "string" ? [opts.config.data.heldOut] : opts.config.data.heldOut;
  return parseSftConfig(
    {
      ...opts.config,
      init: resolve(init),
      data: { ...opts.config.data, sources, heldOut: heldOut.map((p) => resolve(p)) },
    },
    "sft options",
  );
}

/** The training rows (per source, for mixing) and the held-out rows, read and tokenized. */
async function loadData(
  config: SftConfig,
  tokenizer: Tokenizer,
  log: (line: string) => void,
  quiet: boolean,
): Promise<{
  examples: SftExample[];
  sources: { indexes: number[]; weight: number }[];
  heldOut: SftExample[];
  summary: SftDataSummary;
}> {
  const d = config.data;
  const readOpts = {
    template: config.render.template,
    trainOn: config.render.trainOn,
    maxTokens: config.pack.maxTokens,
    overLong: d.overLong,
    onBadRow: d.onBadRow,
    maxRows: d.maxRows,
    fields: d.fields,
  };
  const summary = emptySummary();
  const examples: SftExample[] = [];
  const perSource: number[][] = [];
  const heldOutFiles = typeof d.heldOut === "string" ? [d.heldOut] : d.heldOut;
  let totalBytes = 0;
  for (const file of await expandRowPaths([...d.sources.flatMap((s) => s.path), ...heldOutFiles])) {
    totalBytes += (await stat(file)).size;
  }
  const progress = createProgress("sft data", totalBytes, { unit: "bytes", silent: quiet });
  const onBytes = (n: number) => progress.tick(n, { rows: summary.rows });
  try {
    for (const source of d.sources) {
      const rows = await readSftSource(tokenizer, source, { ...readOpts, summary, onBytes });
      perSource.push(rows.map((_, i) => examples.length + i));
      examples.push(...rows);
    }
    progress.update(totalBytes, { rows: summary.rows });
  } finally {
    progress.stop();
  }
  checkSomeRowsKept(summary, "klear sft data");
  log(`data: ${describeSummary(summary)}`);
  let heldOut: SftExample[] = [];
  if (heldOutFiles.length > 0) {
    const hs = emptySummary();
    heldOut = await readSftSource(
      tokenizer,
      { path: heldOutFiles, weight: 1, format: "auto", name: "held-out" },
      { ...readOpts, summary: hs },
    );
    checkSomeRowsKept(hs, "klear sft held-out data");
    log(`held-out: ${describeSummary(hs)}`);
  } else if (d.heldOutRows > 0) {
    // A seeded pick, never trained on; at least one row always stays for training.
    const n = Math.min(d.heldOutRows, examples.length - 1);
    const order = epochRows([{ indexes: examples.map((_, i) => i), weight: 1 }], config.seed, -1);
    const held = new Set(order.slice(0, n));
    heldOut = [...held].sort((a, b) => a - b).map((i) => examples[i]);
    for (let s = 0; s < perSource.length; s++) perSource[s] = perSource[s].filter((i) => !held.has(i));
  }
  const sources = perSource.map((indexes, s) => ({ indexes, weight: d.sources[s].weight }));
  return { examples, sources, heldOut, summary };
}

/** Runs (or resumes) SFT to the end of its plan or until `shouldStop`; the final checkpoint is always saved. */
export async function runSft(opts: SftOptions): Promise<SftResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const { paths, config, resumeFrom } = resumeOrCreateRun({
    out: opts.out,
    resume: opts.resume,
    log,
    parse: parseSftConfig,
    create: () => checkNewRunConfig(opts),
  });
  const resumed = resumeFrom ? readTrainerState<SftTrainerState>(resumeFrom.path, "klear sft") : null;
  const trainee = await openTrainee(config, resumeFrom, resumed, opts.backend, log);
  try {
    return await train(config, paths, resumeFrom, resumed, trainee, opts, log);
  } finally {
    trainee.close();
  }
}

/** What trains: the local engine's model (fast path) or a training backend's policy (the seam). */
interface Trainee {
  tokenizer: Tokenizer;
  model?: Qwen3Model;
  policy?: PolicyTrainer;
  close(): void;
}

async function openTrainee(
  config: SftConfig,
  resumeFrom: { step: number; path: string } | null,
  resumed: SftTrainerState | null,
  handedIn: TrainingBackend | undefined,
  log: (line: string) => void,
): Promise<Trainee> {
  const from = resumeFrom ? resumeFrom.path : config.init;
  if (!handedIn && config.backend.kind === "local") {
    const { model, tokenizer } = await loadModel(from);
    return { model, tokenizer, close: () => {} };
  }
  const backend = handedIn ?? trainingBackendFromConfig(config.backend);
  if (backend.name === "tinker") warnTinkerLimits(config, log);
  const o = config.optimizer;
  const policy = await backend.openPolicy(from, {
    optimizer: { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay },
    resumeOptimizer: resumed ? { optimizerSteps: resumed.step } : undefined,
  });
  log(`backend: ${backend.name}, ${policy.parameterCount.toLocaleString("en-US")} trained parameters`);
  // Only a backend made here from the config is closed here.
  return { policy, tokenizer: policy.tokenizer, close: () => (handedIn ? undefined : backend.close?.()) };
}

/**
 * A Tinker server trains a LoRA adapter (hosted Tinker and SkyRL alike): what a full-parameter SFT config
 * asks for that the server decides itself is said once, up front (docs/scale.md).
 */
function warnTinkerLimits(config: SftConfig, log: (line: string) => void): void {
  const t = config.backend.tinker;
  log(
    `backend tinker: LoRA rank ${t.loraRank} on the server's base model; the base weights stay frozen (the API trains LoRA adapters only)`,
  );
  if (config.train.recompute) {
    log("backend tinker: train.recompute is ignored (the server manages its own activation memory)");
  }
  if (t.lossConvention === "skyrl-jax") {
    log(
      `backend tinker: SkyRL 0.4.0 ignores optimizer.gradClip (${config.optimizer.gradClip}); the logged gradNorm is the server's, unclipped`,
    );
  }
}

async function train(
  config: SftConfig,
  paths: RunPaths,
  resumeFrom: { step: number; path: string } | null,
  resumed: SftTrainerState | null,
  trainee: Trainee,
  opts: SftOptions,
  log: (line: string) => void,
): Promise<SftResult> {
  const tokenizer =
    config.render.template === "chat" && config.render.turnEndAsEos
      ? withTurnEndAsEos(trainee.tokenizer, log)
      : trainee.tokenizer;
  const data = await loadData(config, tokenizer, log, opts.quiet === true);
  atomicWriteJsonSync(join(paths.dir, DATA_SUMMARY_FILE), data.summary);
  const fingerprint = {
    rows: data.sources.reduce((n, s) => n + s.indexes.length, 0),
    tokens: data.examples.reduce((n, e) => n + e.ids.length, 0),
    heldOut: data.heldOut.length,
  };
  const updater: SftUpdater = trainee.policy
    ? backendSftUpdater(trainee.policy, tokenizer, config)
    : await localSftUpdater(
        trainee.model as Qwen3Model,
        tokenizer,
        config,
        resumeFrom && resumed && { path: resumeFrom.path, step: resumed.step },
      );
  let state: SftTrainerState;
  if (resumeFrom && resumed) {
    state = resumed;
    checkSameData(state.fingerprint, fingerprint, paths);
    truncateMetricsAfter(paths, state.step);
  } else {
    truncateMetricsAfter(paths, -1);
    const before = await updater.heldOutLoss(data.heldOut);
    appendMetrics(paths, { step: 0, phase: "eval-before", heldOutLoss: before });
    log(`held-out loss before training: ${fmt(before)} (${data.heldOut.length} rows)`);
    state = { step: 0, firstLoss: null, heldOutLossBefore: before, fingerprint };
  }
  log(
    `${config.train.epochs} epochs of ${fingerprint.rows} rows, ${config.train.sequencesPerStep} sequences of ≤ ${config.pack.maxTokens} tokens a step${config.pack.packing ? ", packed" : ""}`,
  );
  const run = await trainSftSteps({
    label: "sft",
    paths,
    config,
    updater,
    tokenizer,
    examples: data.examples,
    sources: data.sources,
    heldOut: data.heldOut,
    state,
    resumeFrom,
    quiet: opts.quiet,
    shouldStop: opts.shouldStop,
    log,
  });
  const result: SftResult = {
    runDir: paths.dir,
    steps: run.step,
    totalSteps: run.totalSteps,
    firstLoss: state.firstLoss,
    lastLoss: run.lastLoss,
    heldOutLossBefore: state.heldOutLossBefore,
    heldOutLossAfter: run.heldOutLossAfter,
    paddingFraction: run.paddingFraction,
    tokensPerSecond: run.tokensPerSecond,
    checkpoint: run.checkpoint,
    data: data.summary,
    interrupted: run.interrupted,
  };
  const serverWeights = trainee.policy ? tinkerCheckpointState(run.checkpoint) : null;
  if (serverWeights) result.serverWeights = serverWeights;
  if (!run.interrupted) {
    // Its presence marks the run finished (klear report, resumable callers).
    atomicWriteJsonSync(join(paths.dir, "result.json"), result);
    log(
      `loss: first ${fmt(result.firstLoss)} → last ${fmt(run.lastLoss)} over ${run.step} steps; held-out ${fmt(result.heldOutLossBefore)} → ${fmt(run.heldOutLossAfter)}; padding ${(100 * result.paddingFraction).toFixed(1)}%; checkpoint ${run.checkpoint}`,
    );
  }
  return result;
}

/**
 * The tokenizer with the chat template's end-of-turn token as its EOS, when they differ and the template does
 * not render the EOS itself (changing it would change the rows): what the fine-tuned model learns to emit is
 * then what `klear eval` and `klear rl` stop at, and what the checkpoint's tokenizer_config names.
 */
function withTurnEndAsEos(tokenizer: Tokenizer, log: (line: string) => void): Tokenizer {
  const turnEnd = chatTurnEndToken(tokenizer);
  if (
    turnEnd === undefined ||
    turnEnd === tokenizer.eosToken ||
    tokenizer.chatTemplate?.includes("eos_token")
  ) {
    return tokenizer;
  }
  const files = tokenizer.toFiles();
  log(
    `EOS: ${tokenizer.eosToken} → ${turnEnd} (the chat template's end of turn), so generation stops after a turn`,
  );
  return tokenizerFromFiles({ ...files, tokenizerConfig: { ...files.tokenizerConfig, eos_token: turnEnd } });
}

function checkSameData(
  saved: SftTrainerState["fingerprint"],
  now: SftTrainerState["fingerprint"],
  paths: RunPaths,
): void {
  if (saved.rows === now.rows && saved.tokens === now.tokens && saved.heldOut === now.heldOut) return;
  throw new KlearError(
    "SFT_DATA_CHANGED",
    `${paths.dir}: the data now gives ${now.rows} rows / ${now.tokens} tokens (${now.heldOut} held out), the run started with ${saved.rows} / ${saved.tokens} (${saved.heldOut})`,
    "resume with the files the run started with, or start a new run",
  );
}
