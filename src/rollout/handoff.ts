import { spawn } from "node:child_process";
import { readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type CheckpointableModel, saveCheckpoint } from "../model/checkpoint.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { ConfigError, KlearError } from "../util/errors.js";
import type { OpenAIClient } from "./openai.js";
import { waitForServers } from "./server-process.js";

/**
 * Weight hand-off from the trainer to an inference server: each policy version is written as an HF
 * checkpoint folder (atomically, under a versioned name, old ones pruned), then the server is told to
 * serve it — vLLM reloads in place, SGLang loads from disk, anything else is restarted by a command.
 */

export const WEIGHT_SYNC_KINDS = ["vllm", "sglang", "restart"] as const;
export type WeightSyncKind = (typeof WEIGHT_SYNC_KINDS)[number];

const VERSION_PREFIX = "v";

/** `v000012` for version 12: names sort in version order. */
export function versionName(version: number): string {
  return `${VERSION_PREFIX}${String(version).padStart(6, "0")}`;
}

/**
 * The model as the server should load it: untied. vLLM's CPU build keeps a packed copy of `lm_head`
 * that its in-place reload does not rebuild when the checkpoint has no `lm_head.weight` (tied), so the
 * served output layer would silently stay on the old weights; writing the head explicitly avoids that
 * on every server at the cost of one more vocab × hidden matrix on disk.
 */
export function untiedForServing(model: CheckpointableModel): CheckpointableModel {
  if (!model.config.tieWordEmbeddings) return model;
  const config = {
    ...model.config,
    tieWordEmbeddings: false,
    raw: { ...model.config.raw, tie_word_embeddings: false },
  };
  return {
    config,
    parameters() {
      const params = new Map(model.parameters());
      const embed = params.get("model.embed_tokens.weight");
      if (!embed) {
        throw new KlearError(
          "MODEL_INTERNAL",
          "model has no model.embed_tokens.weight",
          "report this as a bug",
        );
      }
      params.set("lm_head.weight", { data: embed.data, shape: embed.shape });
      return params;
    },
  };
}

export interface WeightVersionsOptions {
  /** Folder holding one checkpoint folder per version. */
  dir: string;
  /** Versions kept on disk, the newest ones (default 2: the served one and the one being written). */
  keep?: number;
  /** Stored dtype (default float32; bfloat16 halves the write, and the server computes in its own dtype). */
  dtype?: "float32" | "bfloat16";
}

/** The policy's versions on disk, as the server loads them. */
export class WeightVersions {
  readonly dir: string;
  private readonly keep: number;
  private readonly dtype: "float32" | "bfloat16";

  constructor(opts: WeightVersionsOptions) {
    this.dir = resolve(opts.dir);
    this.keep = opts.keep ?? 2;
    this.dtype = opts.dtype ?? "float32";
    if (!Number.isInteger(this.keep) || this.keep < 1) {
      throw new ConfigError(`keep ${this.keep} < 1`, "keep at least the served version");
    }
  }

  pathOf(version: number): string {
    return join(this.dir, versionName(version));
  }

  /** Writes `version` (replacing a partial or older write of the same version), then prunes old ones. */
  async write(model: CheckpointableModel, tokenizer: Tokenizer, version: number): Promise<string> {
    const path = this.pathOf(version);
    await saveCheckpoint(path, untiedForServing(model), tokenizer, { dtype: this.dtype });
    await this.prune();
    return path;
  }

  /** The versions on disk, oldest first. */
  async list(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    return names
      .filter((n) => /^v\d{6,}$/.test(n))
      .map((n) => Number(n.slice(VERSION_PREFIX.length)))
      .sort((a, b) => a - b);
  }

  private async prune(): Promise<void> {
    const versions = await this.list();
    for (const v of versions.slice(0, Math.max(0, versions.length - this.keep))) {
      await rm(this.pathOf(v), { recursive: true, force: true });
    }
  }
}

/** Makes every endpoint serve a checkpoint folder. */
export interface WeightSync {
  readonly kind: WeightSyncKind;
  load(path: string, version: string): Promise<void>;
}

/** Reads an admin route's JSON answer and fails with the server's own message when it reports one. */
function checkAdminAnswer(answer: unknown, what: string, fix: string): void {
  const obj = answer as { success?: boolean; error?: unknown; message?: unknown } | null;
  if (obj && (obj.success === false || obj.error !== undefined)) {
    throw new KlearError(
      "WEIGHT_SYNC_FAILED",
      `${what} failed: ${String(obj.error ?? obj.message ?? JSON.stringify(obj))}`,
      fix,
    );
  }
}

