import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ConfigError, KlearError } from "../../util/errors.js";
import { type MathVerdict, type VerifyMathOptions, verifyMath } from "./verify.js";

export interface MathVerifierPoolOptions {
  /** Worker threads (default: available cores, at most 8). 0 verifies in this thread. */
  workers?: number;
  /** Budget per check in ms (default 1000); a call's own `opts.timeoutMs` overrides it. */
  timeoutMs?: number;
  /**
   * How long a busy worker may stay silent before it is deemed wedged, replaced, and its check reported as
   * timed out (default: 3 × the check's budget + 2 s, so the in-worker budget always fires first).
   */
  watchdogMs?: number;
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

interface Job {
  id: number;
  gold: string;
  response: string;
  opts: VerifyMathOptions;
  watchdogMs: number;
  resolve: (verdict: MathVerdict) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  /** The worker has loaded its script; jobs (and so watchdogs) start only then, so a slow start is never a timeout. */
  ready: boolean;
  job: Job | null;
  timer: NodeJS.Timeout | null;
  /** Terminated on purpose (replaced or closed): its later error/exit events mean nothing. */
  retired: boolean;
}

const timedOutVerdict = (why: string): MathVerdict => ({
  correct: false,
  extractedGold: null,
  extractedPred: null,
  reason: "timed out",
  timedOut: true,
  error: why,
});

// A crashed check is reported as an error, never as a plain "wrong".
const crashVerdict = (why: string): MathVerdict => ({
  correct: false,
  extractedGold: null,
  extractedPred: null,
  reason: "internal error",
  error: `worker crashed: ${why}`,
});

/**
 * Persistent worker threads that run `verifyMath` off the calling thread, so a slow check (a long truncated
 * response can take 100 ms) never stalls an event loop serving HTTP traffic, and a pathological one cannot hang
 * the caller. One check per worker at a time, queued in call order. Each check runs under its own step budget;
 * a watchdog also replaces any worker that stops answering and reports its check as timed out. Idle workers
 * are unref'd, so a pool nobody closes never keeps the process alive.
 */
export class MathVerifierPool {
  /** Worker threads; 0 means checks run inline in this thread. */
  readonly size: number;
  private readonly timeoutMs: number;
  private readonly watchdogMs: number | undefined;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;
  private broken: KlearError | null = null;

  constructor(opts: MathVerifierPoolOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 1000;
    if (!(this.timeoutMs > 0)) {
      throw new ConfigError(
        `MathVerifierPool: timeoutMs must be positive, got ${this.timeoutMs}`,
        "e.g. { timeoutMs: 1000 }",
      );
    }
    if (opts.watchdogMs !== undefined && !(opts.watchdogMs > 0)) {
      throw new ConfigError(
        `MathVerifierPool: watchdogMs must be positive, got ${opts.watchdogMs}`,
        "leave it out for the default (3 × timeoutMs + 2000)",
      );
    }
    this.watchdogMs = opts.watchdogMs;
    this.size = Math.max(0, Math.floor(opts.workers ?? Math.min(8, availableParallelism())));
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
  }

  /** Verifies one answer; resolves with the verdict (timed out or errored checks included), in whatever order checks finish. */
  async verify(gold: string, response: string, opts?: VerifyMathOptions): Promise<MathVerdict> {
    if (this.closed) {
      throw new KlearError(
        "MATH_POOL_CLOSED",
        "MathVerifierPool: verify() called after close()",
        "create a new pool, or close it only after the last check",
      );
    }
    if (this.broken) throw this.broken;
    const merged: VerifyMathOptions = { timeoutMs: this.timeoutMs, ...opts };
    if (this.size === 0) return verifyMath(gold, response, merged);
    const budget =
      merged.timeoutMs !== undefined && merged.timeoutMs > 0 && Number.isFinite(merged.timeoutMs)
        ? merged.timeoutMs
        : this.timeoutMs;
    return new Promise<MathVerdict>((resolve, reject) => {
      this.queue.push({
        id: this.nextId++,
        gold: String(gold),
        response: String(response),
        opts: merged,
        watchdogMs: this.watchdogMs ?? budget * 3 + 2000,
        resolve,
        reject,
      });
      this.pump();
    });
  }

  /** Terminates every worker; checks still queued or running are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new KlearError(
      "MATH_POOL_CLOSED",
      "MathVerifierPool: closed before this check finished",
      "await every verify() before close()",
    );
    const slots = this.slots.splice(0);
    for (const slot of slots) this.retire(slot)?.reject(error);
    for (const job of this.queue.splice(0)) job.reject(error);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const slot: Slot = { worker: newWorker(), ready: false, job: null, timer: null, retired: false };
    slot.worker.unref();
    slot.worker.on("message", (msg: { ready?: true; id?: number; result?: MathVerdict }) => {
      if (slot.retired) return;
      if (msg.ready) {
        slot.ready = true;
        this.pump();
        return;
      }
      const job = slot.job;
      if (!job || msg.id !== job.id || !msg.result) return;
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = null;
      slot.job = null;
      job.resolve(msg.result);
      this.pump();
    });
    slot.worker.on("error", (e) => {
      if (slot.retired) return;
      if (!slot.ready) {
        this.fail(
          new KlearError(
            "MATH_WORKER_FAILED",
            `MathVerifierPool: a worker thread failed to start (${e.message})`,
            "use { workers: 0 } to verify in this thread, and report the error",
            { cause: e },
          ),
        );
        return;
      }
      this.replace(slot, crashVerdict(e.message));
    });
    slot.worker.on("exit", (code) => {
      if (slot.retired) return;
      if (!slot.ready) {
        this.fail(
          new KlearError(
            "MATH_WORKER_FAILED",
            `MathVerifierPool: a worker thread exited (code ${code}) before it loaded`,
            "use { workers: 0 } to verify in this thread, and report the error",
          ),
        );
        return;
      }
      this.replace(slot, crashVerdict(`exited with code ${code}`));
    });
    return slot;
  }

  /** Marks the slot as terminated on purpose; returns the job it was running, if any. */
  private retire(slot: Slot): Job | null {
    slot.retired = true;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    const job = slot.job;
    slot.job = null;
    void slot.worker.terminate();
    return job;
  }

  /** A worker crashed or wedged: answer its check with `verdict` and start a fresh worker in its place. */
  private replace(slot: Slot, verdict: MathVerdict): void {
    const job = this.retire(slot);
    const i = this.slots.indexOf(slot);
    if (i >= 0) {
      if (this.closed || this.broken) this.slots.splice(i, 1);
      else this.slots[i] = this.spawn();
    }
    job?.resolve(verdict);
    this.pump();
  }

  /** Workers cannot start here: every pending and later check rejects with the reason. */
  private fail(error: KlearError): void {
    if (this.broken) return;
    this.broken = error;
    for (const slot of this.slots.splice(0)) this.retire(slot)?.reject(error);
    for (const job of this.queue.splice(0)) job.reject(error);
  }

  private pump(): void {
    if (this.closed || this.broken) return;
    for (const slot of this.slots) {
      if (!this.queue.length) break;
      if (!slot.ready || slot.job) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.timer = setTimeout(
        () => this.replace(slot, timedOutVerdict(`worker did not answer within ${job.watchdogMs} ms`)),
        job.watchdogMs,
      );
      slot.worker.postMessage({ id: job.id, gold: job.gold, response: job.response, opts: job.opts });
    }
    // A worker holds the process open only while a check depends on it (running, or waiting for it to load).
    for (const slot of this.slots) {
      if (slot.job || (!slot.ready && this.queue.length)) slot.worker.ref();
      else slot.worker.unref();
    }
  }
}
