import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ConfigError, KlearError } from "../../util/errors.js";
import { type MathVerdict, type VerifyMathOptions, verifyMath } from "./verify.js";

export interface MathPair {
  gold: string;
  response: string;
  opts?: VerifyMathOptions;
}

export interface VerifyMathBatchOptions {
  /** Budget per check in ms (default 1000). A check past it is reported as timed out. */
  timeoutMs?: number;
  /** Worker threads (default: available cores, at most 8). 0 runs in this thread. */
  workers?: number;
  /** Called after each finished check (for progress bars). */
  onResult?: (index: number, result: MathVerdict) => void;
}

/** The worker script next to this module: worker.ts under tsx (which the worker must load too), worker.js once compiled. */
function newWorker(): Worker {
  if (import.meta.url.endsWith(".ts")) {
    // Node 20 does not apply --import hooks to a worker's entry module, so register tsx first.
    const tsx = import.meta.resolve("tsx/esm/api");
    const entry = new URL("./worker.ts", import.meta.url).href;
    const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(boot, { eval: true });
  }
  return new Worker(new URL("./worker.js", import.meta.url));
}

const timedOut = (why: string): MathVerdict => ({
  correct: false,
  extractedGold: null,
  extractedPred: null,
  reason: "timed out",
  timedOut: true,
  error: why,
});

/**
 * Verifies many pairs on a pool of worker threads. Each check runs under its own step budget; a
 * watchdog also terminates and replaces any worker that stops answering (so even a bug cannot hang
 * the batch), and every worker is terminated before the promise settles.
 */
export async function verifyMathBatch(
  pairs: MathPair[],
  opts: VerifyMathBatchOptions = {},
): Promise<MathVerdict[]> {
  const timeoutMs = opts.timeoutMs ?? 1000;
  if (!(timeoutMs > 0)) {
    throw new ConfigError(
      `verifyMathBatch: timeoutMs must be positive, got ${timeoutMs}`,
      "e.g. { timeoutMs: 1000 }",
    );
  }
  const nWorkers = Math.min(opts.workers ?? Math.min(8, availableParallelism()), pairs.length);
  const results = new Array<MathVerdict>(pairs.length);
  if (nWorkers <= 0 || pairs.length === 0) {
    pairs.forEach((p, i) => {
      results[i] = verifyMath(p.gold, p.response, { timeoutMs, ...p.opts });
      opts.onResult?.(i, results[i]);
    });
    return results;
  }
  // Generous: the in-worker budget should always fire first; this only catches a wedged worker.
  const watchdogMs = timeoutMs * 3 + 2000;
  let next = 0;
  const workers = new Set<Worker>();

  await new Promise<void>((resolve, reject) => {
    let remaining = pairs.length;
    let settled = false;
    const finish = (i: number, r: MathVerdict) => {
      results[i] = r;
      opts.onResult?.(i, r);
      if (--remaining === 0) {
        settled = true;
        resolve();
      }
    };
    const retire = (w: Worker) => {
      workers.delete(w);
      void w.terminate();
    };
    const spawn = () => {
      const w = newWorker();
      workers.add(w);
      let ready = false;
      let current = -1;
      let timer: NodeJS.Timeout | null = null;
      const feed = () => {
        if (settled || next >= pairs.length) {
          current = -1;
          retire(w);
          return;
        }
        current = next++;
        const p = pairs[current];
        timer = setTimeout(() => {
          // Wedged: report the check as timed out and replace the worker.
          const i = current;
          current = -1;
          retire(w);
          finish(i, timedOut(`worker did not answer within ${watchdogMs} ms`));
          if (!settled && next < pairs.length) spawn();
        }, watchdogMs);
        w.postMessage({
          id: current,
          gold: String(p.gold),
          response: String(p.response),
          opts: { timeoutMs, ...p.opts },
        });
      };
      // The watchdog starts only once the worker has loaded, so a slow start is never a timeout.
      w.on("message", (msg: { ready?: true; id?: number; result?: MathVerdict }) => {
        if (msg.ready) {
          ready = true;
          feed();
          return;
        }
        if (msg.id !== current || !msg.result) return;
        if (timer) clearTimeout(timer);
        finish(current, msg.result);
        feed();
      });
      w.on("error", (e) => {
        if (timer) clearTimeout(timer);
        retire(w);
        if (settled) return;
        if (!ready) {
          settled = true;
          reject(
            new KlearError(
              "MATH_WORKER_FAILED",
              `verifyMathBatch: a worker thread failed to start (${e.message})`,
              "run with { workers: 0 } to verify in this thread, and report the error",
              { cause: e },
            ),
          );
          return;
        }
        // A crashed check is reported as an error, never as a plain "wrong"; the rest carry on.
        if (current >= 0) {
          const i = current;
          current = -1;
          finish(i, {
            correct: false,
            extractedGold: null,
            extractedPred: null,
            reason: "internal error",
            error: `worker crashed: ${e.message}`,
          });
        }
        if (!settled && next < pairs.length) spawn();
      });
    };
    for (let i = 0; i < nWorkers; i++) spawn();
  }).finally(async () => {
    await Promise.all([...workers].map((w) => w.terminate()));
    workers.clear();
  });
  return results;
}
