import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { scalarsOf } from "./tensorboard.js";
import { type FileStreamBody, WandbCallError, WandbClient } from "./wandb-client.js";
import type { WandbTarget } from "./wandb-config.js";

/**
 * Weights & Biases logging of a run directory, fed by `appendMetrics` (so `klear rl`, `klear sft` and
 * `klear demo` all log without a line of W&B code in a trainer). `log` only buffers; one background loop
 * sends, with backoff on 429 / 5xx / network errors, so W&B being down or slow never fails or slows a
 * step. A wrong key (401/403) warns once and stops. The W&B run id lives in RUN/wandb-run.json, so
 * `--resume` continues the same W&B run, after the last step the server already has.
 *
 * History follows the SDK's rule that `_step` only grows: records of one step merge into one history row
 * (sent when a later step arrives or at the end), and a record for a step W&B already has (a resumed
 * run's repeated steps, a late step-0 row) updates only the summary.
 */

export const WANDB_STATE_FILE = "wandb-run.json";
const HISTORY_FILE = "wandb-history.jsonl";
const SUMMARY_FILE = "wandb-summary.json";
const MAX_LINES_PER_REQUEST = 500;
const MAX_PENDING_LINES = 100_000;
const HEARTBEAT_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;

/** What RUN/wandb-run.json keeps (never the key). */
interface WandbState {
  id: string;
  project: string;
  entity: string;
  baseUrl: string;
  url: string;
  /** History lines and the last `_step` the server confirmed, and the runtime so far (fallbacks for resume). */
  historyLineCount: number;
  lastStep: number;
  runtime: number;
}

export interface WandbLoggerOptions {
  /** One line on where the run logs (the run's log). */
  log?: (line: string) => void;
  /** A resumed run's metrics.jsonl so far (see `WandbRunLogger.replay`). */
  replay?: () => ({ step: number } & Record<string, unknown>)[];
  /** Problems (default console.warn): a wrong key, a rejected request, rows given up at the end. */
  warn?: (line: string) => void;
  /** How long rows wait to be batched (default 2000 ms). */
  sendIntervalMs?: number;
  /** First retry delay, doubled per failure up to 30 s (default 1000 ms). */
  backoffMs?: number;
}

interface OpenRow {
  step: number;
  values: Record<string, number>;
  /** When the step's first record came (unix seconds, and seconds into the run). */
  timestamp: number;
  runtime: number;
}

export class WandbRunLogger {
  private readonly abort = new AbortController();
  private readonly client: WandbClient;
  private readonly state: WandbState;
  private readonly resumed: boolean;
  private readonly openedAt = Date.now();
  private runtimeBase = 0;
  private started = false;
  private dead = false;
  private finishing = false;
  private completed = false;
  private pumping: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private wakeSleep: (() => void) | null = null;
  private lastSentAt = Date.now();
  private open: OpenRow | null = null;
  private lastStepLogged = Number.NEGATIVE_INFINITY;
  private pending: { step: number; line: string }[] = [];
  private summary: Record<string, unknown> = {};
  private summaryDirty = false;
  private exitCode = 0;

