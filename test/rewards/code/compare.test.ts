import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CODE_FORMAT_ERROR_REWARD,
  codeReward,
  compareCodeStdout,
  extractCode,
  fnNameFromStarter,
  parsePythonJson,
  pythonEquals,
  sampleCodeTests,
} from "../../../src/rewards/code/index.js";

test("extractCode takes the last ```python block after </think>", () => {
  const r =
    "<think>\n```python\nprint('draft')\n```\n</think>\nAnswer:\n```python\nprint(1)\n```\nthen\n```python\nprint(2)\n```\n";
  assert.equal(extractCode(r), "print(2)");
  assert.equal(extractCode("no fences here"), null);
  assert.equal(
    extractCode("<think>unfinished ```python\nprint(1)\n```"),
    null,
    "an unclosed think block has no program",
  );
  assert.equal(extractCode("```python\nx = 1\nprint(x)\n```"), "x = 1\nprint(x)");
  assert.equal(extractCode("```py\nprint(1)\n```"), null, "strict: only the python tag, as Klear");
  assert.equal(extractCode("```py\nprint(1)\n```", { strict: false }), "print(1)");
  assert.equal(extractCode("```\nprint(3)\n```", { strict: false }), "print(3)");
  assert.equal(extractCode("```python\nprint(1)\n```", { requireThinkClose: true }), null);
});

test("LiveCodeBench stdout comparison: stripped lines, then Decimal tokens", () => {
  assert.equal(compareCodeStdout("3\n", "3"), null);
  assert.equal(compareCodeStdout("  1 2 3  \r\n4\n\n", "1 2 3\n4\n"), null);
  assert.equal(compareCodeStdout("1.50 2", "1.5 2.0"), null);
  assert.equal(compareCodeStdout("1e3", "1000"), null);
  assert.equal(compareCodeStdout("0.0", "-0"), null);
  assert.match(compareCodeStdout("1 2", "1  3") ?? "", /line 1/);
  assert.match(compareCodeStdout("Yes", "YES") ?? "", /line 1/, "case matters");
  assert.match(compareCodeStdout("1\n2", "1") ?? "", /mismatched output length/);
  assert.match(compareCodeStdout("nan", "nan") ?? "x", /./, "NaN never equals, as Decimal");
  assert.match(compareCodeStdout("1.0000001", "1") ?? "", /line 1/, "no float tolerance");
  assert.match(compareCodeStdout("1 2 3", "1 2") ?? "", /line 1/);
});

test("Python == over JSON values: exact ints, bool is int, tuple is not list", () => {
  const eq = (a: string, b: string) => pythonEquals(parsePythonJson(a), parsePythonJson(b));
  assert.ok(eq("[1, 2, 3]", "[1,2,3]"));
  assert.ok(eq("true", "1"));
  assert.ok(eq("1.0", "1"));
  assert.ok(!eq("12345678901234567891", "12345678901234567890"), "big ints stay exact");
  assert.ok(eq("12345678901234567890", "12345678901234567890"));
  assert.ok(eq('{"a": [1, {"b": null}]}', '{"a": [1.0, {"b": null}]}'));
  assert.ok(!eq('"595"', "595"));
  assert.ok(!eq("[1, 2]", "[2, 1]"));
  assert.ok(!eq("NaN", "NaN"));
  assert.ok(!pythonEquals({ $tuple: [1, 2] }, [1, 2]));
  assert.ok(!pythonEquals({ $repr: "{1, 2}", $type: "set" }, [1, 2]));
  assert.ok(pythonEquals(10n ** 20n, 1e20), "int vs float compares exact values");
  assert.throws(() => parsePythonJson("[1, 2"), SyntaxError);
});

test("rewards: hard, the authors' soft 2·p−1, pass rate", () => {
  const r = { passed: false, passRate: 0.25, verdicts: [] };
  assert.equal(codeReward(r, "hard"), -1);
  assert.equal(codeReward(r, "soft"), -0.5);
  assert.equal(codeReward(r, "pass-rate"), 0.25);
  assert.equal(codeReward({ passed: true, passRate: 1, verdicts: [] }, "soft"), 1);
  assert.equal(CODE_FORMAT_ERROR_REWARD, -1);
  assert.throws(() => codeReward(r, "nope" as "hard"), /unknown code reward mode/);
});

test("test sampling: up to 16, seeded, reproducible, original order", () => {
  const tests = Array.from({ length: 40 }, (_, i) => i);
  const a = sampleCodeTests(tests, { seed: 7 });
  assert.equal(a.length, 16);
  assert.deepEqual(a, sampleCodeTests(tests, { seed: 7 }));
  assert.notDeepEqual(a, sampleCodeTests(tests, { seed: 8 }));
  assert.deepEqual(
    a,
    [...a].sort((x, y) => x - y),
  );
  assert.equal(new Set(a).size, 16);
  assert.deepEqual(sampleCodeTests([1, 2, 3], { seed: 1 }), [1, 2, 3]);
});

test("fnNameFromStarter reads the LeetCode method", () => {
  assert.equal(
    fnNameFromStarter("class Solution:\n    def maxScore(self, a: List[int]) -> int:\n        "),
    "maxScore",
  );
  assert.equal(fnNameFromStarter(""), undefined);
});
