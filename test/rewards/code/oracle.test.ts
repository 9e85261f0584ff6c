import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  compareCodeStdout,
  parsePythonJson,
  pythonEquals,
  runCodeTests,
} from "../../../src/rewards/code/index.js";

// Python itself is the oracle for LiveCodeBench's comparison rules: random cases are judged by
// LCB's own logic (Decimal, str.strip/split, json.loads + ==) run inside the sandbox, and by our TS.
const ORACLE = String.raw`
import json, sys
from decimal import Decimal
def lines(v):
    v = v.strip()
    return [l.strip() for l in v.split("\n")]
def conv(line):
    try:
        return True, [Decimal(e) for e in line.split()]
    except Exception:
        return False, []
def grade(pred, gt):
    p, g = lines(pred), lines(gt)
    if len(p) != len(g):
        return False
    for a, b in zip(p, g):
        if a == b:
            continue
        ok, da = conv(a)
        if not ok:
            return False
        ok, db = conv(b)
        if not ok:
            return False
        try:
            if da == db:
                continue
        except Exception:
            return False
        return False
    return True
cases = json.loads(sys.stdin.read())
out = [1 if grade(a, b) else 0 for a, b in cases["stdout"]]
out += [1 if json.loads(a) == json.loads(b) else 0 for a, b in cases["json"]]
print("\n".join(map(str, out)))
`;

// KLEAR_ORACLE_SEED=n explores other cases; the default keeps the suite deterministic.
const SEED = Number(process.env.KLEAR_ORACLE_SEED ?? 42);
const TOKENS = [
  "1",
  "1.0",
  "01",
  "-0",
  "0",
  "+1",
  "1e3",
  "1E+3",
  "1000",
  ".5",
  "0.50",
  "5.",
  "1_000",
  "1__0",
  "inf",
  "Infinity",
  "-inf",
  "nan",
  "NaN",
  "sNaN",
  "abc",
  "Yes",
  "YES",
  "1.2.3",
  "0x10",
  "-1",
  "1e",
  "2.5e-1",
  "0.25",
  "12345678901234567890",
  "12345678901234567891",
  "1e400",
  "1E400",
  "in_f",
  "_1",
  "1_",
  "+nan",
  "INF",
  "-sNaN12",
  "nan0x",
  "1e+",
  "e5",
  "+",
  "-",
  ".",
  "1.e5",
  "0e0",
  "-0.000",
  "00.00e-2",
];
const SEPARATORS = [" ", "  ", "\t", " \r", "\u000b", "\u001c", "\u00a0", "\u2003"];

const lineArb = fc
  .array(fc.tuple(fc.constantFrom(...TOKENS), fc.constantFrom(...SEPARATORS)), { minLength: 0, maxLength: 4 })
  .map((ts) => ts.map(([t, s]) => t + s).join(""));
const textArb = fc
  .tuple(fc.array(lineArb, { minLength: 1, maxLength: 3 }), fc.constantFrom("", "\n", "\n\n", " \n"))
  .map(([ls, end]) => ls.join("\n") + end);

// No NaN here: json.loads returns one shared NaN object, and list == compares identity first, so
// Python calls two parsed NaN lists equal, which no solution's freshly computed NaN ever is.
const scalarJson = fc.constantFrom(
  "1",
  "1.0",
  "true",
  "false",
  "0",
  "null",
  '"1"',
  '"a"',
  "12345678901234567890",
  "12345678901234567891",
  "1e20",
  "100000000000000000000",
  "1e400",
  "-Infinity",
  "-0.0",
  "0.1",
  "0.10000000000000001",
  "2",
);
const jsonArb: fc.Arbitrary<string> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalarJson,
    fc.array(tie("value") as fc.Arbitrary<string>, { maxLength: 3 }).map((xs) => `[${xs.join(", ")}]`),
    fc
      .array(fc.tuple(fc.constantFrom('"a"', '"b"', '"1"'), tie("value") as fc.Arbitrary<string>), {
        maxLength: 2,
      })
      .map((kv) => `{${kv.map(([k, v]) => `${k}: ${v}`).join(", ")}}`),
  ),
})).value;