  constructor(
    readonly dir: string,
    private readonly target: WandbTarget,
    apiKey: string,
    private readonly run: { displayName: string; group: string; config: Record<string, unknown> },
    private readonly opts: WandbLoggerOptions = {},
  ) {
    this.client = new WandbClient(target.baseUrl, apiKey, this.abort.signal);
    const saved = readState(dir);
    this.resumed = saved !== null && saved.project === target.project;
    this.state =
      saved && this.resumed
        ? saved
        : {
            id: newRunId(),
            project: target.project,
            entity: target.entity,
            baseUrl: target.baseUrl,
            url: "",
            historyLineCount: 0,
            lastStep: -1,
            runtime: 0,
          };
    this.runtimeBase = this.state.runtime;
    atomicWriteJsonSync(join(dir, WANDB_STATE_FILE), this.state);
    this.heartbeat = setInterval(() => {
      if (this.started && !this.pumping && Date.now() - this.lastSentAt >= HEARTBEAT_MS) this.kick();
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    this.kick();
  }

  /** The W&B run id (kept in RUN/wandb-run.json). */
  get runId(): string {
    return this.state.id;
  }

  /**
   * Buffers the records an earlier process of a resumed run logged but W&B may not have (a flush that
   * gave up, a crash): those after the last step W&B confirmed; the server's answer filters the rest.
   */
  replay(records: ({ step: number } & Record<string, unknown>)[]): void {
    if (!this.resumed) return;
    for (const r of records) if (r.step > this.state.lastStep) this.log(r);
  }

  /** Buffers one metrics record; never throws and never waits. */
  log(record: { step: number } & Record<string, unknown>): void {
    if (this.dead || this.finishing) return;
    const values = Object.fromEntries(scalarsOf(record));
    const now = Date.now() / 1000;
    // `_step` enters the summary with its history row (commitOpenRow): a resumed run reads it as "W&B has this step".
    Object.assign(this.summary, values, { _timestamp: now, _runtime: this.runtime() });
    this.summaryDirty = true;
    if (this.open && record.step === this.open.step) Object.assign(this.open.values, values);
    else if (record.step > Math.max(this.lastStepLogged, this.open?.step ?? Number.NEGATIVE_INFINITY)) {
      this.commitOpenRow();
      this.open = { step: record.step, values, timestamp: now, runtime: this.runtime() };
    }
    this.schedule();
  }

  /**
   * Sends what is buffered and marks the W&B run finished with `exitCode`, waiting at most
   * `flushSeconds`; what is still unsent then stays only in metrics.jsonl (a warning says how much).
   */
  async finish(exitCode = 0): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    this.exitCode = exitCode;
    this.commitOpenRow();
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.dead) return;
    let deadline: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((done) => {
      deadline = setTimeout(() => done(true), this.target.flushSeconds * 1000);
    });
    this.wakeSleep?.();
    const flushed = (async () => {
      // A send already under way (a heartbeat, a batch) ends its loop; the next one sends `complete`.
      while (!this.completed && !this.dead) await this.kick();
      return false;
    })();
    const gaveUp = await Promise.race([flushed, timedOut]);
    clearTimeout(deadline);
    if (gaveUp && !this.completed) {
      this.warn(
        `W&B: gave up after ${this.target.flushSeconds} s with ${this.pending.length} history rows unsent (metrics.jsonl has them; --resume sends them)`,
      );
      this.stop();
    }
  }

  private runtime(): number {
    return this.runtimeBase + (Date.now() - this.openedAt) / 1000;
  }

  private commitOpenRow(): void {
    if (!this.open) return;
    const row = {
      ...this.open.values,
      _step: this.open.step,
      _runtime: this.open.runtime,
      _timestamp: this.open.timestamp,
    };
    this.pending.push({ step: this.open.step, line: JSON.stringify(row) });
    this.summary._step = this.open.step;
    this.summaryDirty = true;
    this.lastStepLogged = this.open.step;
    this.open = null;
    if (this.pending.length > MAX_PENDING_LINES) {
      this.pending.splice(0, this.pending.length - MAX_PENDING_LINES);
      this.warnOnce("overflow", `W&B: more than ${MAX_PENDING_LINES} rows unsent; dropping the oldest`);
    }
  }

