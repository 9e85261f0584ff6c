import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CodeRunnerPool, type CodeTest } from "../../../src/rewards/code/index.js";
import { LCB_SOLUTIONS } from "./fixtures/lcb-solutions.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const dataPath = resolve(repoRoot, "../shared/data/benchmarks/lcb_v5_public_tests.json");

interface LcbProblem {
  problem: string;
  starter_code: string;
  tests: CodeTest[];
}

test("LiveCodeBench v5 public tests: our solutions pass, wrong variants fail with the right reason", async (t) => {
  if (!existsSync(dataPath)) {
    t.skip("lcb conformance: ../shared/data not present");
    return;
  }
  const problems = JSON.parse(readFileSync(dataPath, "utf8")) as LcbProblem[];
  const pool = new CodeRunnerPool({ concurrency: 2 });
  const types = new Set<string>();
  await Promise.all(
    LCB_SOLUTIONS.map(async (fx) => {
      const p = problems[fx.index];
      assert.ok(
        p.problem.includes(fx.statement),
        `problem ${fx.index} is not the one the fixture was written for`,
      );
      types.add(p.tests[0].testtype);
      const limits = {
        starterCode: p.starter_code,
        timeoutMs: 2000,
        memoryMb: 512,
        outputLimitBytes: 1 << 20,
      };
      const good = await pool.run(fx.code, p.tests, { ...limits, stopAtFirstFailure: false });
      assert.equal(good.passed, true, `problem ${fx.index}: ${JSON.stringify(good.verdicts)}`);
      assert.equal(good.verdicts.length, p.tests.length);
      for (const w of fx.wrong) {
        const bad = await pool.run(w.code, p.tests, limits);
        assert.equal(bad.passed, false);
        const first = bad.verdicts.find((v) => v.status !== "pass");
        assert.equal(first?.status, w.status, `problem ${fx.index}: ${JSON.stringify(bad.verdicts)}`);
        if (w.detail) assert.match(first?.detail ?? "", w.detail);
      }
    }),
  );
  assert.deepEqual([...types].sort(), ["functional", "stdin"]);
});
