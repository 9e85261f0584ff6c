import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { sidecarPaths } from "../../src/data/index.js";
import { startFakeOpenAI } from "../helpers/fake-openai.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "klear-data-tag-e2e-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function klear(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(repoRoot, "src/cli/main.ts"), "data", ...args],
      {
        cwd: repoRoot,
      },
    );
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

const io = (k: number) => ({
  inputs: Array.from({ length: k }, (_, i) => `${i}\n`),
  outputs: Array.from({ length: k }, (_, i) => `${i + 1}\n`),
});

const GOOD = "<think>add one</think>\n```python\nprint(int(input()) + 1)\n```";
const BAD = "<think>oops</think>\n```python\nprint(int(input()) + 2)\n```";

test("klear data tag: math and code rows against a fake OpenAI-compatible server, scored by the verifier and the sandbox", async () => {
  // Canned answers per prompt: how many of the 4 samples are right.
  const plan: Record<string, { right: number; good: string; bad: string }> = {
    "Add one to the number read from stdin (16 tests).": { right: 3, good: GOOD, bad: BAD },
    "Add one, but only 4 tests.": { right: 4, good: GOOD, bad: BAD },
    "Add one (16 tests), mostly wrong.": { right: 1, good: GOOD, bad: BAD },
    "What is 2+2?": { right: 4, good: "\\boxed{4}", bad: "\\boxed{5}" },
    "What is 3+3?": { right: 1, good: "\\boxed{6}", bad: "\\boxed{5}" },
  };
  const fake = await startFakeOpenAI({
    respond: (req) => {
      const p = plan[req.prompt];
      const n = Number(req.body.n ?? 1);
      return Array.from({ length: n }, (_, i) => (p && i < p.right ? p.good : (p?.bad ?? "")));
    },
  });
  try {
    const rows = [
      {
        data_source: "code",
        ability: "code",
        prompt: [{ role: "user", content: "Add one to the number read from stdin (16 tests)." }],
        reward_model: { ground_truth: JSON.stringify(io(16)), style: "rule" },
      },
      {
        data_source: "code",
        ability: "code",
        prompt: [{ role: "user", content: "Add one, but only 4 tests." }],
        reward_model: { ground_truth: JSON.stringify(io(4)), style: "rule" },
      },
      {
        data_source: "code",
        ability: "code",
        prompt: [{ role: "user", content: "Add one (16 tests), mostly wrong." }],
        reward_model: { ground_truth: JSON.stringify(io(16)), style: "rule" },
      },
      {
        data_source: "math",
        ability: "math",
        prompt: [{ role: "user", content: "What is 2+2?" }],
        reward_model: { ground_truth: "4", style: "rule" },
      },
      {
        data_source: "math",
        ability: "math",
        prompt: [{ role: "user", content: "What is 3+3?" }],
        reward_model: { ground_truth: "6", style: "rule" },
      },
    ];
    const src = join(dir, "rl.jsonl");
    writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const out = join(dir, "rl.tagged.jsonl");
    const r = await klear([
      "tag",
      src,
      "--out",
      out,
      "--endpoint",
      fake.url,
      "--model",
      "fake",
      "--n",
      "4",
      "--rl-filter",
      "--quiet",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(readFileSync(sidecarPaths(out).manifest, "utf8"));
    assert.deepEqual(m.counts.removed, {
      "code-too-few-tests": 1,
      "code-low-pass-rate": 1,
      "math-no-majority": 1,
    });
    const kept = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      kept.map((k) => [k.prompt[0].content, k.passes, k.difficulty]),
      [
        ["Add one to the number read from stdin (16 tests).", 3, "easy"],
        ["What is 2+2?", 4, "easy"],
      ],
    );
  } finally {
    await fake.close();
  }
});
