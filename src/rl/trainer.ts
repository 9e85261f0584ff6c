/**
 * The GPPO reinforcement-learning loop (spec §7.1): per step, collect rollouts from the task handed in
 * (./rollout), then update the policy through the training backend handed in (./update; default the
 * local engine), checkpointing resumably into the run directory. Everything a step needs to be replayed
 * exactly — weights, AdamW moments, the prompt cursor that seeds sampling — is in each checkpoint, so
 * `--resume` continues bit for bit.
 */
import { join } from "node:path";
import { trainingBackendFromConfig } from "../backend/tinker/config.js";
import type { LogprobSource, PolicyTrainer, TrainingBackend } from "../backend/types.js";
import { lrAt } from "../engine/optim.js";
import { type SampledOnServer, ServerSession, type ServerStepMetrics } from "../rollout/server-session.js";
import type { Generator } from "../rollout/types.js";
import { readTrainerState, requireInitCheckpoint, saveTrainingCheckpoint } from "../store/checkpoint.js";
import { appendMetrics, type RunPaths, resumeOrCreateRun, truncateMetricsAfter } from "../store/run.js";
import { RunDatabase } from "../store/samples.js";
import { runTrainingSteps } from "../store/steps.js";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { evaluateRlPolicy, type HeldOutSampling } from "./evaluate.js";
import { type RlObjective, rlObjective } from "./loss-options.js";
import { type CollectedRollouts, collectRollouts, type RolloutMetrics } from "./rollout.js";
import { EVAL_STREAM, type RlScorer, type RlTask, type RlTaskFactory } from "./task.js";
import { parseRlConfig, type RlConfig } from "./trainer-config.js";
import { policyUpdate, type UpdateMetrics } from "./update.js";

