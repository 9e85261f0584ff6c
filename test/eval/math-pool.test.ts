import assert from "node:assert/strict";
import { test } from "node:test";
import { createDefaultScorer } from "../../src/eval/index.js";
import { verifyMath } from "../../src/rewards/math/index.js";

test("math verified on worker threads equals inline verification, in any order", async () => {
  const pooled = createDefaultScorer({ mathWorkers: 2 });
  const inline = createDefaultScorer({ mathWorkers: 0 });
  const cases: [string, string][] = [
    ["\\frac{1}{2}", "so $\\boxed{0.5}$"],
    ["73", "<think>hmm</think> the answer is \\boxed{73}"],
    ["73", "<think>hmm</think> the answer is \\boxed{74}"],
    ["(1,2)", "\\boxed{(1, 2)}"],
    ["x^2", "no answer at all"],
  ];
  try {
    const problems = cases.map(([gold], i) => ({
      id: String(i),
      kind: "math" as const,
      question: "?",
      answer: gold,
    }));
    const a = await Promise.all(cases.map(([, r], i) => pooled.score(problems[i], r)));
    const b = await Promise.all(cases.map(([, r], i) => inline.score(problems[i], r)));
    assert.deepEqual(a, b);
    assert.deepEqual(
      a.map((v) => v.correct),
      cases.map(([g, r]) => verifyMath(g, r, { timeoutMs: 5000 }).correct),
    );
    assert.deepEqual(
      a.map((v) => v.correct),
      [true, true, false, true, false],
    );
    assert.equal(a[0].extracted, "0.5");
  } finally {
    await pooled.close?.();
    await inline.close?.();
  }
});

test("a slow verification does not stall the main thread", async () => {
  const pooled = createDefaultScorer({ mathWorkers: 1 });
  try {
    // A long response without </think> (a truncated sample) is the slow case for the verifier.
    const long = Array.from({ length: 1500 }, (_, i) => `Step ${i}: $x_{${i}} = \\frac{${i}}{2}$ and`).join(
      " ",
    );
    await pooled.score({ id: "w", kind: "math", question: "?", answer: "1" }, "\\boxed{1}"); // warm the worker
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    await pooled.score({ id: "x", kind: "math", question: "?", answer: "3/4" }, long);
    const ms = performance.now() - t0;
    clearInterval(timer);
    // The event loop kept running while the worker verified.
    if (ms > 20) assert.ok(ticks >= 3, `ticks=${ticks} in ${ms.toFixed(0)} ms`);
  } finally {
    await pooled.close?.();
  }
});
