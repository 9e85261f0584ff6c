import assert from "node:assert/strict";
import { test } from "node:test";
import { mathDifficultyScorer } from "../../src/data/index.js";
import { createDefaultScorer, type EvalProblem } from "../../src/eval/index.js";
import { type CodeTest, probeCodeSandbox, sampleCodeTests } from "../../src/rewards/code/index.js";
import { responseTestSeed } from "../../src/rewards/code/reward.js";
import {
  BINARY_RL_RULES,
  EVAL_RULES,
  KLEAR_REWARD,
  KLEAR_RL_RULES,
  type ScoreRules,
  scoreResponse,
} from "../../src/rewards/index.js";
import { mathReward } from "../../src/rewards/math/index.js";
import { rowToProblem } from "../../src/rows/index.js";

/** A verl row, read as an RL task reads it (rows/), and scored in the RL task scorer's shape. */
function rlScorer(rules: Readonly<ScoreRules>) {
  return async (row: Record<string, unknown>, response: string) => {
    const problem = rowToProblem({ row, file: "train.jsonl", line: 1 }, 0);
    const r = await scoreResponse(problem, response, { rules });
    return { reward: r.reward, correct: r.correct, extracted: r.extractedAnswer };
  };
}

const MATH_CASES: [gold: string, response: string][] = [
  ["73", "<think>hmm</think> the answer is \\boxed{73}"],
  ["73", "<think>hmm</think> the answer is \\boxed{74}"],
  ["\\frac{1}{2}", "<think>a</think> so $\\boxed{0.5}$"],
  ["\\text{Friday}", "<think>x</think> \\boxed{\\text{Friday}}"],
  ["(1,2)", "<think>x</think>\\boxed{(1, 2)}"],
  ["x^2", "<think>x</think> no answer at all"],
  ["4", "<think>still thinking \\boxed{4}"],
  ["4", "no open tag</think> \\boxed{4}"],
  ["4", "\\boxed{4}"],
  ["4", "\\boxed{5}"],
  ["4", ""],
];

test("math: the eval scorer, the RL task scorer, data tagging and mathReward give one verdict per rules", async () => {
  for (const rules of [KLEAR_RL_RULES, BINARY_RL_RULES, EVAL_RULES, { ...EVAL_RULES, thinkGate: true }]) {
    const inline = createDefaultScorer({ rules, mathWorkers: 0 });
    const pooled = createDefaultScorer({ rules, mathWorkers: 1 });
    const tag = mathDifficultyScorer({ rules });
    const rl = rlScorer(rules);
    try {
      for (const [gold, response] of MATH_CASES) {
        const problem: EvalProblem = { id: "p", kind: "math", question: "?", answer: gold };
        const row = { prompt: [{ role: "user", content: "?" }], reward_model: { ground_truth: gold } };
        const a = await inline.score(problem, response);
        const b = await pooled.score(problem, response);
        const r = await rl(row, response);
        const what = `${JSON.stringify(rules)} ${gold} ${JSON.stringify(response)}`;
        assert.deepEqual(a, b, what);
        assert.equal(r.correct, a.correct, what);
        assert.equal(r.extracted?.replace(/\s+/g, "") ?? null, a.extracted, what);
        assert.equal(await tag.score(row, response), a.correct, what);
        if (rules === KLEAR_RL_RULES || rules === BINARY_RL_RULES) {
          const m = mathReward(gold, response, { mode: rules.math, timeoutMs: 5000 });
          assert.equal(m.correct, r.correct, what);
          assert.equal(m.score, r.reward, what);
        }
      }
    } finally {
      await inline.close?.();
      await pooled.close?.();
    }
  }
});

