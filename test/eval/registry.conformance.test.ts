import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { buildMessages, createDefaultScorer, loadBenchmark } from "../../src/eval/index.js";

const DATA = join(import.meta.dirname, "..", "..", "..", "shared", "data", "benchmarks");
const present = existsSync(DATA);
const skipMsg = "../shared/data not present";

const COUNTS: Record<string, number> = {
  aime24: 30,
  aime25: 30,
  hmmt_feb_2025: 30,
  math500: 500,
  amc23: 40,
  gsm8k: 1319,
  livecodebench: 279,
  livecodebench_v5: 279,
};

test("every shipped benchmark file loads with the documented counts", async (t) => {
  if (!present) return t.skip(skipMsg);
  for (const [name, count] of Object.entries(COUNTS)) {
    const b = await loadBenchmark(name, { data: DATA });
    assert.equal(b.problems.length, count, name);
    assert.equal(new Set(b.problems.map((p) => p.id)).size, count, `${name}: ids unique`);
  }
  const aime24 = await loadBenchmark("aime24", { data: DATA });
  assert.ok(aime24.problems.every((p) => /^\d{1,3}$/.test(p.answer ?? "")));
  assert.equal(aime24.problems.find((p) => p.id === "2024-II-1")?.answer, "73");
  const aime25 = await loadBenchmark("aime25", { data: DATA });
  assert.equal(aime25.problems[0].answer, "70");
  const hmmt = await loadBenchmark("hmmt_feb_2025", { data: DATA });
  assert.equal(hmmt.problems[0].answer, "103");
  assert.ok(hmmt.problems.some((p) => p.answer?.includes("\\sqrt{17}")));
  const math500 = await loadBenchmark("math500", { data: DATA });
  const levels = [1, 2, 3, 4, 5].map(
    (l) => math500.problems.filter((p) => p.difficulty === String(l)).length,
  );
  assert.deepEqual(levels, [43, 90, 105, 128, 134]);
  assert.equal(math500.problems.filter((p) => p.subject === "Algebra").length, 124);
  const gsm = await loadBenchmark("gsm8k", { data: DATA });
  assert.ok(
    gsm.problems.every((p) => /^-?[\d.]+$/.test(p.answer ?? "")),
    "gsm8k answers are plain numbers",
  );
  const lcb = await loadBenchmark("livecodebench_v5", { data: DATA });
  assert.equal(lcb.problems.filter((p) => p.starterCode === "").length, 175);
  assert.equal(lcb.problems.filter((p) => p.fnName).length, 104);
  assert.equal(
    lcb.problems.reduce((a, p) => a + (p.tests?.length ?? 0), 0),
    736,
  );
  assert.ok(lcb.problems.every((p) => (p.date ?? "") >= "2024-08-01" && (p.date ?? "") < "2025-02-01"));
  // The v6 window holds none of these v5 problems.
  await assert.rejects(
    loadBenchmark("livecodebench_v6", { data: join(DATA, "lcb_v5_problems.jsonl") }),
    /no problems/,
  );
  // LiveCodeBench's own prompt, built from the statement and starter code
  const [m] = buildMessages(lcb.problems.find((p) => p.fnName)!);
  assert.match(m.content, /### Format: You will use the following starter code/);
});

test("a response boxing the gold answer is judged correct on every math problem (real verifier)", async (t) => {
  if (!present) return t.skip(skipMsg);
  const scorer = createDefaultScorer();
  for (const name of ["aime24", "aime25", "hmmt_feb_2025", "math500", "amc23", "gsm8k"]) {
    const b = await loadBenchmark(name, { data: DATA });
    const wrong: string[] = [];
    for (const p of b.problems) {
      const v = await scorer.score(p, `<think>work</think>\nThe final answer is $\\boxed{${p.answer}}$.`);
      if (!v.correct) wrong.push(`${p.id}: ${p.answer} (${v.reason})`);
    }
    assert.deepEqual(wrong, [], name);
    const p0 = b.problems[0];
    const miss = await scorer.score(p0, "<think>work</think>\nThe final answer is $\\boxed{123456789}$.");
    assert.equal(miss.correct, false, `${name}: a wrong answer is wrong`);
  }
  await scorer.close?.();
});

test("a LiveCodeBench stdin problem is scored in the sandbox with its public tests", async (t) => {
  if (!present) return t.skip(skipMsg);
  const b = await loadBenchmark("livecodebench_v5", { data: DATA, limit: 1 });
  const p = b.problems[0];
  assert.equal(p.id, "abc365_b");
  const scorer = createDefaultScorer();
  const right = await scorer.score(
    p,
    "<think>second largest</think>\n```python\nn = int(input())\na = list(map(int, input().split()))\ns = sorted(a)[-2]\nprint(a.index(s) + 1)\n```",
  );
  assert.equal(right.correct, true, right.reason);
  const wrong = await scorer.score(p, "<think>x</think>\n```python\nprint(1)\n```");
  assert.equal(wrong.correct, false);
  const none = await scorer.score(p, "no code here");
  assert.equal(none.reason, "no python code block after </think>");
  await scorer.close?.();
});
