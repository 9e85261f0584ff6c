import { availableParallelism } from "node:os";
import { MathVerifierPool } from "./pool.js";
import type { MathVerdict, VerifyMathOptions } from "./verify.js";

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

/**
 * Verifies many pairs on a MathVerifierPool sized for the batch (never more workers than pairs), in input
 * order. Every worker is terminated before the promise settles.
 */
export async function verifyMathBatch(
  pairs: MathPair[],
  opts: VerifyMathBatchOptions = {},
): Promise<MathVerdict[]> {
  const workers = Math.min(opts.workers ?? Math.min(8, availableParallelism()), pairs.length);
  // Built even for an empty batch, so bad options are refused the same way whatever the input.
  const pool = new MathVerifierPool({ workers, timeoutMs: opts.timeoutMs ?? 1000 });
  try {
    return await Promise.all(
      pairs.map(async (p, i) => {
        const result = await pool.verify(p.gold, p.response, p.opts);
        opts.onResult?.(i, result);
        return result;
      }),
    );
  } finally {
    await pool.close();
  }
}
