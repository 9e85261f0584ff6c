import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { MathVerifierPool, verifyMath } from "../../../src/rewards/math/index.js";

const workerHandles = () =>
  process.getActiveResourcesInfo().filter((r) => /Worker|MessagePort/.test(r)).length;

// Seconds of work for the verifier; its own step budget stops it.
const SLOW = "\\boxed{\\sum_{a=1}^{2000}\\sum_{b=1}^{2000}\\sum_{c=1}^{2000} abc}";

test("MathVerifierPool: verdicts on worker threads equal inline verification, in any order", async () => {
  const cases: [string, string][] = [
    ["\\frac{1}{2}", "so $\\boxed{0.5}$"],
    ["73", "<think>hmm</think> the answer is \\boxed{73}"],
    ["73", "<think>hmm</think> the answer is \\boxed{74}"],
    ["(1,2)", "\\boxed{(1, 2)}"],
    ["x^2", "no answer at all"],
  ];
  const pooled = new MathVerifierPool({ workers: 2, timeoutMs: 5000 });
  const inline = new MathVerifierPool({ workers: 0, timeoutMs: 5000 });
  try {
    assert.equal(pooled.size, 2);
    assert.equal(inline.size, 0);
    const a = await Promise.all(cases.map(([g, r]) => pooled.verify(g, r)));
    const b = await Promise.all(cases.map(([g, r]) => inline.verify(g, r)));
    assert.deepEqual(a, b);
    assert.deepEqual(
      a,
      cases.map(([g, r]) => verifyMath(g, r, { timeoutMs: 5000 })),
    );
    assert.deepEqual(
      a.map((v) => v.correct),
      [true, true, false, true, false],
    );
    assert.equal(a[0].extractedPred, "0.5");
    // Per-call options reach the worker.
    const strict = await pooled.verify("1", "\\boxed{1}", { timeoutMs: 1 });
    assert.deepEqual(strict, verifyMath("1", "\\boxed{1}", { timeoutMs: 1 }));
  } finally {
    await pooled.close();
    await inline.close();
  }
});

test("MathVerifierPool: a slow verification does not stall the calling thread", async () => {
  const pool = new MathVerifierPool({ workers: 1, timeoutMs: 5000 });
  try {
    // A long response without </think> (a truncated sample) is the slow case for the verifier.
    const long = Array.from({ length: 1500 }, (_, i) => `Step ${i}: $x_{${i}} = \\frac{${i}}{2}$ and`).join(
      " ",
    );
    await pool.verify("1", "\\boxed{1}"); // warm the worker
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    await pool.verify("3/4", long);
    const ms = performance.now() - t0;
    clearInterval(timer);
    // The event loop kept running while the worker verified.
    if (ms > 20) assert.ok(ticks >= 3, `ticks=${ticks} in ${ms.toFixed(0)} ms`);
  } finally {
    await pool.close();
  }
});

test("MathVerifierPool: a wedged worker is reported as timed out and replaced", async () => {
  // The watchdog is set far below the check's own budget, so it fires while the worker is still busy.
  const pool = new MathVerifierPool({ workers: 1, timeoutMs: 3000, watchdogMs: 100 });
  try {
    const wedged = await pool.verify("1", SLOW);
    assert.equal(wedged.correct, false);
    assert.equal(wedged.timedOut, true);
    assert.match(wedged.error ?? "", /did not answer within 100 ms/);
    // The replacement answers (the fresh worker loads before its watchdog starts).
    assert.equal((await pool.verify("2", "\\boxed{2}")).correct, true);
  } finally {
    await pool.close();
  }
});

test("MathVerifierPool: a crashed worker gives an error verdict, never a plain wrong, and the pool carries on", async () => {
  const pool = new MathVerifierPool({ workers: 1, timeoutMs: 3000 });
  try {
    await pool.verify("1", "\\boxed{1}"); // loaded
    const pending = pool.verify("1", SLOW);
    await sleep(50);
    // Kill the worker mid-check from outside, as an out-of-memory abort would.
    await pool["slots"][0].worker.terminate();
    const crashed = await pending;
    assert.equal(crashed.correct, false);
    assert.equal(crashed.reason, "internal error");
    assert.match(crashed.error ?? "", /worker crashed/);
    assert.notEqual(crashed.timedOut, true);
    assert.equal((await pool.verify("2", "\\boxed{2}")).correct, true);
  } finally {
    await pool.close();
  }
});

test("MathVerifierPool: close() ends every thread; later calls and bad options are refused", async () => {
  const before = workerHandles();
  const pool = new MathVerifierPool({ workers: 2 });
  assert.equal((await pool.verify("3", "\\boxed{3}")).correct, true);
  await pool.close();
  await sleep(50);
  assert.equal(workerHandles(), before, "worker threads leaked");
  await assert.rejects(pool.verify("3", "\\boxed{3}"), /after close/);
  assert.throws(() => new MathVerifierPool({ timeoutMs: 0 }), /timeoutMs/);
  assert.throws(() => new MathVerifierPool({ watchdogMs: -1 }), /watchdogMs/);
});

test("MathVerifierPool: an unclosed pool never keeps the process alive", async () => {
  const poolUrl = new URL("../../../src/rewards/math/pool.ts", import.meta.url).href;
  const script = `import { MathVerifierPool } from ${JSON.stringify(poolUrl)};
const pool = new MathVerifierPool({ workers: 2 });
const v = await pool.verify("1", "\\\\boxed{1}");
console.log(v.correct);`;
  const t0 = performance.now();
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    { timeout: 30_000 },
  );
  assert.equal(stdout.trim(), "true");
  assert.ok(performance.now() - t0 < 30_000);
});
