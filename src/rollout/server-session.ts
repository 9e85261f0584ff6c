import { join } from "node:path";
import type { CheckpointableModel } from "../model/checkpoint.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { createWeightSync, type WeightSync, type WeightSyncKind, WeightVersions } from "./handoff.js";
import { checkServerRolloutLag, type RolloutServerConfig } from "./server-config.js";
import { type ServerFlavor, ServerGenerator } from "./server-generator.js";
import { ServerProcess } from "./server-process.js";
import {
  checkServedVersion,
  checkServerSetup,
  probeTokens,
  type VersionCheckResult,
} from "./server-version.js";

/**
 * What the hand-off needs of the trainer's policy: its weights (the local backend's model) and its own
 * log-probs (for the probe, computed exactly as the trainer computes π_old).
 */
export interface HandoffPolicy {
  readonly model: CheckpointableModel;
  logprobs(
    batch: readonly { promptTokens: readonly number[]; responseTokens: readonly number[] }[],
    opts: { temperature: number },
  ): Promise<readonly { logp: ArrayLike<number> }[]>;
}

/**
 * One RL run's use of an inference server: start it (optionally), check it serves the right model and
 * tokenizer, and before each step's rollouts make sure it serves the policy the step samples from —
 * hand the weights over every `syncEvery` steps, then probe. Off-policy lag (rollouts from a policy
 * `syncEvery − 1` steps old, one more with `overlap`) is refused unless `maxOffPolicySteps` allows it.
 */

export interface ServerRolloutOptions {
  endpoints: string[];
  model: string;
  apiKey?: string;
  flavor: ServerFlavor;
  concurrency: number;
  timeoutMs: number;
  maxRetries: number;
  /** How new weights reach the server (default: the flavor's own reload). */
  weightSync?: WeightSyncKind;
  restartCommand?: string;
  /** Hand the weights over before every `syncEvery`-th step's rollouts (1 = every step, on-policy). */
  syncEvery: number;
  /** Versions the rollouts may lag behind the trainer (0 = strictly on-policy). */
  maxOffPolicySteps: number;
  /** The trainer samples each step while the previous one trains (one more step of lag). */
  overlap?: boolean;
  /** Folder for the versioned checkpoints the server loads. */
  weightsDir: string;
  keepVersions: number;
  weightsDtype: "float32" | "bfloat16";
  /** Max |Δ log p| on the probe between server and trainer; null = no check. */
  versionTolerance: number | null;
  /** Started with the run, waited for, stopped at the end (empty: the server is already running). */
  serverCommand?: string;
  serverReadyTimeoutMs: number;
  serverLogFile?: string;
}

export interface BeforeRolloutsInfo {
  /** The policy version (trainer step) the server serves for these rollouts. */
  servedVersion: number;
  /** Steps the rollouts lag behind the policy they are trained at (0 when on-policy). */
  staleness: number;
  synced: boolean;
  /** Time spent writing the checkpoint and reloading it (0 when not synced this step). */
  writeMs: number;
  reloadMs: number;
  check: VersionCheckResult | null;
}

export class ServerSession {
  readonly generator: ServerGenerator;
  private readonly versions: WeightVersions;
  private readonly sync: WeightSync;
  private readonly probe: number[];
  private servedVersion: number | null = null;
  private expectedProbe: number[] | null = null;
  /** The server lost the served version (it restarted): load its folder again before sampling. */
  private lost = false;

  private constructor(
    private readonly opts: ServerRolloutOptions,
    private readonly process: ServerProcess | null,
    private readonly policy: HandoffPolicy,
    private readonly tokenizer: Tokenizer,
  ) {
    const vocabSize = policy.model.config.vocabSize;
    this.generator = new ServerGenerator({
      endpoints: opts.endpoints,
      model: opts.model,
      apiKey: opts.apiKey || undefined,
      flavor: opts.flavor,
      vocabSize,
      concurrency: opts.concurrency,
      timeoutMs: opts.timeoutMs,
      maxRetries: opts.maxRetries,
    });
    this.versions = new WeightVersions({
      dir: opts.weightsDir,
      keep: opts.keepVersions,
      dtype: opts.weightsDtype,
    });
    this.sync = createWeightSync(opts.weightSync ?? opts.flavor, this.generator.client, {
      command: opts.restartCommand ?? "",
      readyTimeoutMs: opts.serverReadyTimeoutMs,
    });
    this.probe = probeTokens(vocabSize);
  }

