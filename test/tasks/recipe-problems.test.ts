import assert from "node:assert/strict";
import { test } from "node:test";
import { codeRewardForResponse } from "../../src/rewards/code/reward.js";
import { mathReward } from "../../src/rewards/math/verify.js";
import { isHeldOut, recipeSplit } from "../../src/tasks/recipe-problems.js";

test("held-out problems are distinct, never drawn for training, and the same for the same seed", () => {
  const a = recipeSplit(3, 60);
  const b = recipeSplit(3, 60);
  assert.equal(a.heldOut.length, 60);
  assert.deepEqual(a.heldOut, b.heldOut);
  const held = new Set(a.heldOut.map((p) => p.key));
  assert.equal(held.size, 60);
  assert.ok(a.heldOut.some((p) => p.kind === "code") && a.heldOut.some((p) => p.kind === "math"));
  for (let i = 0; i < 2000; i++) {
    const { problem } = a.train(i, 0);
    assert.ok(!held.has(problem.key) && !isHeldOut(problem.key, 0.15), problem.key);
  }
  assert.deepEqual(a.train(17, 0.4), b.train(17, 0.4), "training index i is reproducible alone");
});

test("the teacher errs at the configured rate and only then", async () => {
  const s = recipeSplit(1, 10);
  let wrong = 0;
  const n = 400;
  for (let i = 0; i < n; i++) {
    const { problem, teacher } = s.train(i, 0.3);
    if (!teacher.correct) wrong++;
    if (problem.kind === "math" && i < 200) {
      const response = `<think>${teacher.reasoning}</think>\n${teacher.content}`;
      assert.equal(mathReward(problem.answer ?? "", response).correct, teacher.correct, response);
    }
  }
  assert.ok(Math.abs(wrong / n - 0.3) < 0.08, `wrong fraction ${wrong / n}`);
});

test("every code family: the teacher's program passes its tests, the wrong one fails one (sandbox)", async (t) => {
  const s = recipeSplit(2, 10);
  const seen = new Map<string, { right: string; wrong: string | null; tests: NonNullable<unknown> }>();
  for (let i = 0; seen.size < 6 && i < 5000; i++) {
    const { problem } = s.train(i, 0);
    if (problem.kind !== "code") continue;
    const family = problem.key.split(":")[1];
    if (seen.has(family)) continue;
    const right = s.train(i, 0).teacher.content;
    const wrong = s.train(i, 1).teacher.content;
    const tests = problem.tests ?? [];
    const good = await codeRewardForResponse(`<think>x</think>\n${right}`, tests, { thinkGate: true }).catch(
      (e: Error) => e,
    );
    if (good instanceof Error) {
      t.skip(`sandbox unavailable: ${good.message}`);
      return;
    }
    assert.equal(good.reward, 1, `${family}: ${right}`);
    const bad = await codeRewardForResponse(`<think>x</think>\n${wrong}`, tests, { thinkGate: true });
    assert.ok(bad.reward < 1, `${family}: ${wrong} should fail a test`);
    seen.set(family, { right, wrong, tests });
  }
  assert.equal(seen.size, 6, "all six families drawn");
});