  private schedule(): void {
    if (this.timer || this.dead) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.kick();
    }, this.opts.sendIntervalMs ?? 2000);
    this.timer.unref();
  }

  /** Starts the send loop unless it runs; resolves when it has nothing left to do. */
  private kick(): Promise<void> {
    if (!this.pumping) {
      this.pumping = this.pump()
        .catch((e) => this.fail(e))
        .finally(() => {
          this.pumping = null;
        });
    }
    return this.pumping;
  }

  private async pump(): Promise<void> {
    if (!this.started) {
      await this.retrying(() => this.start());
      if (this.dead) return;
      this.started = true;
    }
    for (;;) {
      if (this.dead) return;
      const batch = this.nextBatch();
      if (!batch) return;
      await this.retrying(() =>
        this.client.fileStream(this.state.entity, this.state.project, this.state.id, batch.body),
      );
      if (this.dead) return;
      this.lastSentAt = Date.now();
      this.pending.splice(0, batch.lines);
      if (batch.lastStep !== null) this.state.lastStep = batch.lastStep;
      this.state.historyLineCount += batch.lines - batch.skipped;
      this.state.runtime = this.runtime();
      if (batch.summary) this.summaryDirty = batch.summaryChangedSince();
      if (batch.body.complete) this.completed = true;
      atomicWriteJsonSync(join(this.dir, WANDB_STATE_FILE), this.state);
      if (this.completed || batch.heartbeat) return;
    }
  }

  private async start(): Promise<void> {
    const { id, project } = this.state;
    if (this.resumed) {
      // The server knows best where the history stopped (an earlier process may have died after a send).
      const status = await this.client
        .resumeStatus(project, this.state.entity || this.target.entity, id)
        .catch((e: unknown) => {
          if (e instanceof WandbCallError && e.kind === "rejected") return null;
          throw e;
        });
      if (status) {
        this.state.lastStep = Math.max(this.state.lastStep, status.lastStep);
        this.runtimeBase = Math.max(this.runtimeBase, status.runtime);
        this.summary = { ...status.summary, ...this.summary };
      }
    }
    const upserted = await this.client.upsertRun({
      id,
      project,
      entity: this.state.entity || this.target.entity,
      displayName: this.run.displayName,
      group: this.run.group,
      tags: this.target.tags,
      config: this.run.config,
      host: hostname(),
    });
    this.state.entity = upserted.entity;
    this.state.project = upserted.project;
    this.state.historyLineCount = Math.max(this.state.historyLineCount, upserted.historyLineCount);
    this.state.url = `${appUrl(this.target.baseUrl)}/${upserted.entity}/${upserted.project}/runs/${id}`;
    atomicWriteJsonSync(join(this.dir, WANDB_STATE_FILE), this.state);
    this.opts.log?.(`W&B: ${this.resumed ? "resuming" : "logging to"} ${this.state.url}`);
  }

  private nextBatch() {
    // Rows of steps the server already has (a resumed run repeats the steps after its last checkpoint).
    let skipped = 0;
    while (skipped < this.pending.length && this.pending[skipped].step <= this.state.lastStep) skipped++;
    const rows = this.pending.slice(skipped, skipped + MAX_LINES_PER_REQUEST);
    const lines = skipped + rows.length;
    const last = lines === this.pending.length;
    const complete = this.finishing && last;
    const withSummary = this.summaryDirty && (last || rows.length === 0);
    const heartbeat = rows.length === 0 && !withSummary && !complete;
    if (heartbeat && (this.finishing || Date.now() - this.lastSentAt < HEARTBEAT_MS)) {
      if (skipped > 0) this.pending.splice(0, skipped);
      return null;
    }
    const body: FileStreamBody = {};
    if (rows.length > 0 || withSummary) body.files = {};
    if (rows.length > 0 && body.files)
      body.files[HISTORY_FILE] = { offset: this.state.historyLineCount, content: rows.map((r) => r.line) };
    const summaryText = JSON.stringify(this.summary);
    if (withSummary && body.files) body.files[SUMMARY_FILE] = { offset: 0, content: [summaryText] };
    if (complete) {
      body.complete = true;
      body.exitcode = this.exitCode;
    }
    return {
      body,
      lines,
      skipped,
      heartbeat,
      summary: withSummary,
      lastStep: rows.length > 0 ? rows[rows.length - 1].step : null,
      summaryChangedSince: () => JSON.stringify(this.summary) !== summaryText,
    };
  }

  /** Runs `call` until it succeeds, backing off on retryable failures; gives up only when stopped. */
  private async retrying(call: () => Promise<void>): Promise<void> {
    for (let attempt = 0; !this.dead; attempt++) {
      try {
        await call();
        return;
      } catch (e) {
        if (this.dead) return;
        if (!(e instanceof WandbCallError) || e.kind !== "retry") throw e;
        const cap = Math.min(MAX_BACKOFF_MS, (this.opts.backoffMs ?? 1000) * 2 ** attempt);
        if (attempt === 2)
          this.warnOnce("retrying", `W&B: ${e.message}; retrying in the background (training goes on)`);
        await this.sleep(Math.max(e.retryAfterMs, cap / 2 + (Math.random() * cap) / 2));
      }
    }
  }

  /** A backoff wait that `finish` and `stop` cut short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      const wake = () => {
        clearTimeout(timer);
        if (this.wakeSleep === wake) this.wakeSleep = null;
        done();
      };
      const timer = setTimeout(wake, ms);
      // While training goes on a retry must not keep the process alive; at the end it must.
      if (!this.finishing) timer.unref();
      this.wakeSleep = wake;
    });
  }

  private fail(e: unknown): void {
    if (this.dead) return;
    if (e instanceof WandbCallError && e.kind === "auth") {
      this.warn(
        `W&B: the server refused the API key (${e.message}); check WANDB_API_KEY (or \`wandb login\`). Not logging to W&B for the rest of this run; training goes on.`,
      );
    } else {
      this.warn(`W&B: ${(e as Error).message}; not logging to W&B for the rest of this run`);
    }
    this.stop();
  }

  private stop(): void {
    this.dead = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.wakeSleep?.();
    this.abort.abort();
  }

  private readonly warned = new Set<string>();
  private warnOnce(key: string, line: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.warn(line);
  }

  private warn(line: string): void {
    (this.opts.warn ?? ((l: string) => console.warn(`klear: ${l}`)))(line);
  }
}

function newRunId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from(randomBytes(8), (b) => alphabet[b % alphabet.length]).join("");
}

function appUrl(baseUrl: string): string {
  return baseUrl.replace("://api.wandb.ai", "://wandb.ai");
}

function readState(dir: string): WandbState | null {
  try {
    const s = JSON.parse(readFileSync(join(dir, WANDB_STATE_FILE), "utf8")) as WandbState;
    return typeof s.id === "string" && s.id !== "" ? s : null;
  } catch {
    return null;
  }
}
