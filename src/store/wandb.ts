import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { WandbSectionSchema, wandbApiKey, wandbTarget } from "./wandb-config.js";
import { type WandbLoggerOptions, WandbRunLogger } from "./wandb-logger.js";

/**
 * W&B logging per run directory (one logger per directory and process): `resumeOrCreateRun` opens it
 * from the run's config, `appendMetrics` feeds it, and the process's end (or `finishRunLogging`) completes
 * it. The sending itself is `WandbRunLogger` (wandb-logger.ts); docs/logging.md.
 */

export { WANDB_STATE_FILE, type WandbLoggerOptions, WandbRunLogger } from "./wandb-logger.js";

function readConfig(dir: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

const loggers = new Map<string, WandbRunLogger | null>();
let exitHookInstalled = false;

/**
 * The enclosing run of a demo's or experiment's inner run (a folder up to 3 levels up holding config.json):
 * inner runs are named OUTER/inner and grouped under OUTER.
 */
function naming(dir: string, name: string, group: string): { displayName: string; group: string } {
  let up = dir;
  for (let level = 0; level < 3 && up !== dirname(up); level++) {
    up = dirname(up);
    if (existsSync(join(up, "config.json"))) {
      const outer = name || basename(up);
      return { displayName: `${outer}/${relative(up, dir)}`, group: group || outer };
    }
  }
  return { displayName: name || basename(dir), group };
}

/**
 * Opens W&B logging for the run in `dir` if its config's `wandb` section asks for it (once per process;
 * `appendMetrics` and `resumeOrCreateRun` call it). Returns the logger, or null when W&B is off.
 */
export function openRunLogging(
  dir: string,
  config: unknown = readConfig(dir),
  opts: WandbLoggerOptions = {},
): WandbRunLogger | null {
  const key = resolve(dir);
  if (loggers.has(key)) return loggers.get(key) ?? null;
  let logger: WandbRunLogger | null = null;
  try {
    const raw = (config as { wandb?: unknown } | null)?.wandb;
    const section = raw === undefined ? null : WandbSectionSchema.safeParse(raw);
    const target = section?.success ? wandbTarget(section.data) : null;
    if (target && section?.success) {
      const apiKey = wandbApiKey(target.baseUrl);
      if (!apiKey) {
        (opts.warn ?? ((l: string) => console.warn(`klear: ${l}`)))(
          `W&B: wandb.project is "${target.project}" but no API key was found; set WANDB_API_KEY (or run \`wandb login\`). Not logging to W&B.`,
        );
      } else {
        const names = naming(key, section.data.name, section.data.group);
        logger = new WandbRunLogger(
          key,
          target,
          apiKey,
          { ...names, config: config as Record<string, unknown> },
          opts,
        );
        if (opts.replay) logger.replay(opts.replay());
        installExitHook();
      }
    }
  } catch (e) {
    console.warn(`klear: W&B: not logging (${(e as Error).message})`);
    logger = null;
  }
  loggers.set(key, logger);
  return logger;
}

/** Hands one metrics record of the run in `dir` to its W&B logger, if it has one. */
export function logRunMetrics(dir: string, record: { step: number } & Record<string, unknown>): void {
  openRunLogging(dir)?.log(record);
}

/**
 * Finishes the W&B runs this process logs (all, or the one of `dir`), each bounded by its flushSeconds.
 * Runs by itself when the process is about to exit; a caller may call it earlier to end a W&B run at once.
 */
export async function finishRunLogging(
  dir?: string,
  exitCode = Number(process.exitCode ?? 0),
): Promise<void> {
  const keys = dir === undefined ? [...loggers.keys()] : [resolve(dir)];
  const open = keys.map((k) => [k, loggers.get(k)] as const);
  for (const [k] of open) loggers.delete(k);
  await Promise.all(open.map(([, l]) => l?.finish(exitCode)));
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // beforeExit fires when nothing is left to do (training over); the flush's requests then keep the
  // process alive until they finish or flushSeconds pass.
  process.on("beforeExit", () => {
    if ([...loggers.values()].some((l) => l !== null)) void finishRunLogging();
  });
}
