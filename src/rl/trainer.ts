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
import { ServerSession, type ServerStepMetrics } from "../rollout/server-session.js";
import type { Generator } from "../rollout/types.js";
import { readTrainerState, requireInitCheckpoint, saveTrainingCheckpoint } from "../store/checkpoint.js";
import { appendMetrics, type RunPaths, resumeOrCreateRun, truncateMetricsAfter } from "../store/run.js";
import { RunDatabase } from "../store/samples.js";
import { runTrainingSteps } from "../store/steps.js";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { ConfigError } from "../util/errors.js";
import { evaluateRlPolicy, type HeldOutSampling } from "./evaluate.js";
import { type RlObjective, rlObjective } from "./loss-options.js";
import { collectRollouts, type RolloutMetrics } from "./rollout.js";
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
  const step = { config, task, score, policy, reference, objective: rlObjective(lossConfig), db, server };
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
  }).finally(() => server?.close());
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
  reference: LogprobSource | null;
  objective: RlObjective;
  db: RunDatabase;
  /** rollout.backend server: the inference server the rollouts come from. */
  server: ServerSession | null;
}

/** One training step: rollouts, then the update; advances `state` and returns the step's metrics. */
async function trainStep(ctx: StepContext, state: RlTrainerState): Promise<RlStepResult> {
  const { config, policy } = ctx;
  const stepNumber = state.step + 1;
  const collect = (sampler: Generator) =>
    collectRollouts({
      config,
      task: ctx.task,
      score: ctx.score,
      sampler,
      tokenizer: policy.tokenizer,
      cursor: state.promptCursor,
    });
  // On a server: the weights after `state.step` updates are handed over and checked around the sampling.
  const { result: rollouts, metrics: handoff } = ctx.server
    ? await ctx.server.sampleStep(state.step, collect)
    : { result: await collect(policy.sampler()), metrics: {} };
  state.promptCursor = rollouts.cursor;
  const { batch } = rollouts;
  const lr = lrAt(
    { kind: "constant", warmupSteps: config.optimizer.warmupSteps },
    config.optimizer.lr,
    state.step,
  );
  let metrics: RlStepResult;
  if (batch.length > 0) {
    const update = await policyUpdate(policy, ctx.reference, batch, {
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
      meta: { uid: t.uid, sampleIndex: t.sampleIndex, trained: trained.has(t), advantage: t.advantage },
    })),
  );
  state.step = stepNumber;
  return metrics;
}
