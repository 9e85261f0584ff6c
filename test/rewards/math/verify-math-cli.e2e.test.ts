import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "../../..");

function klear(args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
  });
}

test("klear verify math: keeps fields, adds verdicts, reports malformed lines by number", () => {
  const dir = mkdtempSync(join(tmpdir(), "klear-vm-"));
  const input = join(dir, "in.jsonl");
  const output = join(dir, "out.jsonl");
  writeFileSync(
    input,
    [
      JSON.stringify({
        id: 1,
        gold: "\\frac{1}{2}",
        response: "<think>…</think> so $\\boxed{0.5}$",
        extra: { keep: true },
      }),
      JSON.stringify({ id: 2, gold: "3", response: "the answer is \\boxed{4}" }),
      "{not json",
      JSON.stringify({
        id: 3,
        gold: 27,
        response: "Final Answer: The final answer is $27$. I hope it is correct.",
      }),
      JSON.stringify({
        id: 4,
        gold: "1",
        response: "\\boxed{\\sum_{a=1}^{2000}\\sum_{b=1}^{2000}\\sum_{c=1}^{2000} abc}",
      }),
      JSON.stringify({ id: 5, gold: "1" }),
      "",
    ].join("\n"),
  );
  const r = klear([
    "verify",
    "math",
    "--in",
    input,
    "--out",
    output,
    "--workers",
    "1",
    "--timeout-ms",
    "3000",
  ]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /in\.jsonl:3: not valid JSON/);
  const rows = readFileSync(output, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, 5);
  assert.deepEqual(
    rows.map((x) => x.id),
    [1, 2, 3, 4, 5],
  );
  assert.equal(rows[0].correct, true);
  assert.deepEqual(rows[0].extra, { keep: true });
  assert.equal(rows[0].extracted_gold, "\\frac{1}{2}");
  assert.equal(rows[0].extracted_pred, "0.5");
  assert.equal(rows[1].correct, false);
  assert.equal(rows[1].extracted_pred, "4");
  assert.equal(rows[2].correct, true);
  assert.equal(rows[3].correct, false);
  assert.match(rows[3].error, /timed out/);
  assert.match(rows[4].error, /response/);
  // Atomic write: no temporary file is left next to the output.
  assert.deepEqual(readdirSync(dir).sort(), ["in.jsonl", "out.jsonl"]);
});

test("klear verify math: missing flags are errors that name the fix", () => {
  const r = klear(["verify", "math", "--in", "x.jsonl"]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--out/);
});
