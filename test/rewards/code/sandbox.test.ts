import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CodeRunnerPool,
  type CodeTest,
  LocalCodeExecutor,
  probeCodeSandbox,
  runCodeTests,
} from "../../../src/rewards/code/index.js";

const stdin = (input: string, output: string): CodeTest => ({ input, output, testtype: "stdin" });
const fn = (input: string, output: string): CodeTest => ({ input, output, testtype: "functional" });

test("stdin program: pass, wrong answer, all tests with stopAtFirstFailure off", async () => {
  const code = "n = int(input())\nprint(n * 2)\n";
  const r = await runCodeTests(code, [stdin("3\n", "6\n"), stdin("4\n", "9\n"), stdin("5\n", "10\n")], {
    stopAtFirstFailure: false,
  });
  assert.deepEqual(
    r.verdicts.map((v) => v.status),
    ["pass", "wrong_answer", "pass"],
  );
  assert.equal(r.passed, false);
  assert.ok(Math.abs(r.passRate - 2 / 3) < 1e-12);
  assert.match(r.verdicts[1].detail ?? "", /got "8", expected "9"/);
  assert.ok(r.verdicts[0].timeMs > 0 && (r.verdicts[0].memoryKb ?? 0) > 0);
});

test("stop at first failure skips the rest and counts them as failed", async () => {
  const r = await runCodeTests("print(input())", [stdin("a", "a"), stdin("b", "x"), stdin("c", "c")]);
  assert.deepEqual(
    r.verdicts.map((v) => v.status),
    ["pass", "wrong_answer"],
  );
  assert.ok(Math.abs(r.passRate - 1 / 3) < 1e-12);
});

test("functional tests call Solution().<fn>(*json args); a tuple becomes a list", async () => {
  const code =
    "class Solution:\n    def f(self, a: List[int], b: int):\n        return (sum(a) + b, len(a))\n";
  const r = await runCodeTests(code, [fn("[1, 2]\n3", "[6, 2]"), fn("[]\n0", "[0, 1]")], {
    starterCode: "class Solution:\n    def f(self, a: List[int], b: int) -> int:\n        ",
    stopAtFirstFailure: false,
  });
  assert.deepEqual(
    r.verdicts.map((v) => v.status),
    ["pass", "wrong_answer"],
  );
  assert.match(r.verdicts[1].detail ?? "", /got "\[0,0\]"/);
});

test("runtime errors report the last traceback line; syntax errors fail every test", async () => {
  const r = await runCodeTests("x = int(input())\nprint(1 // x)\n", [stdin("0", "0")]);
  assert.equal(r.verdicts[0].status, "runtime_error");
  assert.match(r.verdicts[0].detail ?? "", /ZeroDivisionError/);
  const s = await runCodeTests("def (:\n", [stdin("", "1"), stdin("", "1")], { stopAtFirstFailure: false });
  assert.deepEqual(
    s.verdicts.map((v) => v.status),
    ["runtime_error", "runtime_error"],
  );
  assert.match(s.verdicts[0].detail ?? "", /SyntaxError/);
  const e = await runCodeTests("import sys\nprint(5)\nsys.exit(3)\n", [stdin("", "5")]);
  assert.equal(e.verdicts[0].status, "runtime_error", "a non-zero exit fails even with the right output");
  const ok = await runCodeTests("import sys\nprint(5)\nsys.exit(0)\n", [stdin("", "5")]);
  assert.equal(ok.verdicts[0].status, "pass");
});

test("output printed from a non-daemon thread is kept; each test gets a fresh interpreter state", async () => {
  const code = [
    "import threading, sys",
    "sys.setrecursionlimit(10**6)",
    "threading.stack_size(1 << 26)",
    "base = globals().get('seen', 0)",
    "def main():",
    "    print(int(input()) + base)",
    "globals()['seen'] = base + 100",
    "threading.Thread(target=main).start()",
  ].join("\n");
  const r = await runCodeTests(code, [stdin("1", "1"), stdin("2", "2")]);
  assert.deepEqual(
    r.verdicts.map((v) => v.status),
    ["pass", "pass"],
  );
});

test("LiveCodeBench's prelude is there (typing names, collections) and a per-test timeout applies", async () => {
  const r = await runCodeTests("d = defaultdict(int)\nx: List[int] = [1]\nprint(gcd(12, 18))", [
    stdin("", "6"),
  ]);
  assert.equal(r.verdicts[0].status, "pass");
  const t = await runCodeTests("while True: pass", [stdin("", "")], { timeoutMs: 300 });
  assert.equal(t.verdicts[0].status, "timeout");
});

test("the pool bounds concurrency and returns each result once", async () => {
  const pool = new CodeRunnerPool({ concurrency: 2 });
  let maxSeen = 0;
  const runs = Array.from({ length: 6 }, (_, k) =>
    pool.run(`print(${k})`, [stdin("", String(k))]).then((r) => {
      maxSeen = Math.max(maxSeen, pool.pending);
      return r;
    }),
  );
  const results = await Promise.all(runs);
  assert.ok(results.every((r) => r.passed));
  await pool.drain();
  assert.equal(pool.pending, 0);
  assert.ok(maxSeen <= 6);
});

test("without bubblewrap the runner refuses, naming the package; unsafe-none runs loudly", async () => {
  assert.throws(
    () => new LocalCodeExecutor({ bwrapPath: "/nonexistent/bwrap" }),
    (e: Error) => /bubblewrap/.test(e.message) && /apt-get install -y bubblewrap/.test(e.message),
  );
  const unsafe = new LocalCodeExecutor({ isolation: "unsafe-none" });
  const r = await unsafe.runSolution("print(input())", [stdin("hi", "hi")], {}, 0);
  assert.equal(r.passed, true);
});

test("no tests is never a pass; mixed test types and a missing method name are sandbox errors", async () => {
  const none = await runCodeTests("print(1)", []);
  assert.equal(none.passed, false);
  assert.equal(none.passRate, 0);
  const mixed = await runCodeTests("print(1)", [stdin("", "1"), fn("1", "1")]);
  assert.equal(mixed.verdicts[0].status, "sandbox_error");
  const noName = await runCodeTests("class Solution: pass", [fn("1", "1")]);
  assert.match(noName.verdicts[0].detail ?? "", /fn_name or starter code/);
});

test("probeCodeSandbox reports a working sandbox", async () => {
  assert.deepEqual(await probeCodeSandbox(), { ok: true });
});