export interface RlOptions {
  /** The resolved config (`resolveRlConfig`); ignored on resume, where the run's saved config wins. */
  config: RlConfig;
  /**
   * What to train on: a task, or a factory given the run's config and the policy's tokenizer
   * (`rlTaskFromConfig` from src/tasks picks klear's own by `task.kind`).
   */
  task: RlTask | RlTaskFactory;
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
  /** Replaces the task's scorer (library users with their own reward; tests). */
  scorer?: RlScorer;
  /** Where the policy lives and trains (default: the local engine). */
  backend?: TrainingBackend;
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
export interface RlTrainerState {
  step: number;
  /** Position in the training-prompt stream: with the seed it fixes every later prompt, sample and test subset. */
  promptCursor: number;
  optimizerSteps: number;
  accuracyBefore: number;
}

/** What one training step measured: its rollouts, and its update (or that no group survived to train on). */
export type RlStepResult = RolloutMetrics & { lr: number } & (UpdateMetrics | { skipped: true }) &
  Partial<ServerStepMetrics>;

/** One step's line in metrics.jsonl. */
export type RlStepMetrics = RlStepResult & { stepSeconds: number };

function fmt(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

/** The RESULT line `klear rl` ends with. */
export function rlResultLine(r: RlResult): string {
  return `RESULT rl klear=${fmt(r.accuracyAfter)} peer=${fmt(r.accuracyBefore)} unit=accuracy ratio=${fmt(r.ratio)}`;
}

/** The held-out sampling of a run: the config's eval section, on its own seed stream. */
export function heldOutSampling(config: RlConfig): HeldOutSampling {
  return {
    maxNewTokens: config.eval.maxNewTokens,
    temperature: config.eval.temperature,
    topP: config.eval.topP,
    seed: config.seed ^ EVAL_STREAM,
    maxPromptTokens: config.rollout.maxPromptTokens,
  };
}

function checkNewRunConfig(opts: RlOptions): RlConfig {
  const init = requireInitCheckpoint(opts.init ?? opts.config.init, "rl", "the policy");
  const config = parseRlConfig({ ...opts.config, init }, "rl options");
  // Checked before the run directory exists, so fixing the config and retrying needs no cleanup.
  if (config.task.kind !== "arithmetic" && config.task.trainFile === "") {
    throw new ConfigError(
      `task.kind is "${config.task.kind}" but task.trainFile is empty`,
      "set task.trainFile to a JSONL of verl rows (prompt, reward_model.ground_truth)",
    );
  }
  return config;
}

/**
 * `klear rl` as a library call: GPPO (or any registered loss) RL from `init` on the task handed in,
 * checkpointing resumably into the run directory, with held-out accuracy before and after.
 */
export async function runRl(opts: RlOptions): Promise<RlResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const { paths, config, resumeFrom } = resumeOrCreateRun({
    out: opts.out,
    resume: opts.resume,
    log,
    parse: parseRlConfig,
    create: () => checkNewRunConfig(opts),
  });
  const db = RunDatabase.open(paths.database);
  try {
    return await train(config, paths, db, resumeFrom, { ...opts, log });
  } finally {
    db.close();
  }
}

async function train(
  config: RlConfig,
  paths: RunPaths,
  db: RunDatabase,
  resumeFrom: { step: number; path: string } | null,
  opts: RlOptions & { log: (line: string) => void },
): Promise<RlResult> {
  const { log } = opts;
  // A backend handed in wins; otherwise the config's `backend` section picks the local engine or a Tinker server.
  const backend = opts.backend ?? trainingBackendFromConfig(config.backend);
  const resumed = resumeFrom ? readTrainerState<RlTrainerState>(resumeFrom.path, "the RL run") : null;
  const policy = await backend.openPolicy(resumeFrom ? resumeFrom.path : config.init, {
    optimizer: {
      lr: config.optimizer.lr,
      beta1: config.optimizer.beta1,
      beta2: config.optimizer.beta2,
      eps: config.optimizer.eps,
      weightDecay: config.optimizer.weightDecay,
    },
    resumeOptimizer: resumed ? { optimizerSteps: resumed.optimizerSteps } : undefined,
  });
  const { tokenizer } = policy;
  const task = typeof opts.task === "function" ? await opts.task({ config, tokenizer }) : opts.task;
  const score = opts.scorer ?? task.score;
  const reference = config.loss.klCoeff > 0 ? await backend.openReference(config.init) : null;
  const sampling = heldOutSampling(config);

  let state: RlTrainerState;
  if (resumed) {
    state = resumed;
    truncateMetricsAfter(paths, state.step);
    db.deleteAfterStep(state.step);
  } else {
    // A resumed run that crashed before its first checkpoint starts over: forget what it logged.
    truncateMetricsAfter(paths, -1);
    db.deleteAfterStep(-1);
    const before = await evaluateRlPolicy(policy.sampler(), tokenizer, task.heldOut, score, sampling);
    db.addSamples(before.records);
    appendMetrics(paths, { step: 0, phase: "eval-before", heldOutAccuracy: before.accuracy });
    log(`held-out accuracy before RL: ${fmt(before.accuracy)} (${task.heldOut.length} prompts)`);
    state = { step: 0, promptCursor: 0, optimizerSteps: 0, accuracyBefore: before.accuracy };
  }
  log(
    `policy: ${policy.parameterCount.toLocaleString("en-US")} parameters; loss ${config.loss.name}, ` +
      `${config.rollout.trainBatchPrompts}×${config.rollout.n} responses per step, mini-batch ${config.update.miniBatchPrompts} prompts`,
  );

  const server =
    config.rollout.backend === "server"
      ? await ServerSession.forRun(config.rollout.server, paths.dir, policy, tokenizer)
      : null;
  // Server rollouts come from another engine: truncated IS against its log-probs unless the loss sets a cap.
  const lossConfig =
    server && config.loss.tisCap === null
      ? { ...config, loss: { ...config.loss, tisCap: config.rollout.server.tisCap } }
      : config;
  const overlap = server !== null && config.rollout.server.overlap;
  const step: StepContext = {
    config,
    task,
    score,
    policy,
    trainer: overlap ? yieldingBetweenCalls(policy) : policy,
    reference,
    objective: rlObjective(lossConfig),
    db,
    server,
    overlap,
    prefetched: null,
  };
  const outcome = await runTrainingSteps({
    label: "rl",
    runDir: paths.dir,
    startStep: state.step,
    total: config.steps,
    checkpointEvery: config.checkpointEvery,
    savedStep: resumeFrom?.step ?? null,
    quiet: opts.quiet,
    shouldStop: opts.shouldStop,
    log,
    runStep: async () => {
      const stepStart = Date.now();
      const m = await trainStep(step, state);
      const metrics: RlStepMetrics = { ...m, stepSeconds: (Date.now() - stepStart) / 1000 };
      const requests = policy.requestStats;
      appendMetrics(paths, {
        step: state.step,
        ...metrics,
        ...(requests
          ? {
              backendRequests: requests.requests,
              backendRetries: requests.retries,
              backendFailedRequests: requests.failed,
              backendFutureWaitMs: requests.futureWaitMs,
            }
          : {}),
      });
      return { step: state.step, show: { reward: fmt(m.rewardMean, 3), acc: fmt(m.accuracy, 3) } };
    },
    save: (at) => saveTrainingCheckpoint(paths, at, { payload: policy, trainerState: state }).then(() => {}),
  }).finally(async () => {
    // A stop or a crash with the next step's rollouts still sampling: cancel them and wait until they
    // have ended. They were never trained on; --resume samples that step again (same prompts, seeds).
    await server?.close();
    await step.prefetched?.sampled.catch(() => {});
  });
  const { checkpoint, trainSeconds } = outcome;
  const n = task.heldOut.length;

  if (outcome.interrupted) {
    log(`continue with: klear rl --out ${paths.dir} --resume`);
    return {
      runDir: paths.dir,
      steps: state.step,
      accuracyBefore: state.accuracyBefore,
      accuracyAfter: Number.NaN,
      ratio: Number.NaN,
      checkpoint,
      trainSeconds,
      interrupted: true,
    };
  }

  // Evaluate the checkpoint as written to disk, so what is measured is what a user gets.
  const reloaded = await backend.openSampler(checkpoint);
  const after = await evaluateRlPolicy(reloaded.sampler, reloaded.tokenizer, task.heldOut, score, sampling);
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
    interrupted: false,
  };
  // Whole or absent: its presence is what marks the run finished (klear report, the experiment's resume).
  atomicWriteJsonSync(join(paths.dir, "result.json"), result);
  return result;
}

