import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { verifyMath, verifyMathBatch } from "../../../src/rewards/math/index.js";

const workerHandles = () =>
  process.getActiveResourcesInfo().filter((r) => /Worker|MessagePort/.test(r)).length;

test("verifyMathBatch: same verdicts as verifyMath, in input order, and no thread left behind", async () => {
  const before = workerHandles();
  const pairs = Array.from({ length: 60 }, (_, i) => ({
    gold: `\\frac{${i}}{7}`,
    response: i % 3 === 0 ? `so \\boxed{${i + 1}/7}` : `thus $\\boxed{\\dfrac{${2 * i}}{14}}$`,
  }));
  const got = await verifyMathBatch(pairs, { workers: 2 });
  assert.equal(got.length, pairs.length);
  for (const [i, p] of pairs.entries()) assert.deepEqual(got[i], verifyMath(p.gold, p.response));
  await sleep(50);
  assert.equal(workerHandles(), before, "worker threads leaked");
});

test("verifyMathBatch: a check over budget is reported as timed out, the rest still answer", async () => {
  const slow = "\\boxed{\\sum_{a=1}^{2000}\\sum_{b=1}^{2000}\\sum_{c=1}^{2000} abc}";
  const pairs = [
    { gold: "1", response: "\\boxed{1}" },
    { gold: "1", response: slow },
    { gold: "2", response: "\\boxed{2}" },
  ];
  const seen: number[] = [];
  const got = await verifyMathBatch(pairs, { workers: 2, timeoutMs: 3000, onResult: (i) => seen.push(i) });
  assert.equal(got[0].correct, true);
  assert.equal(got[1].timedOut, true);
  assert.equal(got[1].correct, false);
  assert.equal(got[2].correct, true);
  assert.deepEqual([...seen].sort(), [0, 1, 2]);
});

test("verifyMathBatch: workers: 0 runs in this thread; empty input is fine", async () => {
  assert.deepEqual(await verifyMathBatch([], {}), []);
  const r = await verifyMathBatch([{ gold: "3", response: "\\boxed{3}" }], { workers: 0 });
  assert.equal(r[0].correct, true);
  await assert.rejects(verifyMathBatch([{ gold: "1", response: "1" }], { timeoutMs: 0 }), /timeoutMs/);
});
