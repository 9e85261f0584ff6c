import { z } from "zod";
import { ConfigError } from "../util/errors.js";
import { WEIGHT_SYNC_KINDS } from "./handoff.js";
import { SERVER_FLAVORS } from "./server-generator.js";

/**
 * The `rollout.server` section of a run config (used by `klear rl` with `rollout.backend: "server"`):
 * where the inference server is, how requests are made, how weights reach it and how strictly what it
 * serves is checked. Its fields are `ServerRolloutOptions` with every default written down.
 */
export const RolloutServerConfigSchema = z
  .strictObject({
    endpoints: z
      .preprocess(
        (v) => (typeof v === "string" ? v.split(",").filter((s) => s.trim() !== "") : v),
        z.array(z.string()),
      )
      .default([])
      .describe(
        "server base URLs, comma-separated (e.g. http://127.0.0.1:8000); requests go to the least loaded",
      ),
    model: z.string().default("klear-policy").describe("the served model name (vLLM --served-model-name)"),
    apiKey: z.string().default("").describe("sent as Authorization: Bearer … when set"),
    flavor: z
      .enum(SERVER_FLAVORS)
      .default("vllm")
      .describe("vllm: /v1/completions with token ids; sglang: /generate"),
    concurrency: z.number().int().positive().default(32).describe("requests in flight over all endpoints"),
    timeoutMs: z.number().int().positive().default(600_000).describe("per-attempt request time-out"),
    maxRetries: z
      .number()
      .int()
      .min(0)
      .default(60)
      .describe("retries (jittered backoff, ≤ 30 s apart) on 5xx, time-outs, dropped connections"),
    weightSync: z
      .enum(WEIGHT_SYNC_KINDS)
      .nullable()
      .default(null)
      .describe(
        "how new weights reach the server: vllm reload, sglang update_weights_from_disk, restart; null = flavor's own",
      ),
    restartCommand: z
      .string()
      .default("")
      .describe("weightSync restart: shell command that restarts the server on $KLEAR_WEIGHTS_DIR"),
    syncEvery: z
      .number()
      .int()
      .positive()
      .default(1)
      .describe("hand the weights over every k steps (1 = on-policy)"),
    maxOffPolicySteps: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "steps rollouts may lag the trainer (must be ≥ syncEvery − 1, + 1 with overlap; 0 = refuse stale rollouts)",
      ),
    overlap: z
      .boolean()
      .default(false)
      .describe(
        "sample step k+1 on the server while step k's update runs (one step stale, TIS-corrected; needs maxOffPolicySteps ≥ syncEvery)",
      ),
    weightsDir: z
      .string()
      .default("")
      .describe("folder of the versioned checkpoints the server loads; empty = RUN/server-weights"),
    keepVersions: z.number().int().positive().default(2).describe("newest versions kept on disk"),
    weightsDtype: z
      .enum(["float32", "bfloat16"])
      .default("float32")
      .describe("dtype of the handed-over checkpoint"),
    versionTolerance: z
      .number()
      .positive()
      .nullable()
      .default(1e-3)
      .describe(
        "max |Δ log p| on the probe between server and trainer, before and after each step samples; null = no check",
      ),
    tisCap: z
      .number()
      .positive()
      .nullable()
      .default(2)
      .describe(
        "truncated IS cap used when loss.tisCap is null (server rollouts come from another engine); null = off",
      ),
    serverCommand: z
      .string()
      .default("")
      .describe(
        "shell command klear runs, waits for (/health) and stops with the run; empty = already running",
      ),
    serverReadyTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(600_000)
      .describe("how long the server may take to start"),
  })
  .prefault({})
  .describe("rollout.backend server: the inference server");

export type RolloutServerConfig = z.infer<typeof RolloutServerConfigSchema>;

export const ROLLOUT_BACKENDS = ["local", "server"] as const;

/** The lag a server config's rollouts can have: `syncEvery − 1` between hand-offs, one more with overlap. */
export function serverRolloutLag(c: Pick<RolloutServerConfig, "syncEvery" | "overlap">): number {
  return c.syncEvery - 1 + (c.overlap ? 1 : 0);
}

/**
 * Refuses a config whose rollouts would lag the trainer more than `maxOffPolicySteps` allows: stale
 * rollouts are only trained on when the lag is allowed explicitly (one knob for it, never raised
 * implicitly).
 */
export function checkServerRolloutLag(
  c: Pick<RolloutServerConfig, "syncEvery" | "overlap" | "maxOffPolicySteps">,
  source = "rollout.server",
): void {
  const lag = serverRolloutLag(c);
  if (lag <= c.maxOffPolicySteps) return;
  const why = [
    ...(c.syncEvery > 1
      ? [`rollout.server.syncEvery ${c.syncEvery} hands the weights over every ${c.syncEvery} steps`]
      : []),
    ...(c.overlap ? ["rollout.server.overlap samples each step while the previous one still trains"] : []),
  ].join(" and ");
  throw new ConfigError(
    `${source}: ${why}, so rollouts come from policies up to ${lag} step(s) old, but rollout.server.maxOffPolicySteps is ${c.maxOffPolicySteps}`,
    `set rollout.server.maxOffPolicySteps=${lag} to allow that lag${c.overlap ? " (overlap's one step is corrected by truncated IS, rollout.server.tisCap)" : ""}, or ${c.overlap ? "turn rollout.server.overlap off" : "set syncEvery 1"}`,
  );
}
