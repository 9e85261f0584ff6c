import { Worker } from "node:worker_threads";
import type { MathVerdict } from "../rewards/math/index.js";

/** The worker script beside this module: math-worker.ts under tsx (registered in the worker), .js once built. */
function newWorker(): Worker {
  if (import.meta.url.endsWith(".ts")) {
    // Node 20 does not apply --import hooks to a worker's entry module, so register tsx first.
    const tsx = import.meta.resolve("tsx/esm/api");
    const entry = new URL("./math-worker.ts", import.meta.url).href;
    const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(boot, { eval: true });
  }
  return new Worker(new URL("./math-worker.js", import.meta.url));
}

interface Job {
  id: number;
  gold: string;
  response: string;
  resolve: (v: MathVerdict) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  timer: NodeJS.Timeout | null;
}

/**
 * Persistent worker threads that verify math answers off the main thread, so a slow check (a long
 * truncated response can take 100 ms) never stalls the HTTP traffic and the store. One check per
 * worker at a time; a worker that stops answering is replaced and its check reported as timed out.
 * Idle workers are unref'd, so an unclosed pool never keeps the process alive.
 */
export class MathScorePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;

  constructor(
    readonly workers: number,
    private readonly timeoutMs: number,
  ) {
    for (let i = 0; i < workers; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const slot: Slot = { worker: newWorker(), job: null, timer: null };
    slot.worker.unref();
    slot.worker.on("message", (msg: { id: number; result: MathVerdict }) => {
      const job = slot.job;
      if (!job || job.id !== msg.id) return;
      this.settle(slot, msg.result);
    });
    slot.worker.on("error", (e) => {
      this.replace(slot, {
        correct: false,
        extractedGold: null,
        extractedPred: null,
        reason: "worker error",
        error: e.message,
      });
    });
    return slot;
  }

  private settle(slot: Slot, verdict: MathVerdict): void {
    const job = slot.job;
    if (slot.timer) clearTimeout(slot.timer);
    slot.job = null;
    slot.timer = null;
    slot.worker.unref();
    job?.resolve(verdict);
    this.pump();
  }

  private replace(slot: Slot, verdict: MathVerdict): void {
    const i = this.slots.indexOf(slot);
    void slot.worker.terminate();
    const job = slot.job;
    if (slot.timer) clearTimeout(slot.timer);
    slot.job = null;
    if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
    job?.resolve(verdict);
    this.pump();
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (!this.queue.length) return;
      if (slot.job) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      // Generous: the in-worker budget always fires first; this only catches a wedged worker.
      slot.timer = setTimeout(
        () =>
          this.replace(slot, {
            correct: false,
            extractedGold: null,
            extractedPred: null,
            reason: "timed out",
            timedOut: true,
            error: "verifier worker did not answer",
          }),
        this.timeoutMs * 3 + 2000,
      );
      slot.worker.postMessage({
        id: job.id,
        gold: job.gold,
        response: job.response,
        timeoutMs: this.timeoutMs,
      });
    }
  }

  verify(gold: string, response: string): Promise<MathVerdict> {
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextId++, gold, response, resolve });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