test("stdout and JSON equality agree with Python on random cases", async () => {
  const stdoutCases = fc.sample(fc.tuple(textArb, textArb), { numRuns: 300, seed: SEED });
  // Pairs built from the same tokens differ only in formatting, so equal verdicts are common too.
  for (const [a] of stdoutCases.slice(0, 100)) stdoutCases.push([a, a.replace(/ +/g, " ").trim()]);
  const jsonCases = fc.sample(fc.tuple(jsonArb, jsonArb), { numRuns: 300, seed: SEED + 1 });
  for (const [a] of jsonCases.slice(0, 100)) jsonCases.push([a, a.replace(/\.0\b/g, "")]);
  const expected = [
    ...stdoutCases.map(([a, b]) => (compareCodeStdout(a, b) === null ? "1" : "0")),
    ...jsonCases.map(([a, b]) => (pythonEquals(parsePythonJson(a), parsePythonJson(b)) ? "1" : "0")),
  ];
  const r = await runCodeTests(
    ORACLE,
    [
      {
        input: JSON.stringify({ stdout: stdoutCases, json: jsonCases }),
        output: expected.join("\n"),
        testtype: "stdin",
      },
    ],
    { prelude: false, timeoutMs: 20_000 },
  );
  if (r.verdicts[0].status !== "pass") {
    // Name the first disagreeing case rather than a long diff: the line number is the case index.
    const k = Number(/line (\d+)/.exec(r.verdicts[0].detail ?? "")?.[1] ?? 0) - 1;
    const all = [...stdoutCases.map((c) => ["stdout", ...c]), ...jsonCases.map((c) => ["json", ...c])];
    assert.fail(
      `oracle disagreement on ${JSON.stringify(all[k])}: ours ${expected[k]} (${r.verdicts[0].detail})`,
    );
  }
  assert.ok(expected.includes("1") && expected.includes("0"));
});

test("functional results: harness encoding + our == agree with Python's (LCB: tuple→list, then ==)", async () => {
  const pairs: [string, string][] = [
    ["(1, 2)", "[1, 2]"],
    ["[(1, 2)]", "[[1, 2]]"],
    ["True", "1"],
    ["1", "true"],
    ["1.0", "1"],
    ["10**20", "100000000000000000000"],
    ["10**20 + 1", "100000000000000000000"],
    ["float(10**20)", "100000000000000000000"],
    ["0.1 + 0.2", "0.3"],
    ["0.1 + 0.2", "0.30000000000000004"],
    ["{1: 2}", '{"1": 2}'],
    ["{'1': 2}", '{"1": 2}'],
    ["{'a': [1, (2,)]}", '{"a": [1, [2]]}'],
    ["{1, 2}", "[1, 2]"],
    ["frozenset()", "[]"],
    ["None", "null"],
    ["'595'", '"595"'],
    ["595", '"595"'],
    ["float('inf')", "Infinity"],
    ["float('nan')", "NaN"],
    ["-0.0", "0"],
    ["[]", "[]"],
    ["()", "[]"],
    ["((),)", "[[]]"],
    ["'a\\u00e9\\n'", '"a\\u00e9\\n"'],
    ["[True, False]", "[1, 0]"],
    ["2**70 * 1.0", "1180591620717411303424"],
    ["range(3)", "[0, 1, 2]"],
    ["b'ab'", '"ab"'],
    ["{'a': 1, 'b': 2}", '{"b": 2, "a": 1}'],
    ["{'a': 1}", '{"a": 1, "b": 2}'],
    ["[1, [2, [3, [4]]]]", "[1, [2, [3, [4]]]]"],
  ];
  const code = `CASES = [${pairs.map(([p]) => p).join(", ")}]\nclass Solution:\n    def f(self, k):\n        return CASES[k]\n`;
  const ours = await runCodeTests(
    code,
    pairs.map(([, j], k) => ({ input: String(k), output: j, testtype: "functional" as const })),
    { fnName: "f", stopAtFirstFailure: false },
  );
  const oracle = [
    "import json",
    `CASES = [${pairs.map(([p]) => p).join(", ")}]`,
    `EXPECTED = ${JSON.stringify(pairs.map(([, j]) => j))}`,
    "for got, exp in zip(CASES, EXPECTED):",
    "    got = list(got) if isinstance(got, tuple) else got",
    "    print(1 if got == json.loads(exp) else 0)",
  ].join("\n");
  const got = ours.verdicts.map((v) => (v.status === "pass" ? "1" : "0"));
  // Python prints its verdict per case; ours are the expected output, so a mismatch names the case.
  const check = await runCodeTests(oracle, [{ input: "", output: got.join("\n"), testtype: "stdin" }]);
  const disagreement = /line (\d+)/.exec(check.verdicts[0].detail ?? "");
  assert.equal(
    check.verdicts[0].status,
    "pass",
    disagreement
      ? `disagree on ${JSON.stringify(pairs[Number(disagreement[1]) - 1])}`
      : check.verdicts[0].detail,
  );
  assert.ok(got.includes("1") && got.includes("0"));
});
