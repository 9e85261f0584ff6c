import assert from "node:assert/strict";
import { test } from "node:test";
import { createDefaultScorer } from "../../src/eval/index.js";
import { verifyMath } from "../../src/rewards/math/index.js";

// The pool itself (watchdog, crashes, the event loop during a slow check, unref) is tested in
// test/rewards/math/pool.test.ts; this checks the scorer built on it.
test("the default scorer: math verified on worker threads equals inline verification, in any order", async () => {
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

test("the default scorer's verdict memo: repeated answers give the verdicts fresh checks give", async () => {
  const remembered = createDefaultScorer({ mathWorkers: 1 });
  const tiny = createDefaultScorer({ mathWorkers: 0, mathMemoEntries: 2 });
  const fresh = createDefaultScorer({ mathWorkers: 0, mathMemoEntries: 0 });
  // The same answer section behind different thinking shares a verdict; a different answer never does.
  const answers = ["\\boxed{73}", "\\boxed{74}", "$73.0$", "no answer", "\\boxed{\\frac{146}{2}}"];
  const cases = Array.from({ length: 60 }, (_, i) => ({
    gold: i % 7 === 0 ? "74" : "73",
    response: `<think>attempt ${i}</think>\nSo the answer is ${answers[i % answers.length]}.`,
  }));
  try {
    const problem = (gold: string) => ({ id: gold, kind: "math" as const, question: "?", answer: gold });
    // All at once, so identical checks are in flight together and share one.
    const [a, b, c] = await Promise.all(
      [remembered, tiny, fresh].map((s) =>
        Promise.all(cases.map((x) => s.score(problem(x.gold), x.response))),
      ),
    );
    assert.deepEqual(a, c);
    assert.deepEqual(b, c);
    assert.deepEqual(
      c.slice(0, 5).map((v) => v.correct),
      [false, false, true, false, true],
    );
    // A second pass is answered from the memo, with the same verdicts.
    const again = await Promise.all(cases.map((x) => remembered.score(problem(x.gold), x.response)));
    assert.deepEqual(again, c);
  } finally {
    await remembered.close?.();
    await tiny.close?.();
    await fresh.close?.();
  }
});
