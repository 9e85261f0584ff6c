import Database from "better-sqlite3";
import { KlearError } from "../util/errors.js";

/** What produced a sample: an RL rollout, an evaluation, or a sample printed for a human. */
export type SampleKind = "rollout" | "eval" | "sample";

export interface SampleRecord {
  /** Training step the sample belongs to (the policy version that produced it). */
  step: number;
  kind: SampleKind;
  /** Stable id of the problem (e.g. its prompt or dataset index), for grouping and drill-down. */
  problemId: string;
  prompt: string;
  completion: string;
  /** Scalar reward; null when not graded. */
  reward: number | null;
  /** Whether the verifier accepted the answer; null when not graded. */
  correct: boolean | null;
  finishReason: string | null;
  numTokens: number | null;
  /** Anything else worth keeping (advantage, sample index, extracted answer…), stored as JSON. */
  meta?: Record<string, unknown>;
}

const SCHEMA_VERSION = 1;

/**
 * The SQLite side of a run directory: rollouts, rewards and eval samples, queryable by step and kind.
 * WAL mode lets a report read while training writes; inserts batch in one transaction per call.
 */
export class RunDatabase {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;

  private constructor(
    db: Database.Database,
    readonly path: string,
  ) {
    this.db = db;
    this.insert = db.prepare(
      `INSERT INTO samples (step, kind, problem_id, prompt, completion, reward, correct, finish_reason, num_tokens, meta)
       VALUES (@step, @kind, @problemId, @prompt, @completion, @reward, @correct, @finishReason, @numTokens, @meta)`,
    );
  }

  static open(path: string): RunDatabase {
    let db: Database.Database;
    try {
      db = new Database(path);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS samples (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          step INTEGER NOT NULL,
          kind TEXT NOT NULL,
          problem_id TEXT NOT NULL,
          prompt TEXT NOT NULL,
          completion TEXT NOT NULL,
          reward REAL,
          correct INTEGER,
          finish_reason TEXT,
          num_tokens INTEGER,
          meta TEXT
        );
        CREATE INDEX IF NOT EXISTS samples_step_kind ON samples (step, kind);
      `);
    } catch (e) {
      throw new KlearError(
        "RUN_DATABASE_UNREADABLE",
        `${path}: cannot open the run's SQLite database (${(e as Error).message})`,
        "check the path and permissions; if the file is corrupt, move it aside (the run's checkpoints and metrics do not depend on it)",
        { cause: e },
      );
    }
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
      | { value: string }
      | undefined;
    if (!row)
      db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
    else if (Number(row.value) > SCHEMA_VERSION) {
      db.close();
      throw new KlearError(
        "RUN_DATABASE_TOO_NEW",
        `${path}: schema version ${row.value} is newer than this klear understands (${SCHEMA_VERSION})`,
        "upgrade klear",
      );
    }
    return new RunDatabase(db, path);
  }

  /** Inserts all records in one transaction: either every row lands or none does. */
  addSamples(records: readonly SampleRecord[]): void {
    const tx = this.db.transaction((rows: readonly SampleRecord[]) => {
      for (const r of rows) {
        this.insert.run({
          step: r.step,
          kind: r.kind,
          problemId: r.problemId,
          prompt: r.prompt,
          completion: r.completion,
          reward: r.reward,
          correct: r.correct === null ? null : r.correct ? 1 : 0,
          finishReason: r.finishReason,
          numTokens: r.numTokens,
          meta: r.meta === undefined ? null : JSON.stringify(r.meta),
        });
      }
    });
    tx(records);
  }

  /** Samples in insertion order, optionally only one kind and/or one step. */
  samples(filter: { kind?: SampleKind; step?: number } = {}): SampleRecord[] {
    const where: string[] = [];
    const args: Record<string, unknown> = {};
    if (filter.kind !== undefined) {
      where.push("kind = @kind");
      args.kind = filter.kind;
    }
    if (filter.step !== undefined) {
      where.push("step = @step");
      args.step = filter.step;
    }
    const sql = `SELECT * FROM samples ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id`;
    return (this.db.prepare(sql).all(args) as Record<string, unknown>[]).map((r) => ({
      step: r.step as number,
      kind: r.kind as SampleKind,
      problemId: r.problem_id as string,
      prompt: r.prompt as string,
      completion: r.completion as string,
      reward: r.reward as number | null,
      correct: r.correct === null ? null : r.correct === 1,
      finishReason: r.finish_reason as string | null,
      numTokens: r.num_tokens as number | null,
      ...(r.meta === null ? {} : { meta: JSON.parse(r.meta as string) }),
    }));
  }

  /** Mean reward and accuracy per step for one kind: the numbers a training curve plots. */
  summaryByStep(
    kind: SampleKind,
  ): { step: number; count: number; meanReward: number | null; accuracy: number | null }[] {
    return this.db
      .prepare(
        `SELECT step, COUNT(*) AS count, AVG(reward) AS meanReward, AVG(correct) AS accuracy
         FROM samples WHERE kind = ? GROUP BY step ORDER BY step`,
      )
      .all(kind) as { step: number; count: number; meanReward: number | null; accuracy: number | null }[];
  }

  /** Removes samples from steps after `step`: a run resumed from that checkpoint writes them again. */
  deleteAfterStep(step: number): number {
    return this.db.prepare("DELETE FROM samples WHERE step > ?").run(step).changes;
  }

  close(): void {
    this.db.close();
  }
}