/**
 * vLLM (≥ 0.11, started with VLLM_SERVER_DEV_MODE=1): pause (aborting in-flight requests, which the
 * generator retries), `reload_weights` from the new folder through `collective_rpc`, drop the prefix
 * cache (else KV computed by the old weights is reused), tag the version, resume.
 */
export class VllmWeightSync implements WeightSync {
  readonly kind = "vllm" as const;
  constructor(private readonly client: OpenAIClient) {}

  async load(path: string, version: string): Promise<void> {
    const fix =
      "start vLLM with VLLM_SERVER_DEV_MODE=1 (scripts/server/start-vllm-cpu.sh does), or use rollout.weightSync restart";
    await Promise.all(
      this.client.endpointUrls.map(async (_url, i) => {
        const step = async (method: "GET" | "POST", route: string, body?: unknown) => {
          try {
            const answer = await this.client.admin(i, method, route, body);
            checkAdminAnswer(answer, `vLLM ${route}`, fix);
          } catch (e) {
            if (e instanceof KlearError && e.code === "INFERENCE_REJECTED") {
              throw new KlearError("WEIGHT_SYNC_UNSUPPORTED", `vLLM ${route}: ${e.message}`, fix, {
                cause: e,
              });
            }
            throw e;
          }
        };
        await step("POST", "/pause?mode=abort");
        try {
          await step("POST", "/collective_rpc", {
            method: "reload_weights",
            kwargs: { weights_path: path },
          });
          await step("POST", "/reset_prefix_cache");
          await step("POST", "/update_weight_version", { new_version: version });
        } finally {
          await step("POST", "/resume");
        }
      }),
    );
  }
}

/** SGLang: `/update_weights_from_disk` loads a new folder in place (it pauses generation itself). */
export class SglangWeightSync implements WeightSync {
  readonly kind = "sglang" as const;
  constructor(private readonly client: OpenAIClient) {}

  async load(path: string, version: string): Promise<void> {
    await Promise.all(
      this.client.endpointUrls.map(async (_url, i) => {
        const answer = await this.client.admin(i, "POST", "/update_weights_from_disk", {
          model_path: path,
          weight_version: version,
          abort_all_requests: true,
        });
        checkAdminAnswer(
          answer,
          "SGLang /update_weights_from_disk",
          "check that the folder is readable by the server and matches its architecture",
        );
        if ((answer as { success?: boolean } | null)?.success !== true) {
          throw new KlearError(
            "WEIGHT_SYNC_FAILED",
            `SGLang /update_weights_from_disk did not report success: ${JSON.stringify(answer)}`,
            "check the server log",
          );
        }
      }),
    );
  }
}

export interface RestartWeightSyncOptions {
  /** Shell command that (re)starts the server(s) on $KLEAR_WEIGHTS_DIR and returns (e.g. a systemd/kubectl call). */
  command: string;
  /** How long the servers may take to answer /health again (default 600 000 ms). */
  readyTimeoutMs?: number;
}

/** The last resort: a configured command restarts the server on the new folder; klear waits for it. */
export class RestartWeightSync implements WeightSync {
  readonly kind = "restart" as const;
  constructor(
    private readonly client: OpenAIClient,
    private readonly opts: RestartWeightSyncOptions,
  ) {}

  async load(path: string, version: string): Promise<void> {
    const code = await new Promise<number | null>((done, fail) => {
      const child = spawn("bash", ["-c", this.opts.command], {
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, KLEAR_WEIGHTS_DIR: path, KLEAR_WEIGHTS_VERSION: version },
      });
      child.on("error", fail);
      child.on("exit", done);
    });
    if (code !== 0) {
      throw new KlearError(
        "WEIGHT_SYNC_FAILED",
        `restart command exited with ${code}: ${this.opts.command}`,
        "fix rollout.restartCommand; it gets the new folder in $KLEAR_WEIGHTS_DIR",
      );
    }
    await waitForServers(this.client.endpointUrls, { timeoutMs: this.opts.readyTimeoutMs ?? 600_000 });
  }
}

export function createWeightSync(
  kind: WeightSyncKind,
  client: OpenAIClient,
  restart?: RestartWeightSyncOptions,
): WeightSync {
  if (kind === "vllm") return new VllmWeightSync(client);
  if (kind === "sglang") return new SglangWeightSync(client);
  if (kind === "restart") {
    if (!restart?.command) {
      throw new ConfigError("weight sync restart needs a command", "set rollout.restartCommand");
    }
    return new RestartWeightSync(client, restart);
  }
  throw new ConfigError(`unknown weight sync "${kind}"`, `use one of ${WEIGHT_SYNC_KINDS.join(", ")}`);
}