  /** A session for one run from its `rollout.server` config (versions under `runDir` unless weightsDir is set). */
  static async forRun(
    config: RolloutServerConfig,
    runDir: string,
    policy: Partial<HandoffPolicy> & Pick<HandoffPolicy, "logprobs">,
    tokenizer: Tokenizer,
  ): Promise<ServerSession> {
    if (!policy.model) {
      throw new ConfigError(
        "rollout.backend server needs the policy's weights in this process",
        "train with the local backend (the default), or sample with rollout.backend local",
      );
    }
    return ServerSession.open(
      {
        ...config,
        apiKey: config.apiKey || undefined,
        weightSync: config.weightSync ?? undefined,
        weightsDir: config.weightsDir || join(runDir, "server-weights"),
        serverLogFile: join(runDir, "server.log"),
      },
      policy as HandoffPolicy,
      tokenizer,
    );
  }

  static async open(
    opts: ServerRolloutOptions,
    policy: HandoffPolicy,
    tokenizer: Tokenizer,
  ): Promise<ServerSession> {
    if (!opts.endpoints.length) {
      throw new ConfigError(
        "rollout.backend server needs endpoints",
        "set rollout.server.endpoints (e.g. http://127.0.0.1:8000)",
      );
    }
    checkServerRolloutLag({ ...opts, overlap: opts.overlap ?? false });
    const process = opts.serverCommand
      ? await ServerProcess.start({
          command: opts.serverCommand,
          endpoints: opts.endpoints,
          logFile: opts.serverLogFile,
          readyTimeoutMs: opts.serverReadyTimeoutMs,
        })
      : null;
    const session = new ServerSession(opts, process, policy, tokenizer);
    try {
      await checkServerSetup({ client: session.generator.client, model: opts.model, tokenizer });
    } catch (e) {
      await session.close();
      throw e;
    }
    return session;
  }

  /**
   * Before rollouts that the policy will be trained on at version `trainedAt`, while the trainer holds
   * version `step`: hand that over if the server's copy is `syncEvery` steps old (or unknown, as after a
   * resume), load the served folder again if the server lost it, then check what it serves against the
   * trainer's probe log-probs. Only a hand-off reads the policy; a reload uses what it wrote and measured.
   */
  async beforeRollouts(step: number, trainedAt = step): Promise<BeforeRolloutsInfo> {
    let synced = false;
    let writeMs = 0;
    let reloadMs = 0;
    if (this.servedVersion === null || step - this.servedVersion >= this.opts.syncEvery) {
      const t0 = performance.now();
      const path = await this.versions.write(this.policy.model, this.tokenizer, step);
      const t1 = performance.now();
      writeMs = t1 - t0;
      // Unknown until the load answers: a failed load leaves nothing to reload, so the next try writes again.
      this.servedVersion = null;
      await this.sync.load(path, `v${step}`);
      reloadMs = performance.now() - t1;
      const [probe] = await this.policy.logprobs(
        [{ promptTokens: this.probe.slice(0, 1), responseTokens: this.probe.slice(1) }],
        { temperature: 1 },
      );
      this.expectedProbe = Array.from(probe.logp);
      this.servedVersion = step;
      this.lost = false;
      synced = true;
    } else if (this.lost) {
      const t1 = performance.now();
      await this.sync.load(this.versions.pathOf(this.servedVersion), `v${this.servedVersion}`);
      reloadMs = performance.now() - t1;
      this.lost = false;
      synced = true;
    }
    const staleness = trainedAt - this.servedVersion;
    if (staleness < 0 || staleness > this.opts.maxOffPolicySteps) {
      throw new KlearError(
        "STALE_ROLLOUTS",
        `rollouts from policy version ${this.servedVersion} would be trained at version ${trainedAt}, ${staleness} step(s) apart; rollout.server.maxOffPolicySteps allows ${this.opts.maxOffPolicySteps}`,
        "raise rollout.server.maxOffPolicySteps to allow that lag, or lower syncEvery / turn overlap off",
      );
    }
    const check = await this.checkServed();
    return { servedVersion: this.servedVersion, staleness, synced, writeMs, reloadMs, check };
  }

