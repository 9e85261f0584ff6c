import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { KlearError } from "../util/errors.js";

/**
 * The results store of one eval run (SQLite, WAL). Every completed request and every verdict is one row,
 * committed as it happens (rows that complete in the same event-loop turn share one commit, which keeps
 * thousands of requests per second cheap), so a killed run loses at most the requests in flight; a rerun
 * reads what is here and asks only for what is missing.
 */

export interface StoredSample {
  bench: string;
  problemId: string;
  sampleIdx: number;
  response: string;
  finishReason: string | null;
  completionTokens: number | null;
  latencyMs: number | null;
  attempts: number;
}

export interface StoredVerdict {
  bench: string;
  problemId: string;
  sampleIdx: number;
  /** 0..1 (code: the fraction of tests passed). */
  score: number;
  correct: boolean;
  /** The extracted final answer (math) used for majority voting, null when none. */
  extracted: string | null;
  reason: string;
}

export class EvalStore {
  readonly db: Database.Database;
  private readonly insSample: Database.Statement;
  private readonly insVerdict: Database.Statement;
  private readonly insFailure: Database.Statement;
  // Rows waiting for the end of this event-loop turn, as positional parameter lists: binding an array is
  // cheaper than binding named fields or calling one closure per row.
  private pendingSamples: unknown[][] = [];
  private pendingVerdicts: unknown[][] = [];
  private pendingFailures: unknown[][] = [];
  private flushScheduled = false;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    try {
      this.db = new Database(path);
    } catch (e) {
      throw new KlearError(
        "STORE_OPEN_FAILED",
        `cannot open results store ${path}: ${(e as Error).message}`,
        "check --out",
        {
          cause: e,
        },
      );
    }
    this.db.pragma("journal_mode = WAL");
    // NORMAL in WAL mode survives a killed process (not a power cut) and keeps thousands of commits/s.
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS samples (
        bench TEXT NOT NULL, problem_id TEXT NOT NULL, sample_idx INTEGER NOT NULL,
        response TEXT NOT NULL, finish_reason TEXT, completion_tokens INTEGER, latency_ms REAL,
        attempts INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (bench, problem_id, sample_idx));
      CREATE TABLE IF NOT EXISTS verdicts (
        bench TEXT NOT NULL, problem_id TEXT NOT NULL, sample_idx INTEGER NOT NULL,
        score REAL NOT NULL, correct INTEGER NOT NULL, extracted TEXT, reason TEXT NOT NULL,
        PRIMARY KEY (bench, problem_id, sample_idx));
      CREATE TABLE IF NOT EXISTS failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT, bench TEXT NOT NULL, problem_id TEXT NOT NULL,
        sample_idx INTEGER NOT NULL, error TEXT NOT NULL);
    `);
    // OR IGNORE: a sample is written once; a duplicate (never expected) cannot overwrite the first.
    this.insSample = this.db.prepare("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    this.insVerdict = this.db.prepare("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)");
    this.insFailure = this.db.prepare(
      "INSERT INTO failures (bench, problem_id, sample_idx, error) VALUES (?, ?, ?, ?)",
    );
  }

  getMeta(key: string): string | null {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return row?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare("INSERT OR REPLACE INTO meta VALUES (?, ?)").run(key, value);
  }

  /** Commits everything queued in this event-loop turn right after it. */
  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Commits queued writes now. */
  flush(): void {
    this.flushScheduled = false;
    if (!this.db.open) return;
    const samples = this.pendingSamples;
    const verdicts = this.pendingVerdicts;
    const failures = this.pendingFailures;
    if (!samples.length && !verdicts.length && !failures.length) return;
    this.pendingSamples = [];
    this.pendingVerdicts = [];
    this.pendingFailures = [];
    this.db.transaction(() => {
      // Samples first: a verdict is never committed without its sample.
      for (const row of samples) this.insSample.run(row);
      for (const row of verdicts) this.insVerdict.run(row);
      for (const row of failures) this.insFailure.run(row);
    })();
  }

  /**
   * Stores a sample (committed at the end of this event-loop turn). The caller tracks which samples it
   * asked for, so a duplicate (never expected) is simply ignored by the primary key.
   */
  addSample(s: StoredSample): void {
    this.pendingSamples.push(sampleRow(s));
    this.scheduleFlush();
  }

  /** Stores a sample now, returning false when it was already there (offline imports count these). */
  addSampleNow(s: StoredSample): boolean {
    this.flush();
    return this.insSample.run(sampleRow(s)).changes > 0;
  }

  addVerdict(v: StoredVerdict): void {
    this.pendingVerdicts.push([
      v.bench,
      v.problemId,
      v.sampleIdx,
      v.score,
      v.correct ? 1 : 0,
      v.extracted,
      v.reason,
    ]);
    this.scheduleFlush();
  }

  addFailure(bench: string, problemId: string, sampleIdx: number, error: string): void {
    this.pendingFailures.push([bench, problemId, sampleIdx, error]);
    this.scheduleFlush();
  }

  /** Keys "problemId\u0000sampleIdx" of stored samples of a benchmark. */
  sampleKeys(bench: string): Set<string> {
    this.flush();
    const rows = this.db
      .prepare("SELECT problem_id, sample_idx FROM samples WHERE bench = ?")
      .raw()
      .all(bench) as [string, number][];
    return new Set(rows.map(([p, i]) => sampleKey(p, i)));
  }

  samples(bench: string): StoredSample[] {
    this.flush();
    return this.db
      .prepare(
        `SELECT bench, problem_id AS problemId, sample_idx AS sampleIdx, response, finish_reason AS finishReason,
             completion_tokens AS completionTokens, latency_ms AS latencyMs, attempts
           FROM samples WHERE bench = ? ORDER BY problem_id, sample_idx`,
      )
      .all(bench) as StoredSample[];
  }

  /** Stored samples that have no verdict yet (a run killed between generation and scoring). */
  unscored(bench: string): StoredSample[] {
    this.flush();
    return this.db
      .prepare(
        `SELECT s.bench, s.problem_id AS problemId, s.sample_idx AS sampleIdx, s.response, s.finish_reason AS finishReason,
           s.completion_tokens AS completionTokens, s.latency_ms AS latencyMs, s.attempts
         FROM samples s LEFT JOIN verdicts v
           ON v.bench = s.bench AND v.problem_id = s.problem_id AND v.sample_idx = s.sample_idx
         WHERE s.bench = ? AND v.bench IS NULL ORDER BY s.problem_id, s.sample_idx`,
      )
      .all(bench) as StoredSample[];
  }

  verdicts(bench: string): StoredVerdict[] {
    this.flush();
    return (
      this.db
        .prepare(
          `SELECT bench, problem_id AS problemId, sample_idx AS sampleIdx, score, correct, extracted, reason
           FROM verdicts WHERE bench = ? ORDER BY problem_id, sample_idx`,
        )
        .all(bench) as (Omit<StoredVerdict, "correct"> & { correct: number })[]
    ).map((v) => ({ ...v, correct: v.correct === 1 }));
  }

  failureCount(bench: string): number {
    this.flush();
    return (this.db.prepare("SELECT COUNT(*) AS n FROM failures WHERE bench = ?").get(bench) as { n: number })
      .n;
  }

  /** Runs `fn` in one transaction (many inserts at once commit far faster). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}

function sampleRow(s: StoredSample): unknown[] {
  return [
    s.bench,
    s.problemId,
    s.sampleIdx,
    s.response,
    s.finishReason,
    s.completionTokens,
    s.latencyMs,
    s.attempts,
  ];
}

export function sampleKey(problemId: string, sampleIdx: number): string {
  return `${problemId}\u0000${sampleIdx}`;
}