test("Klear's format rules: no </think> −0.5, then no <think> −2, never correct; well-formed responses judge alike under every rule set", async () => {
  const p = { kind: "math" as const, answer: "4" };
  const truncated = await scoreResponse(p, "<think>still thinking \\boxed{4}");
  assert.equal(truncated.reward, KLEAR_REWARD.missingThinkClose);
  assert.equal(truncated.format, "missing_think_close");
  assert.equal(truncated.correct, false);
  const noOpen = await scoreResponse(p, "x</think> \\boxed{4}");
  assert.equal(noOpen.reward, KLEAR_REWARD.missingThinkOpen);
  assert.equal(noOpen.format, "missing_think_open");
  assert.equal((await scoreResponse(p, "<think>x</think> \\boxed{5}")).reward, KLEAR_REWARD.incorrect);
  const ok = await scoreResponse(p, "<think>x</think> \\boxed{4}");
  assert.deepEqual([ok.reward, ok.correct, ok.extractedAnswer, ok.format], [1, true, "4", "ok"]);
  // Without the gate (evaluation), the answer is read from a response that never thought aloud.
  assert.equal((await scoreResponse(p, "\\boxed{4}", { rules: EVAL_RULES })).correct, true);
  for (const [gold, response] of MATH_CASES.filter(
    ([, r]) => r.includes("<think>") && r.includes("</think>"),
  )) {
    const verdicts = await Promise.all(
      [KLEAR_RL_RULES, BINARY_RL_RULES, EVAL_RULES].map((rules) =>
        scoreResponse({ kind: "math", answer: gold }, response, { rules }),
      ),
    );
    assert.equal(new Set(verdicts.map((v) => v.correct)).size, 1, response);
  }
});

const addOneTests: CodeTest[] = Array.from({ length: 6 }, (_, i) => ({
  input: `${i}\n`,
  output: `${i + 1}\n`,
  testtype: "stdin",
}));
const CODE_CASES = [
  "<think>add one</think>\n```python\nprint(int(input()) + 1)\n```",
  "<think>oops</think>\n```python\nn = int(input())\nprint(n + 1 if n < 3 else n)\n```",
  "<think>no code</think> just prose",
  "```python\nprint(int(input()) + 1)\n```",
  "<think>truncated ```python\nprint(1)\n```",
];

test("code: the eval scorer and the RL task scorer give one verdict per rules (sandbox)", async (t) => {
  const probe = await probeCodeSandbox();
  if (!probe.ok) return t.skip(`sandbox unavailable: ${"reason" in probe ? probe.reason : "probe failed"}`);
  const groundTruth = JSON.stringify({
    inputs: addOneTests.map((x) => x.input),
    outputs: addOneTests.map((x) => x.output),
  });
  for (const rules of [KLEAR_RL_RULES, BINARY_RL_RULES, EVAL_RULES, { ...EVAL_RULES, thinkGate: true }]) {
    const evalScorer = createDefaultScorer({ rules });
    const rl = rlScorer(rules);
    for (const response of CODE_CASES) {
      const problem: EvalProblem = {
        id: "c",
        kind: "code",
        question: "?",
        tests: addOneTests,
        starterCode: "",
      };
      const row = { ability: "code", prompt: "?", reward_model: { ground_truth: groundTruth } };
      const a = await evalScorer.score(problem, response);
      const r = await rl(row, response);
      assert.equal(r.correct, a.correct, `${JSON.stringify(rules)} ${response}`);
    }
  }
  const soft = await scoreResponse({ kind: "code", tests: addOneTests }, CODE_CASES[1]);
  assert.equal(soft.passRate, 3 / 6);
  assert.equal(soft.reward, 2 * (3 / 6) - 1);
  const none = await scoreResponse({ kind: "code", tests: addOneTests }, CODE_CASES[2]);
  assert.deepEqual(
    [none.reward, none.format, none.correct],
    [KLEAR_REWARD.formatError, "no_code_block", false],
  );
});

test("each response draws its own code tests (Klear's per-response draw), replayably", () => {
  const tests = Array.from({ length: 40 }, (_, i) => i);
  const responses = Array.from(
    { length: 8 },
    (_, i) => `<think>try ${i}</think>\n\`\`\`python\nprint(${i})\n\`\`\``,
  );
  const draws = responses.map((r) => sampleCodeTests(tests, { seed: responseTestSeed(r) }).join(","));
  assert.ok(new Set(draws).size > 1, "responses in a group see different subsets");
  assert.deepEqual(
    responses.map((r) => sampleCodeTests(tests, { seed: responseTestSeed(r) }).join(",")),
    draws,
    "the same response draws the same subset",
  );
  assert.ok(draws.every((d) => d.split(",").length === 16));
});
