import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";

/**
 * The `wandb` section every run command embeds (`klear rl`, `klear sft`, `klear demo`): Weights & Biases
 * logging of the same rows metrics.jsonl gets. Off unless `project` is set; the API key never sits in a
 * config (it comes from $WANDB_API_KEY or the ~/.netrc entry `wandb login` writes). docs/logging.md.
 */
export const WandbSectionSchema = z
  .strictObject({
    project: z.string().default("").describe("W&B project to log to; empty = W&B logging off"),
    entity: z
      .string()
      .default("")
      .describe("W&B user or team; empty = $WANDB_ENTITY, else the API key's default entity"),
    name: z
      .string()
      .default("")
      .describe(
        "display name; empty = the run folder's name (a demo's or experiment's inner runs: OUTER/inner)",
      ),
    group: z
      .string()
      .default("")
      .describe("W&B group; empty = the enclosing run's name for a demo's or experiment's inner runs"),
    tags: z.array(z.string()).default([]).describe("W&B tags of the run"),
    baseUrl: z
      .string()
      .default("")
      .describe("W&B server; empty = $WANDB_BASE_URL, else https://api.wandb.ai"),
    mode: z
      .enum(["online", "off"])
      .default("online")
      .describe("off sends nothing even with a project (WANDB_MODE=disabled or offline does the same)"),
    flushSeconds: z
      .number()
      .positive()
      .default(30)
      .describe("longest wait at the end of the process for rows W&B has not taken yet"),
  })
  .prefault({})
  .describe("Weights & Biases logging (key: $WANDB_API_KEY or ~/.netrc; docs/logging.md)");

export type WandbSection = z.infer<typeof WandbSectionSchema>;

export const DEFAULT_WANDB_BASE_URL = "https://api.wandb.ai";

/** What a run logs to, with the environment applied; null when W&B logging is off. */
export interface WandbTarget {
  baseUrl: string;
  project: string;
  /** Empty: the key's default entity (the server answers with it). */
  entity: string;
  tags: string[];
  flushSeconds: number;
}

export function wandbTarget(section: WandbSection, env: NodeJS.ProcessEnv = process.env): WandbTarget | null {
  if (section.project === "" || section.mode === "off") return null;
  const envMode = (env.WANDB_MODE ?? "").toLowerCase();
  if (envMode === "disabled" || envMode === "offline" || envMode === "dryrun") return null;
  return {
    baseUrl: (section.baseUrl || env.WANDB_BASE_URL || DEFAULT_WANDB_BASE_URL).replace(/\/+$/, ""),
    project: section.project,
    entity: section.entity || env.WANDB_ENTITY || "",
    tags: section.tags,
    flushSeconds: section.flushSeconds,
  };
}

/**
 * The API key: $WANDB_API_KEY, else the password of the server's host in $NETRC or ~/.netrc (where
 * `wandb login` keeps it). Read when a run opens; klear never writes or prints it.
 */
export function wandbApiKey(baseUrl: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.WANDB_API_KEY) return env.WANDB_API_KEY;
  let host: string;
  try {
    host = new URL(baseUrl).hostname;
  } catch {
    return "";
  }
  let text: string;
  try {
    text = readFileSync(env.NETRC || join(homedir(), ".netrc"), "utf8");
  } catch {
    return "";
  }
  const words = text.split(/\s+/).filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    if (words[i] !== "machine" || words[i + 1] !== host) continue;
    for (let j = i + 2; j < words.length && words[j] !== "machine"; j += 2) {
      if (words[j] === "password") return words[j + 1] ?? "";
    }
  }
  return "";
}
