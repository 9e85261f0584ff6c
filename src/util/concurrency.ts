/** Tasks pushed over time, at most `limit` running; `drain()` waits for all of them. */
export interface TaskQueue {
  push(task: () => Promise<void>): void;
  /**
   * Resolves once every pushed task has settled; rejects with the first failure. After a failure the
   * tasks still waiting are not started (those running are let finish).
   */
  drain(): Promise<void>;
  /** Running plus waiting. */
  readonly size: number;
}

/** A queue for work that arrives as it is produced (e.g. scoring samples as they are generated). */
export function createTaskQueue(limit: number): TaskQueue {
  const max = Math.max(1, Math.floor(limit));
  let active = 0;
  const waiting: (() => Promise<void>)[] = [];
  let failure: { error: unknown } | null = null;
  let idle: (() => void)[] = [];
  const pump = () => {
    while (active < max && waiting.length > 0 && failure === null) {
      const task = waiting.shift()!;
      active++;
      task()
        .catch((error) => {
          failure ??= { error };
        })
        .finally(() => {
          active--;
          pump();
        });
    }
    if (failure !== null) waiting.length = 0;
    if (active === 0 && waiting.length === 0) {
      const done = idle;
      idle = [];
      for (const r of done) r();
    }
  };
  return {
    push(task) {
      waiting.push(task);
      pump();
    },
    async drain() {
      if (active > 0 || waiting.length > 0) await new Promise<void>((r) => idle.push(r));
      if (failure !== null) throw failure.error;
    },
    get size() {
      return active + waiting.length;
    },
  };
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight, returning results in input order.
 * The first rejection is rethrown after in-flight calls settle.
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  const queue = createTaskQueue(Math.min(limit, items.length));
  for (let i = 0; i < items.length; i++) {
    queue.push(async () => {
      results[i] = await fn(items[i], i);
    });
  }
  await queue.drain();
  return results;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
