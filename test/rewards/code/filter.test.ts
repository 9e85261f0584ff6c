import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type CodeProblem,
  CodeRunnerPool,
  type CodeTest,
  codeRewardForResponse,
  filterCodeProblemsBySolutions,
  filterCodeProblemsByTestCount,
} from "../../../src/rewards/code/index.js";

const echoTests = (n: number): CodeTest[] =>
  Array.from({ length: n }, (_, i) => ({ input: `${i}\n`, output: `${i}\n`, testtype: "stdin" }));

test("RL filter: drop problems with fewer than N tests", () => {
  const problems: CodeProblem[] = [
    { tests: echoTests(16) },
    { tests: echoTests(15) },
    { tests: echoTests(30) },
  ];
  const { kept, dropped } = filterCodeProblemsByTestCount(problems, 16);
  assert.deepEqual(
    kept.map((p) => p.tests.length),
    [16, 30],
  );
  assert.equal(dropped.length, 1);
});

test("RL filter: keep problems whose sampled solutions pass above the threshold", async () => {
  const good = "```python\nprint(input())\n```";
  const bad = "```python\nprint(-1)\n```";
  const problems = [
    { id: "easy", tests: echoTests(3), sols: [good, good, good, bad] },
    { id: "half", tests: echoTests(3), sols: [good, bad] },
    { id: "hard", tests: echoTests(3), sols: [bad, bad, "no code"] },
  ];
  const pool = new CodeRunnerPool({ concurrency: 2 });
  const strict = await filterCodeProblemsBySolutions(problems, { pool, solutionsOf: (p) => p.sols });
  assert.deepEqual(
    strict.kept.map((p) => p.id),
    ["easy"],
  );
  assert.deepEqual(strict.passFractions, [0.75, 0.5, 0]);
  const inclusive = await filterCodeProblemsBySolutions(problems, {
    pool,
    solutionsOf: (p) => p.sols,
    inclusive: true,
  });
  assert.deepEqual(
    inclusive.kept.map((p) => p.id),
    ["easy", "half"],
  );
});

test("codeRewardForResponse: format error −1, soft reward over sampled tests", async () => {
  const tests: CodeTest[] = Array.from({ length: 20 }, (_, i) => ({
    input: `${i}\n`,
    output: `${i < 10 ? i : -1}\n`,
    testtype: "stdin",
  }));
  const none = await codeRewardForResponse("<think>hmm</think> no code", tests);
  assert.equal(none.reward, -1);
  assert.equal(none.result, null);
  const r = await codeRewardForResponse("<think>x</think>\n```python\nprint(input())\n```", tests, {
    seed: 3,
  });
  assert.equal(r.result?.verdicts.length, 16, "16 sampled tests, all run for the soft reward");
  const passes = r.result?.verdicts.filter((v) => v.status === "pass").length ?? 0;
  assert.equal(r.reward, (2 * passes) / 16 - 1);
  const gated = { thinkGate: true };
  assert.equal((await codeRewardForResponse("```python\nprint(1)\n```", tests, gated)).reward, -0.5);
  assert.equal((await codeRewardForResponse("x</think>```python\nprint(1)\n```", tests, gated)).reward, -2);
  const hard = await codeRewardForResponse("<think>x</think>\n```python\nprint(input())\n```", tests, {
    mode: "hard",
    maxTests: 100,
  });
  assert.equal(hard.reward, -1);
});