/** What every step of a run shares. */
interface StepContext {
  config: RlConfig;
  task: RlTask;
  score: RlScorer;
  policy: PolicyTrainer;
  /** The policy as the update sees it (with overlap, yielding to the event loop between calls). */
  trainer: PolicyTrainer;
  reference: LogprobSource | null;
  objective: RlObjective;
  db: RunDatabase;
  /** rollout.backend server: the inference server the rollouts come from. */
  server: ServerSession | null;
  /** rollout.server.overlap: each step's update runs while the server samples the next step. */
  overlap: boolean;
  /** The next step's rollouts, sampling on the server from the weights it had when they were requested. */
  prefetched: { step: number; sampled: Promise<SampledOnServer<CollectedRollouts>> } | null;
}

/**
 * The policy with a turn of the event loop before each call. The local engine computes synchronously, so
 * without it the overlapped step's requests, answers and scoring would wait for the whole update.
 */
function yieldingBetweenCalls(policy: PolicyTrainer): PolicyTrainer {
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    get tokenizer() {
      return policy.tokenizer;
    },
    get parameterCount() {
      return policy.parameterCount;
    },
    get requestStats() {
      return policy.requestStats;
    },
    sampler: () => policy.sampler(),
    save: (dir) => policy.save(dir),
    logprobs: async (batch, opts) => {
      await turn();
      return policy.logprobs(batch, opts);
    },
    forwardBackward: async (batch, opts, loss) => {
      await turn();
      return policy.forwardBackward(batch, opts, loss);
    },
    optimizerStep: async (opts) => {
      await turn();
      return policy.optimizerStep(opts);
    },
  };
}

