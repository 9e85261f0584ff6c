/**
 * The `backend` section of a run config (documented defaults, validated on load like every klear config):
 * `kind: "local"` (the engine on this machine, the default) or `kind: "tinker"` with the server settings.
 * A run command embeds `BackendSectionSchema` as its `backend` field and hands
 * `trainingBackendFromConfig(config.backend)` to `runRl`.
 */
import { z } from "zod";
import { localBackend } from "../local.js";
import type { TrainingBackend } from "../types.js";
import { TINKER_LOSS_CONVENTIONS } from "./gradients.js";
import { type TinkerBackendSettings, tinkerBackend } from "./trainer.js";

export const TinkerSettingsSchema = z.strictObject({
  baseUrl: z
    .string()
    .default("")
    .describe("Tinker server root, e.g. http://127.0.0.1:8000; empty = $TINKER_BASE_URL"),
  baseModel: z
    .string()
    .default("")
    .describe(
      "the server's name for the base model (hosted: e.g. Qwen/Qwen3-8B); empty = the init checkpoint's absolute path, as SkyRL serves a local folder",
    ),
  loraRank: z
    .number()
    .int()
    .positive()
    .default(8)
    .describe("LoRA rank (the server's max_lora_rank bounds it)"),
  loraSeed: z
    .number()
    .int()
    .nullable()
    .default(null)
    .describe("LoRA initialisation seed; null = the server picks"),
  trainAttn: z
    .boolean()
    .default(true)
    .describe(
      "LoRA on attention (hosted Tinker honours the target flags; SkyRL 0.4.0 adapts attention and MLP always)",
    ),
  trainMlp: z.boolean().default(true).describe("LoRA on the MLP"),
  trainUnembed: z.boolean().default(true).describe("LoRA on the output layer"),
  lossConvention: z
    .enum(TINKER_LOSS_CONVENTIONS)
    .default("skyrl-jax")
    .describe(
      "how the server reduces its losses (docs/scale.md): skyrl-jax = SkyRL's JAX backend, sum = hosted Tinker",
    ),
  samplingConcurrency: z.number().int().positive().default(8).describe("prompts sampled concurrently"),
  requestTimeoutMs: z
    .number()
    .int()
    .positive()
    .default(60_000)
    .describe("one HTTP call's limit (a long-poll re-polls after it)"),
  maxRetries: z.number().int().min(0).default(8).describe("retries of one call on 429/5xx/connection errors"),
  futureTimeoutMs: z
    .number()
    .int()
    .positive()
    .default(1_800_000)
    .describe("most time one server request may take"),
});
export type TinkerSettingsConfig = z.infer<typeof TinkerSettingsSchema>;

export const BackendSectionSchema = z
  .strictObject({
    kind: z
      .enum(["local", "tinker"])
      .default("local")
      .describe("where the policy trains: local = this machine's engine, tinker = a Tinker API server"),
    tinker: TinkerSettingsSchema.prefault({}).describe("the Tinker server, when kind = tinker"),
  })
  .prefault({})
  .describe("the training backend");
export type BackendSectionConfig = z.infer<typeof BackendSectionSchema>;

export function tinkerSettingsFromConfig(c: TinkerSettingsConfig): TinkerBackendSettings {
  return {
    client: {
      ...(c.baseUrl ? { baseUrl: c.baseUrl } : {}),
      requestTimeoutMs: c.requestTimeoutMs,
      maxRetries: c.maxRetries,
      futureTimeoutMs: c.futureTimeoutMs,
    },
    ...(c.baseModel ? { baseModel: c.baseModel } : {}),
    lora: {
      rank: c.loraRank,
      ...(c.loraSeed === null ? {} : { seed: c.loraSeed }),
      trainAttn: c.trainAttn,
      trainMlp: c.trainMlp,
      trainUnembed: c.trainUnembed,
    },
    lossConvention: c.lossConvention,
    samplingConcurrency: c.samplingConcurrency,
  };
}

/** The backend a run's config asks for. */
export function trainingBackendFromConfig(section: BackendSectionConfig): TrainingBackend {
  return section.kind === "tinker" ? tinkerBackend(tinkerSettingsFromConfig(section.tinker)) : localBackend;
}
