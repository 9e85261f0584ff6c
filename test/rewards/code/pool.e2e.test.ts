import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import {
  CodeRunnerPool,
  type CodeRunResult,
  type CodeTest,
  LocalCodeExecutor,
} from "../../../src/rewards/code/index.js";

function processesOf(uids: number[]): string[] {
  if (process.getuid?.() !== 0) return [];
  const out: string[] = [];
  for (const uid of uids) {
    try {
      out.push(
        ...execFileSync("pgrep", ["-u", String(uid), "-a"], { encoding: "utf8" })
          .trim()
          .split("\n")
          .filter(Boolean),
      );
    } catch {
      // none
    }
  }
  return out;
}

function childrenOfThisProcess(): string[] {
  try {
    return execFileSync("pgrep", ["-P", String(process.pid), "-a"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .filter((l) => /bwrap|setpriv|prlimit|python3/.test(l));
  } catch {
    return [];
  }
}

test("load: 500 solutions × 10 tests through the pool on 2 slots; every result exactly once, nothing left running", async () => {
  const uidBase = 64000 + (process.pid % 500) * 4;
  const pool = new CodeRunnerPool({ concurrency: 2, sandbox: new LocalCodeExecutor({ uidBase }) });
  const N = 500;
  const seen = new Map<number, number>();
  const results = new Map<number, CodeRunResult>();
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: N }, async (_, k) => {
      // Solution k adds k; every 7th is off by one on odd inputs, every 50th crashes.
      const bug = k % 7 === 0 ? " + (x % 2)" : "";
      const crash = k % 50 === 0 ? "\nraise SystemExit(2)" : "";
      const code = `x = int(input())\nprint(x + ${k}${bug})${crash}`;
      const tests: CodeTest[] = Array.from({ length: 10 }, (_, i) => ({
        input: `${i}\n`,
        output: `${i + k}\n`,
        testtype: "stdin",
      }));
      const r = await pool.run(code, tests, { stopAtFirstFailure: false, timeoutMs: 5000 });
      seen.set(k, (seen.get(k) ?? 0) + 1);
      results.set(k, r);
    }),
  );
  const secs = (Date.now() - t0) / 1000;
  await pool.drain();
  assert.equal(seen.size, N);
  assert.ok([...seen.values()].every((c) => c === 1));
  for (let k = 0; k < N; k++) {
    const r = results.get(k) as CodeRunResult;
    assert.equal(r.verdicts.length, 10, `solution ${k}`);
    const expectPass = k % 50 === 0 ? 0 : k % 7 === 0 ? 5 : 10;
    assert.equal(
      r.verdicts.filter((v) => v.status === "pass").length,
      expectPass,
      `solution ${k}: ${JSON.stringify(r.verdicts)}`,
    );
    if (k % 50 === 0) assert.ok(r.verdicts.every((v) => v.status === "runtime_error"));
  }
  assert.deepEqual(processesOf([uidBase, uidBase + 1]), [], "no sandbox process survives");
  assert.deepEqual(childrenOfThisProcess(), [], "no child process of the driver survives");
  console.log(
    `# load: ${N} solutions × 10 tests in ${secs.toFixed(1)} s (${(N / secs).toFixed(1)} solutions/s)`,
  );
});
