import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { KlearError } from "../util/errors.js";
import { readMetrics, runPaths } from "./run.js";
import { RunDatabase, type SampleRecord } from "./samples.js";

/**
 * Everything a report needs from run directories, read without changing them: a run still in progress
 * (metrics being appended, SQLite being written in WAL mode) reads as what exists so far.
 */

export type RunKind = "sft" | "rl" | "demo" | "eval" | "experiment" | "run";

export interface LoadedRun {
  /** Label: the path relative to the folder the user named (the folder's own name for itself). */
  name: string;
  dir: string;
  kind: RunKind;
  config: unknown;
  metrics: ({ step: number } & Record<string, unknown>)[];
  /** The latest rollouts and all eval/printed samples, capped (see `loadRuns`). */
  samples: SampleRecord[];
  /** Path of an eval run's results.json, when the folder is one. */
  evalResults: string | null;
  /** No result.json / results.json yet: the run is going, or stopped before its end. */
  inProgress: boolean;
}

export interface LoadRunsOptions {
  /** Samples kept per run and kind (default 24). */
  samplesPerKind?: number;
  /** How deep to look for runs inside a folder that is not itself one (default 3). */
  maxDepth?: number;
}

function isRunDir(dir: string): boolean {
  return existsSync(join(dir, "config.json")) || existsSync(join(dir, "metrics.jsonl")) || isEvalDir(dir);
}

function isEvalDir(dir: string): boolean {
  return existsSync(join(dir, "results.json")) || existsSync(join(dir, "results.sqlite"));
}

function subdirs(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n !== "checkpoints" && !n.startsWith("."))
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isDirectory())
    .sort();
}

/** Run folders at or below `root` (a run can hold runs of its own: the demo's rl/, an experiment's seeds). */
export function discoverRuns(root: string, maxDepth = 3): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (isRunDir(dir)) out.push(dir);
    if (depth >= maxDepth) return;
    for (const d of subdirs(dir)) walk(d, depth + 1);
  };
  walk(resolve(root), 0);
  return out;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}

function kindOf(dir: string, config: unknown, metrics: Record<string, unknown>[]): RunKind {
  const declared = (config as { kind?: unknown } | null)?.kind;
  if (typeof declared === "string" && ["sft", "rl", "demo", "eval", "experiment"].includes(declared)) {
    return declared as RunKind;
  }
  if (isEvalDir(dir)) return "eval";
  if (existsSync(join(dir, "rl", "config.json"))) return "demo";
  if (metrics.some((m) => "rewardMean" in m)) return "rl";
  if (metrics.some((m) => "loss" in m)) return "sft";
  return "run";
}

function readSamples(dir: string, perKind: number): SampleRecord[] {
  const path = runPaths(dir).database;
  if (!existsSync(path)) return [];
  let db: RunDatabase;
  try {
    db = RunDatabase.open(path);
  } catch {
    return []; // a report never fails for want of samples
  }
  try {
    const all = db.samples();
    const out: SampleRecord[] = [];
    const rollouts = all.filter((s) => s.kind === "rollout");
    const lastStep = rollouts.reduce((m, s) => Math.max(m, s.step), Number.NEGATIVE_INFINITY);
    out.push(...rollouts.filter((s) => s.step === lastStep).slice(0, perKind));
    for (const kind of ["eval", "sample"] as const) {
      const ofKind = all.filter((s) => s.kind === kind);
      const latest = ofKind.reduce((m, s) => Math.max(m, s.step), Number.NEGATIVE_INFINITY);
      out.push(...ofKind.filter((s) => s.step === latest).slice(0, perKind));
    }
    return out;
  } finally {
    db.close();
  }
}

/** Loads every run at or below each folder given, in the order given. */
export function loadRuns(folders: readonly string[], opts: LoadRunsOptions = {}): LoadedRun[] {
  const perKind = opts.samplesPerKind ?? 24;
  const runs: LoadedRun[] = [];
  for (const folder of folders) {
    const root = resolve(folder);
    if (!existsSync(root) || !statSync(root).isDirectory()) {
      throw new KlearError(
        "RUN_NOT_FOUND",
        `${folder} is not a folder`,
        "pass run folders written by klear sft, rl, demo, experiment or eval (e.g. `klear report runs/demo`)",
      );
    }
    const dirs = discoverRuns(root, opts.maxDepth ?? 3);
    if (dirs.length === 0) {
      throw new KlearError(
        "RUN_NOT_FOUND",
        `${folder} holds no klear run (no config.json, metrics.jsonl or results.json at most ${opts.maxDepth ?? 3} levels down)`,
        "pass a folder that klear sft, rl, demo, experiment or eval wrote (its --out)",
      );
    }
    for (const dir of dirs) {
      const config = readJson(join(dir, "config.json"));
      const metrics = readMetrics(runPaths(dir));
      const rel = relative(root, dir);
      const evalResults = existsSync(join(dir, "results.json")) ? join(dir, "results.json") : null;
      runs.push({
        name: rel === "" ? basename(root) : `${basename(root)}/${rel}`,
        dir,
        kind: kindOf(dir, config, metrics),
        config,
        metrics,
        samples: readSamples(dir, perKind),
        evalResults,
        inProgress: !existsSync(join(dir, "result.json")) && evalResults === null,
      });
    }
  }
  return runs;
}