  /**
   * One step's sampling on the server: hand-off and probe before, `collect` on the server's generator,
   * then the probe again — a server that restarted (on older weights) while the step sampled is caught
   * there, handed the weights again and the step's rollouts collected anew (same prompts and seeds), so
   * nothing sampled from the wrong weights is trained on. Gives up after `attempts` tries.
   */
  async sampleStep<T>(
    step: number,
    collect: (generator: ServerGenerator) => Promise<T>,
    opts: { trainedAt?: number; attempts?: number } = {},
  ): Promise<SampledOnServer<T>> {
    return (await this.startStep(step, collect, opts)).sampled;
  }

  /**
   * `sampleStep` in two halves, for sampling while the trainer updates: resolves once the weights are
   * handed over and checked (from then on the trainer may change its policy: a retry only reloads the
   * folder already written), with the sampling still running in `sampled`. That promise has a handler
   * attached, so a failure surfaces where it is awaited, not as an unhandled rejection.
   */
  async startStep<T>(
    step: number,
    collect: (generator: ServerGenerator) => Promise<T>,
    opts: { trainedAt?: number; attempts?: number } = {},
  ): Promise<{ sampled: Promise<SampledOnServer<T>> }> {
    const attempts = opts.attempts ?? 3;
    let attempt = 1;
    const prepare = async (): Promise<BeforeRolloutsInfo> => {
      for (; ; attempt++) {
        try {
          return await this.beforeRollouts(step, opts.trainedAt ?? step);
        } catch (e) {
          if (!this.retryable(e, attempt, attempts)) throw e;
        }
      }
    };
    let info = await prepare();
    const sampled = (async () => {
      for (;;) {
        try {
          const result = await collect(this.generator);
          await this.checkServed();
          return { result, metrics: serverStepMetrics(info) };
        } catch (e) {
          if (!this.retryable(e, attempt, attempts)) throw e;
          attempt++;
          info = await prepare();
        }
      }
    })();
    sampled.catch(() => {});
    return { sampled };
  }

  /** A stale-weights failure before `attempts` tries: the server lost the weights, so reload them. */
  private retryable(e: unknown, attempt: number, attempts: number): boolean {
    if (!(e instanceof KlearError && e.code === "STALE_WEIGHTS") || attempt >= attempts) return false;
    this.lost = true;
    return true;
  }

  private async checkServed(): Promise<VersionCheckResult | null> {
    if (this.opts.versionTolerance === null || !this.expectedProbe || this.servedVersion === null)
      return null;
    return checkServedVersion({
      client: this.generator.client,
      model: this.opts.model,
      probe: this.probe,
      expected: this.expectedProbe,
      tolerance: this.opts.versionTolerance,
      version: `v${this.servedVersion}`,
    });
  }

  /** Stops the session: requests still in flight (an overlapped step's) fail instead of being retried. */
  async close(): Promise<void> {
    this.generator.client.cancel();
    await this.process?.stop();
  }
}

/** max and mean |sampler − trainer| log-prob over every token of a batch: the sampler/trainer mismatch. */
export function logprobDiffStats(
  sampler: readonly (readonly number[])[],
  trainer: readonly (readonly number[])[],
): { logprobDiffMax: number; logprobDiffMean: number } {
  let max = 0;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < sampler.length; i++) {
    for (let t = 0; t < sampler[i].length; t++) {
      const d = Math.abs(sampler[i][t] - trainer[i][t]);
      if (d > max) max = d;
      sum += d;
      count++;
    }
  }
  return { logprobDiffMax: max, logprobDiffMean: count ? sum / count : 0 };
}

export interface SampledOnServer<T> {
  result: T;
  metrics: ServerStepMetrics;
}

/** One step's hand-off, as logged in metrics.jsonl next to the rollout metrics. */
export interface ServerStepMetrics {
  /** The policy version (trainer step) every rollout of the step was sampled from. */
  servedVersion: number;
  /** Updates between that version and the one trained on them (0 on-policy, 1 with overlap). */
  staleness: number;
  handoffWriteMs: number;
  handoffReloadMs: number;
  /** Max |served − trainer| log-prob on the probe (null when the check is off). */
  versionProbeMaxDiff: number | null;
}

export function serverStepMetrics(info: BeforeRolloutsInfo): ServerStepMetrics {
  return {
    servedVersion: info.servedVersion,
    staleness: info.staleness,
    handoffWriteMs: info.writeMs,
    handoffReloadMs: info.reloadMs,
    versionProbeMaxDiff: info.check?.maxAbsDiff ?? null,
  };
}
