import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { run as evalCli } from "../../src/cli/commands/eval.js";

const FIXTURE_DIR = join(import.meta.dirname, "..", "..", "fixtures", "lcb");
const root = mkdtempSync(join(tmpdir(), "klear-lcb-v6-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));

const code = (body: string) => `<think>ok</think>\n\`\`\`python\n${body}\n\`\`\``;

test("klear eval on the v6 release file runs the decoded private tests in the sandbox", async () => {
  const responses = join(root, "responses.jsonl");
  const rows = [
    // Right: passes the public and the 12 private tests.
    { id: "abc400_a", response: code("a, b = map(int, input().split())\nprint(a + b)") },
    // Passes the one public test only: the private tests (base64/zlib/pickle in the file) must catch it.
    { id: "abc400_a", response: code("print(7)") },
    {
      id: "3600",
      response: code(
        "class Solution:\n    def countEven(self, nums: List[int]) -> int:\n        return sum(1 for x in nums if x % 2 == 0)",
      ),
    },
    {
      id: "3600",
      response: code("class Solution:\n    def countEven(self, nums: List[int]) -> int:\n        return 2"),
    },
  ];
  writeFileSync(responses, rows.map((r) => JSON.stringify(r)).join("\n"));
  const out = join(root, "run");
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(
      await evalCli([
        "--bench",
        "livecodebench_v6",
        "--data",
        FIXTURE_DIR,
        "--responses",
        responses,
        "--out",
        out,
        "--quiet",
      ]),
      0,
    );
  } finally {
    console.log = log;
  }
  const b = JSON.parse(readFileSync(join(out, "results.json"), "utf8")).benchmarks[0];
  assert.equal(b.name, "livecodebench_v6");
  assert.deepEqual(
    b.perProblem.map((p: { id: string; correct: number; n: number }) => [p.id, p.correct, p.n]),
    [
      ["abc400_a", 1, 2],
      ["3600", 1, 2],
    ],
  );
});