/** This step's rollouts: the ones sampled during the previous update, or sampled now. */
async function stepRollouts(
  ctx: StepContext,
  state: RlTrainerState,
  collectFrom: (cursor: number) => (sampler: Generator) => Promise<CollectedRollouts>,
): Promise<{ result: CollectedRollouts; metrics: Partial<ServerStepMetrics> }> {
  const prefetched = ctx.prefetched;
  ctx.prefetched = null;
  if (prefetched) {
    if (prefetched.step !== state.step + 1) {
      throw new KlearError(
        "INTERNAL",
        `rollouts prefetched for step ${prefetched.step}, not ${state.step + 1}`,
        "report this as a bug",
      );
    }
    return prefetched.sampled;
  }
  // On a server: the weights after `state.step` updates are handed over and checked around the sampling.
  if (ctx.server) return ctx.server.sampleStep(state.step, collectFrom(state.promptCursor));
  return { result: await collectFrom(state.promptCursor)(ctx.policy.sampler()), metrics: {} };
}

/** One training step: rollouts, then the update; advances `state` and returns the step's metrics. */
async function trainStep(ctx: StepContext, state: RlTrainerState): Promise<RlStepResult> {
  const { config, policy } = ctx;
  const stepNumber = state.step + 1;
  const collectFrom = (cursor: number) => (sampler: Generator) =>
    collectRollouts({
      config,
      task: ctx.task,
      score: ctx.score,
      sampler,
      tokenizer: policy.tokenizer,
      cursor,
    });
  const { result: rollouts, metrics: handoff } = await stepRollouts(ctx, state, collectFrom);
  const sampledFrom = handoff.servedVersion ?? state.step;
  state.promptCursor = rollouts.cursor;
  if (ctx.server && ctx.overlap && stepNumber < config.steps) {
    // Hand the current weights over (before the update changes them), then let the server sample the
    // next step's prompts while this step trains: those rollouts will be one update old.
    const { sampled } = await ctx.server.startStep(state.step, collectFrom(state.promptCursor), {
      trainedAt: stepNumber,
    });
    ctx.prefetched = { step: stepNumber + 1, sampled };
  }
  const { batch } = rollouts;
  const lr = lrAt(
    { kind: "constant", warmupSteps: config.optimizer.warmupSteps },
    config.optimizer.lr,
    state.step,
  );
  let metrics: RlStepResult;
  if (batch.length > 0) {
    const update = await policyUpdate(ctx.trainer, ctx.reference, batch, {
      ...ctx.objective,
      miniBatchSize: config.update.miniBatchPrompts * config.rollout.n,
      microBatchSize: config.update.microBatchSize,
      ppoEpochs: config.update.ppoEpochs,
      temperature: config.rollout.temperature,
      lr,
      gradClip: config.optimizer.gradClip,
    });
    state.optimizerSteps += update.optimizerSteps;
    metrics = { ...rollouts.metrics, lr, ...update, ...handoff };
  } else metrics = { ...rollouts.metrics, lr, skipped: true, ...handoff };
  const trained = new Set(batch);
  ctx.db.addSamples(
    rollouts.generated.map((t) => ({
      step: stepNumber,
      kind: "rollout" as const,
      problemId: t.prompt.id,
      prompt: t.prompt.text,
      completion: t.text,
      reward: t.reward,
      correct: t.correct,
      finishReason: t.finishReason,
      numTokens: t.completion.length,
      meta: {
        uid: t.uid,
        sampleIndex: t.sampleIndex,
        trained: trained.has(t),
        advantage: t.advantage,
        policyVersion: sampledFrom,
        staleness: state.step - sampledFrom,
      },
    })),
  );
  state.step = stepNumber;
  return metrics;
}
