import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { readDataRows, runConvert, toVerlRow } from "../../src/data/index.js";

/**
 * klear's verl parquet against pyarrow, the reader verl and HF datasets use: pyarrow reads klear's
 * files to the same rows, and klear reads pyarrow-written files to the same rows. Needs a Python with
 * pyarrow: $KLEAR_PYARROW_PYTHON, else the bench venv (`.cache/data-bench-venv`, `pip install pyarrow`).
 */
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const python =
  process.env.KLEAR_PYARROW_PYTHON ?? join(repoRoot, ".cache", "data-bench-venv", "bin", "python");
const oracle = fileURLToPath(new URL("./oracle/pyarrow_parquet.py", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "klear-data-pyarrow-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function havePyarrow(): boolean {
  if (!existsSync(python)) return false;
  try {
    execFileSync(python, ["-c", "import pyarrow"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const problems = [
  { problem: "Find $x$ if $2x=4$.", answer: "2", data_source: "numina", ability: "math", level: 1 },
  {
    problem: "Ünïcödé and 漢字 in a prompt.",
    answer: "\\frac{1}{2}",
    data_source: "openr1",
    ability: "math",
    level: 5,
  },
  {
    problem: "Read n, print n+1.",
    answer: JSON.stringify({ inputs: ["1\n"], outputs: ["2\n"] }),
    data_source: "taco",
    ability: "code",
    tags: ["io", "easy"],
  },
];

async function values(path: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const r of readDataRows(path)) out.push(r.value);
  return out;
}

test("pyarrow reads klear's verl parquet to the same rows, and klear reads pyarrow's", async (t) => {
  if (!havePyarrow()) {
    t.skip(`parquet interop: no python with pyarrow at ${python} (set KLEAR_PYARROW_PYTHON)`);
    return;
  }
  const src = join(dir, "problems.jsonl");
  writeFileSync(src, problems.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const ours = join(dir, "train.parquet");
  await runConvert([src], ours, { to: "verl", split: "train", quiet: true });
  const expected = problems.map((p, i) => toVerlRow(p, { split: "train", index: i }));
  const readByPyarrow = execFileSync(python, [oracle, "read", ours], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(readByPyarrow, expected);

  const verlJsonl = join(dir, "verl.jsonl");
  writeFileSync(verlJsonl, expected.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const theirs = join(dir, "pyarrow.parquet");
  execFileSync(python, [oracle, "write", verlJsonl, theirs]);
  assert.deepEqual(await values(theirs), expected);
});
