import { availableParallelism } from "node:os";
import { ConfigError } from "../../util/errors.js";
import { LocalCodeExecutor, type LocalSandboxOptions } from "./local.js";
import type { CodeExecutor, CodeRunLimits, CodeRunResult, CodeTest } from "./types.js";

/** Where code runs: the local bubblewrap sandbox, explicitly unsandboxed, or any executor (e.g. remote). */
export type CodeSandboxChoice = "bwrap" | "unsafe-none" | CodeExecutor;

export interface CodeRunnerPoolOptions {
  /** Solutions running at once; default the number of cores (each solution's tests run in sequence). */
  concurrency?: number;
  sandbox?: CodeSandboxChoice;
  /** Options for a local sandbox (uids, tmpfs size, rlimits). */
  local?: LocalSandboxOptions;
}

export function makeCodeExecutor(
  choice: CodeSandboxChoice = "bwrap",
  local: LocalSandboxOptions = {},
): CodeExecutor {
  if (typeof choice !== "string") return choice;
  if (choice === "bwrap" || choice === "unsafe-none")
    return new LocalCodeExecutor({ ...local, isolation: choice });
  throw new ConfigError(
    `unknown code sandbox "${String(choice)}"`,
    'use "bwrap", "unsafe-none" or a CodeExecutor',
  );
}

/**
 * Runs solutions with at most `concurrency` in flight. Each running solution holds a worker slot;
 * local executors run slot k under its own uid, so per-uid process limits never mix solutions.
 * Results come back through the promise of each `run` call, exactly once.
 */
export class CodeRunnerPool {
  readonly concurrency: number;
  readonly executor: CodeExecutor;
  private readonly freeSlots: number[];
  private readonly waiting: Array<(slot: number) => void> = [];
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(opts: CodeRunnerPoolOptions = {}) {
    const c = opts.concurrency ?? availableParallelism();
    if (!Number.isInteger(c) || c < 1) {
      throw new ConfigError(
        `code pool concurrency must be a positive integer, got ${c}`,
        "pass concurrency >= 1",
      );
    }
    this.concurrency = c;
    this.executor = makeCodeExecutor(opts.sandbox, opts.local);
    this.freeSlots = Array.from({ length: c }, (_, k) => c - 1 - k);
  }

  /** Solutions running or queued right now. */
  get pending(): number {
    return this.inFlight + this.waiting.length;
  }

  async run(code: string, tests: readonly CodeTest[], limits: CodeRunLimits = {}): Promise<CodeRunResult> {
    const slot = await this.acquire();
    this.inFlight++;
    try {
      return await this.executor.runSolution(code, tests, limits, slot);
    } finally {
      this.inFlight--;
      this.release(slot);
    }
  }

  /** Resolves when nothing is running or queued. */
  async drain(): Promise<void> {
    if (this.pending === 0) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  private acquire(): Promise<number> {
    const slot = this.freeSlots.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((r) => this.waiting.push(r));
  }

  private release(slot: number): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.freeSlots.push(slot);
    if (this.pending === 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  }
}

const defaultPools = new Map<string, CodeRunnerPool>();

export interface RunCodeTestsOptions extends CodeRunLimits {
  sandbox?: CodeSandboxChoice;
}

/**
 * Runs one solution against its tests. Calls share a process-wide pool per sandbox kind (one solution
 * per core at a time), so callers may fire many at once without oversubscribing the machine.
 */
export function runCodeTests(
  code: string,
  tests: readonly CodeTest[],
  opts: RunCodeTestsOptions = {},
): Promise<CodeRunResult> {
  const { sandbox = "bwrap", ...limits } = opts;
  if (typeof sandbox !== "string") {
    let pool = poolsByExecutor.get(sandbox);
    if (!pool) {
      pool = new CodeRunnerPool({ sandbox });
      poolsByExecutor.set(sandbox, pool);
    }
    return pool.run(code, tests, limits);
  }
  let pool = defaultPools.get(sandbox);
  if (!pool) {
    pool = new CodeRunnerPool({ sandbox });
    defaultPools.set(sandbox, pool);
  }
  return pool.run(code, tests, limits);
}

const poolsByExecutor = new WeakMap<CodeExecutor, CodeRunnerPool>();
