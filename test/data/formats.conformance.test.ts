import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fromVerlRow, readDataRows, runConvert, type VerlRow } from "../../src/data/index.js";

const benchDir = fileURLToPath(new URL("../../../shared/data/benchmarks", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "klear-data-formats-conf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const FILES = ["aime24", "aime25", "hmmt_feb_2025", "math500", "amc23", "gsm8k_test", "lcb_v5_problems"];

async function values(path: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const r of readDataRows(path)) out.push(r.value);
  return out;
}

test("every public benchmark file survives jsonl → parquet → jsonl unchanged", async (t) => {
  if (!existsSync(join(benchDir, "aime24.jsonl"))) {
    t.skip("formats conformance: ../shared/data not present");
    return;
  }
  for (const name of FILES) {
    const src = join(benchDir, `${name}.jsonl`);
    const original = readFileSync(src, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l));
    const pq = join(dir, `${name}.parquet`);
    await runConvert([src], pq, { quiet: true });
    const back = join(dir, `${name}.jsonl`);
    await runConvert([pq], back, { quiet: true });
    assert.deepEqual(await values(back), original, name);
  }
});

test("math benchmarks become verl rows whose ground truth is the benchmark answer", async (t) => {
  if (!existsSync(join(benchDir, "math500.jsonl"))) {
    t.skip("formats conformance: ../shared/data not present");
    return;
  }
  const out = join(dir, "math500.verl.parquet");
  const m = await runConvert([join(benchDir, "math500.jsonl")], out, {
    to: "verl",
    dataSource: "math500",
    ability: "math",
    quiet: true,
  });
  assert.equal(m.counts.kept, 500);
  const rows = (await values(out)) as VerlRow[];
  const original = await values(join(benchDir, "math500.jsonl"));
  for (let i = 0; i < rows.length; i++) {
    assert.equal(rows[i].reward_model.ground_truth, original[i].answer);
    assert.equal(rows[i].prompt[0].content, original[i].problem);
    const back = fromVerlRow(rows[i]);
    delete back.data_source;
    delete back.ability;
    assert.deepEqual(back, original[i]);
  }
});
