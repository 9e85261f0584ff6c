import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runConvert } from "../../src/data/pipeline.js";

const repoRoot = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "klear-convert-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function klearData(args: string[]) {
  return spawnSync(
    process.execPath,
    ["--import", "tsx", join(repoRoot, "src/cli/main.ts"), "data", ...args],
    {
      cwd: repoRoot,
      encoding: "utf8",
    },
  );
}

/** stderr holds klear's own error and nothing else: no second error, no stack trace. */
function onlyKlearError(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 2, `one error and its fix, nothing more:\n${stderr}`);
  assert.match(lines[0], /^klear: /);
  assert.match(lines[1], /^ {2}fix: /);
  assert.doesNotMatch(stderr, /ENOENT|\n\s+at /);
  return lines[0];
}

const sftRows = join(dir, "sft.jsonl");
writeFileSync(
  sftRows,
  [
    { prompt: "Name a colour.", response: "Blue." },
    { prompt: "Name a fruit.", response: "Apple." },
  ]
    .map((r) => JSON.stringify(r))
    .join("\n"),
);

test("convert with zero rows to write to parquet prints only klear's error, with the counts and the first reason", () => {
  const r = klearData(["convert", sftRows, "--out", join(dir, "out.parquet"), "--to", "verl", "--quiet"]);
  assert.equal(r.status, 1);
  const line = onlyKlearError(r.stderr);
  assert.match(
    line,
    /no rows to write to .*out\.parquet: read 2, removed unconvertible 2; first: .*sft\.jsonl:1: .*no answer/,
  );
  assert.ok(!existsSync(join(dir, "out.parquet")));
});

test("convert of a missing input prints only klear's error (no raw ENOENT)", () => {
  const r = klearData(["convert", join(dir, "missing.jsonl"), "--out", join(dir, "out.jsonl"), "--quiet"]);
  assert.equal(r.status, 1);
  assert.match(onlyKlearError(r.stderr), /no such input file: .*missing\.jsonl/);
});

test("chat-format rows convert to verl rows, the answer read from the assistant's final answer", async () => {
  const chat = join(dir, "chat.jsonl");
  writeFileSync(
    chat,
    [
      {
        messages: [
          { role: "user", content: "What is 6 times 7?" },
          { role: "assistant", content: "<think>6*7 = 42</think>\nThe product is $\\boxed{42}$." },
        ],
      },
      {
        conversations: [
          { from: "human", value: "Half of 9?" },
          { from: "gpt", value: "It is \\boxed{\\frac{9}{2}}." },
        ],
      },
      // No boxed answer (a code reply): not a verl math row.
      {
        messages: [
          { role: "user", content: "Write f." },
          { role: "assistant", content: "```python\ndef f(x):\n    return x ** 2\n```" },
        ],
      },
    ]
      .map((r) => JSON.stringify(r))
      .join("\n"),
  );
  const out = join(dir, "chat.verl.jsonl");
  const m = await runConvert([chat], out, { to: "verl", quiet: true });
  assert.equal(m.counts.kept, 2, JSON.stringify(m.counts));
  assert.deepEqual(m.counts.removed, { unconvertible: 1 });
  const rows = readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    rows.map((r) => [r.prompt[0].content, r.reward_model.ground_truth]),
    [
      ["What is 6 times 7?", "42"],
      ["Half of 9?", "\\frac{9}{2}"],
    ],
  );
});
