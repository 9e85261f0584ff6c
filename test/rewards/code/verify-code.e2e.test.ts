import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const dir = mkdtempSync(join(tmpdir(), "klear-verify-code-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function klear(args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, "src/cli/main.ts"), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
  });
}

test("klear verify code: reads responses or code with tests, writes verdicts and rewards atomically", () => {
  const inPath = join(dir, "in.jsonl");
  const outPath = join(dir, "out.jsonl");
  const rows = [
    {
      id: "think-then-code",
      response: "<think>try ```python\nprint(0)\n```</think>\nHere:\n```python\nprint(int(input()) * 2)\n```",
      tests: [
        { input: "2\n", output: "4\n", testtype: "stdin" },
        { input: "3\n", output: "7\n", testtype: "stdin" },
      ],
    },
    {
      id: "functional",
      code: "class Solution:\n    def twice(self, xs):\n        return [2 * x for x in xs]\n",
      starter_code: "class Solution:\n    def twice(self, xs: List[int]) -> List[int]:\n        ",
      tests: JSON.stringify([{ input: "[1, 2]", output: "[2, 4]", testtype: "functional" }]),
    },
    {
      id: "no-code",
      response: "I could not solve it.",
      tests: [{ input: "", output: "1", testtype: "stdin" }],
    },
    {
      id: "klear-ground-truth",
      code: "print(input()[::-1])",
      reward_model: {
        ground_truth: JSON.stringify({ inputs: ["abc\n", "xy\n"], outputs: ["cba\n", "yx\n"] }),
      },
    },
    {
      id: "no-open-think",
      response: "x</think>\n```python\nprint(1)\n```",
      tests: [{ input: "", output: "1", testtype: "stdin" }],
    },
  ];
  writeFileSync(inPath, rows.map((r) => JSON.stringify(r)).join("\n"));
  const r = klear(["verify", "code", "--in", inPath, "--out", outPath, "--reward", "soft"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /verify code/);
  const out = readFileSync(outPath, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    out.map((o) => o.id),
    rows.map((o) => o.id),
  );
  assert.equal(out[0].pass_rate, 0.5);
  assert.equal(out[0].reward, 0, "soft reward: 2·0.5 − 1");
  assert.deepEqual(
    out[0].verdicts.map((v: { status: string }) => v.status),
    ["pass", "wrong_answer"],
  );
  assert.equal(out[1].passed, true);
  assert.equal(out[1].reward, 1);
  assert.equal(out[2].reward, -1);
  assert.equal(out[2].passed, false);
  assert.equal(out[3].passed, true);
  assert.equal(out[4].reward, 1, "ungated by default");

  const hard = klear(["verify", "code", "--in", inPath, "--out", outPath, "--quiet"]);
  assert.equal(hard.status, 0, hard.stderr);
  const first = JSON.parse(readFileSync(outPath, "utf8").split("\n")[0]);
  assert.equal(first.reward, -1);

  const gated = klear(["verify", "code", "--in", inPath, "--out", outPath, "--quiet", "--think-gate"]);
  assert.equal(gated.status, 0, gated.stderr);
  const gatedRows = readFileSync(outPath, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(gatedRows[4].reward, -2, "</think> without <think>");
  assert.equal(gatedRows[0].reward, -1, "gate passed, then the hard reward");
  assert.equal(gatedRows[1].passed, true, "bare code is not gated");
  assert.equal(gatedRows[2].reward, -0.5, "no </think>");

  const bad = klear(["verify", "code", "--in", inPath]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--out/);
  const badMode = klear(["verify", "code", "--in", inPath, "--out", outPath, "--reward", "nope"]);
  assert.match(badMode.stderr, /hard, soft, pass-rate/);
});
