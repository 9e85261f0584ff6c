import { join } from "node:path";
import type { CheckpointableModel } from "../model/checkpoint.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { ConfigError } from "../util/errors.js";
import { createWeightSync, type WeightSync, type WeightSyncKind, WeightVersions } from "./handoff.js";
import { type ServerFlavor, ServerGenerator } from "./server-generator.js";
import { ServerProcess } from "./server-process.js";
import {
  checkServedVersion,
  checkServerSetup,
  type ProbeModel,
  policyProbeLogprobs,
  probeTokens,
  type VersionCheckResult,
} from "./server-version.js";

/**
 * One RL run's use of an inference server: start it (optionally), check it serves the right model and
 * tokenizer, and before each step's rollouts make sure it serves the policy the step samples from —
 * hand the weights over every `syncEvery` steps, then probe. Off-policy lag (rollouts from a policy
 * `syncEvery − 1` steps old) is refused unless `maxOffPolicySteps` allows it.
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
  /** Steps the rollouts lag behind the trainer (0 when on-policy). */
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

  private constructor(
    private readonly opts: ServerRolloutOptions,
    private readonly process: ServerProcess | null,
    vocabSize: number,
  ) {
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

  static async open(
    opts: ServerRolloutOptions,
    policy: { config: { vocabSize: number } },
    tokenizer: Tokenizer,
  ): Promise<ServerSession> {
    if (!opts.endpoints.length) {
      throw new ConfigError(
        "rollout.backend server needs endpoints",
        "set rollout.server.endpoints (e.g. http://127.0.0.1:8000)",
      );
    }
    if (opts.syncEvery - 1 > opts.maxOffPolicySteps) {
      throw new ConfigError(
        `rollout.server.syncEvery ${opts.syncEvery} samples from policies up to ${opts.syncEvery - 1} steps old, but maxOffPolicySteps is ${opts.maxOffPolicySteps}`,
        `set rollout.server.maxOffPolicySteps ≥ ${opts.syncEvery - 1} to allow that lag, or syncEvery 1`,
      );
    }
    const process = opts.serverCommand
      ? await ServerProcess.start({
          command: opts.serverCommand,
          endpoints: opts.endpoints,
          logFile: opts.serverLogFile,
          readyTimeoutMs: opts.serverReadyTimeoutMs,
        })
      : null;
    const session = new ServerSession(opts, process, policy.config.vocabSize);
    try {
      await checkServerSetup({ client: session.generator.client, model: opts.model, tokenizer });
    } catch (e) {
      await session.close();
      throw e;
    }
    return session;
  }

  /** Default folder for the versions inside a run directory. */
  static weightsDirIn(runDir: string): string {
    return join(runDir, "server-weights");
  }

  /**
   * Before step `step` samples: hand over the policy if the server's copy is `syncEvery` steps old (or
   * unknown, as after a resume), then check what it serves against the trainer's probe log-probs.
   */
  async beforeRollouts(
    step: number,
    policy: CheckpointableModel & ProbeModel,
    tokenizer: Tokenizer,
  ): Promise<BeforeRolloutsInfo> {
    let synced = false;
    let writeMs = 0;
    let reloadMs = 0;
    if (this.servedVersion === null || step - this.servedVersion >= this.opts.syncEvery) {
      const t0 = performance.now();
      const path = await this.versions.write(policy, tokenizer, step);
      const t1 = performance.now();
      await this.sync.load(path, `v${step}`);
      reloadMs = performance.now() - t1;
      writeMs = t1 - t0;
      this.servedVersion = step;
      this.expectedProbe = policyProbeLogprobs(policy, this.probe);
      synced = true;
    }
    let check: VersionCheckResult | null = null;
    if (this.opts.versionTolerance !== null && this.expectedProbe) {
      check = await checkServedVersion({
        client: this.generator.client,
        model: this.opts.model,
        probe: this.probe,
        expected: this.expectedProbe,
        tolerance: this.opts.versionTolerance,
        version: `v${this.servedVersion}`,
      });
    }
    return {
      servedVersion: this.servedVersion,
      staleness: step - this.servedVersion,
      synced,
      writeMs,
      reloadMs,
      check,
    };
  }

  async close(): Promise<void> {
    this.generator.close();
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
