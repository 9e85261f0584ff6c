import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, truncateSync } from "node:fs";
import { join, resolve } from "node:path";
import { atomicWriteDir, atomicWriteJsonSync } from "../util/atomic.js";
import { KlearError } from "../util/errors.js";
import { scalarsOf, tensorBoardWriter } from "./tensorboard.js";
import { logRunMetrics, openRunLogging } from "./wandb.js";

/**
 * A run directory holds everything one training job produces, so a run can be inspected, reported on
 * and resumed from its folder alone:
 *
 *   config.json            the fully resolved config (written atomically)
 *   metrics.jsonl          one JSON object per logged step, appended
 *   checkpoints/step-N/    HF-style checkpoints, each renamed into place whole (never half-written)
 *   samples.sqlite         rollouts and eval samples (see `RunDatabase`)
 */
export interface RunPaths {
  dir: string;
  config: string;
  metrics: string;
  checkpoints: string;
  database: string;
}

export function runPaths(dir: string): RunPaths {
  const abs = resolve(dir);
  return {
    dir: abs,
    config: join(abs, "config.json"),
    metrics: join(abs, "metrics.jsonl"),
    checkpoints: join(abs, "checkpoints"),
    database: join(abs, "samples.sqlite"),
  };
}

/**
 * Starts a new run in `dir` with its resolved config. Refuses a directory that already holds a run, so a
 * typo never overwrites one: resume it with `openRun` instead.
 */
export function createRun(dir: string, resolvedConfig: unknown): RunPaths {
  const paths = runPaths(dir);
  if (existsSync(paths.config)) {
    throw new KlearError(
      "RUN_EXISTS",
      `${paths.dir} already holds a run (it has config.json)`,
      "resume it (e.g. `klear demo --out DIR --resume`) or choose another output directory",
    );
  }
  atomicWriteJsonSync(paths.config, resolvedConfig);
  return paths;
}

/** Opens an existing run for resuming, returning its paths and the config it was started with. */
export function openRun<T = unknown>(dir: string): { paths: RunPaths; config: T } {
  const paths = runPaths(dir);
  if (!existsSync(paths.config)) {
    throw new KlearError(
      "RUN_NOT_FOUND",
      `${paths.dir} is not a run directory (no config.json)`,
      "pass the directory a previous run wrote (it holds config.json), or start a new run without --resume",
    );
  }
  let config: T;
  try {
    config = JSON.parse(readFileSync(paths.config, "utf8")) as T;
  } catch (e) {
    throw new KlearError(
      "RUN_CONFIG_CORRUPT",
      `${paths.config} is not valid JSON: ${(e as Error).message}`,
      "restore the file or start a new run",
      { cause: e },
    );
  }
  return { paths, config };
}

/**
 * Appends one metrics record. A single write of one line; a crash can at worst leave a torn last line,
 * which `readMetrics` ignores and `truncateMetricsAfter` removes.
 */
export function appendMetrics(paths: RunPaths, record: { step: number } & Record<string, unknown>): void {
  appendFileSync(paths.metrics, `${JSON.stringify(record)}\n`);
  // The same scalars as TensorBoard events (`tensorboard --logdir RUN`); KLEAR_TENSORBOARD=0 turns it off.
  if (process.env.KLEAR_TENSORBOARD !== "0")
    tensorBoardWriter(paths.dir).addScalars(record.step, scalarsOf(record));
  // And to W&B when the run's config has a wandb.project (buffered, sent in the background: wandb.ts).
  logRunMetrics(paths.dir, record);
}

/** All complete metrics records in order (a torn final line from a crash is skipped). */
export function readMetrics(paths: RunPaths): ({ step: number } & Record<string, unknown>)[] {
  if (!existsSync(paths.metrics)) return [];
  const out: ({ step: number } & Record<string, unknown>)[] = [];
  const lines = readFileSync(paths.metrics, "utf8").split("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      if (i === lines.length - 1) return; // torn by a crash mid-write: the record was never complete
      throw new KlearError(
        "METRICS_CORRUPT",
        `${paths.metrics}:${i + 1}: not valid JSON (${(e as Error).message})`,
        "remove that line",
      );
    }
  });
  return out;
}

/**
 * Drops metrics logged after `step` (and any torn line), so that a run resumed from the checkpoint at
 * `step` neither duplicates nor contradicts what it logs again.
 */
export function truncateMetricsAfter(paths: RunPaths, step: number): void {
  if (!existsSync(paths.metrics)) return;
  const lines = readFileSync(paths.metrics, "utf8").split("\n");
  let keepBytes = 0;
  // The last element follows the final newline: empty, or a line torn by a crash, dropped either way.
  for (const line of lines.slice(0, -1)) {
    if (line.trim() !== "") {
      let rec: { step?: unknown };
      try {
        rec = JSON.parse(line);
      } catch {
        break;
      }
      if (typeof rec?.step === "number" && rec.step > step) break;
    }
    keepBytes += Buffer.byteLength(line) + 1;
  }
  truncateSync(paths.metrics, keepBytes);
}

export function checkpointDir(paths: RunPaths, step: number): string {
  return join(paths.checkpoints, `step-${step}`);
}

/**
 * Writes the checkpoint for `step`: `write` fills a temporary directory (model, tokenizer, trainer
 * state), which is then renamed to `checkpoints/step-N` whole, so `latestCheckpoint` never returns a
 * half-written one. Returns the final path.
 */
export async function saveRunCheckpoint(
  paths: RunPaths,
  step: number,
  write: (tmpDir: string) => Promise<void>,
): Promise<string> {
  const dir = checkpointDir(paths, step);
  await atomicWriteDir(dir, write);
  return dir;
}

/** The newest complete checkpoint of a run (by step number), or null when it has none. */
export function latestCheckpoint(runDir: string): { step: number; path: string } | null {
  const all = listCheckpoints(runDir);
  return all.length === 0 ? null : all[all.length - 1];
}

/** Every complete checkpoint of a run, oldest first. Temporary directories of unfinished writes are skipped. */
export function listCheckpoints(runDir: string): { step: number; path: string }[] {
  const root = runPaths(runDir).checkpoints;
  if (!existsSync(root)) return [];
  const out: { step: number; path: string }[] = [];
  for (const name of readdirSync(root)) {
    const m = /^step-(\d+)$/.exec(name);
    if (!m) continue;
    const path = join(root, name);
    if (statSync(path).isDirectory()) out.push({ step: Number(m[1]), path });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** A run opened for training: its paths, its config, and the checkpoint to resume from (null: start at step 0). */
export interface OpenedTrainingRun<C> {
  paths: RunPaths;
  config: C;
  resumeFrom: { step: number; path: string } | null;
}

/**
 * Opens the run in `out` to resume it (its saved config wins, validated by `parse`) or creates it with
 * the config `create` returns (which may throw before the directory exists, so a bad config needs no
 * cleanup). Resuming finds the latest checkpoint, if any.
 */
export function resumeOrCreateRun<C>(opts: {
  out: string;
  resume?: boolean;
  log: (line: string) => void;
  parse: (value: unknown, source: string) => C;
  create: () => C;
}): OpenedTrainingRun<C> {
  if (opts.resume) {
    const opened = openRun(opts.out);
    const config = opts.parse(opened.config, opened.paths.config);
    const resumeFrom = latestCheckpoint(opened.paths.dir);
    opts.log(
      resumeFrom
        ? `resuming ${opened.paths.dir} from step ${resumeFrom.step}`
        : `resuming ${opened.paths.dir}: no checkpoint yet, starting from step 0`,
    );
    openRunLogging(opened.paths.dir, config, { log: opts.log, replay: () => readMetrics(opened.paths) });
    return { paths: opened.paths, config, resumeFrom };
  }
  const config = opts.create();
  const paths = createRun(opts.out, config);
  opts.log(`run directory: ${paths.dir}`);
  openRunLogging(paths.dir, config, { log: opts.log });
  return { paths, config, resumeFrom: null };
}
