import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  loadDecontamBenchmark,
  normalizeText,
  runDecontam,
  sidecarPaths,
  syntheticCorpus,
} from "../../src/data/index.js";
import { Rng } from "../../src/util/rng.js";
import { plantWithEdits, wordCount } from "./decontam-helpers.js";

const benchDir = fileURLToPath(new URL("../../../shared/data/benchmarks", import.meta.url));
const present = existsSync(join(benchDir, "aime24.jsonl")) && existsSync(join(benchDir, "math500.jsonl"));
const dir = mkdtempSync(join(tmpdir(), "klear-data-decontam-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("planted AIME 2024 and MATH-500 problems with small word-level edits are removed, each with its 9-gram", async (t) => {
  if (!present) {
    t.skip("decontam conformance: ../shared/data not present");
    return;
  }
  const aime = await loadDecontamBenchmark("aime24", benchDir);
  const math500 = await loadDecontamBenchmark("math500", benchDir);
  assert.equal(aime.length, 30);
  assert.equal(math500.length, 500);
  const rng = new Rng(5);
  const mathPicks = rng.shuffle(math500.filter((b) => wordCount(b.text) >= 24)).slice(0, 60);
  const aimePicks = aime.filter((b) => wordCount(b.text) >= 24);
  const planted = [...aimePicks, ...mathPicks];
  // Clean rows: unrelated synthetic prompts and ordinary math prompts written for this test.
  const clean = [
    ...[...syntheticCorpus({ rows: 800, duplicateFraction: 0, seed: 9 })].map((r) => r.problem),
    "Let n be a positive integer such that the sum of its digits equals twelve. How many such n are below one thousand?",
    "A bag holds four red marbles and six blue marbles. Two marbles are drawn without replacement; what is the probability both are blue?",
    "Prove that for every real number x the inequality x squared plus one is at least two times x holds, and find when equality occurs.",
  ];
  const rows: { problem: string; answer: string; planted?: string }[] = [];
  const plantAt = new Set<number>();
  for (let i = 0, p = 0; i < clean.length || p < planted.length; i++) {
    if (p < planted.length && (i % 7 === 3 || i >= clean.length)) {
      const b = planted[p++];
      plantAt.add(rows.length + 1);
      rows.push({ problem: plantWithEdits(b.text), answer: "0", planted: `${b.benchmark}:${b.id}` });
    }
    if (i < clean.length) rows.push({ problem: clean[i], answer: "1" });
  }
  const src = join(dir, "train.jsonl");
  writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const out = join(dir, "clean.jsonl");
  const m = await runDecontam([src], out, {
    benchmarks: ["aime24", "math500"],
    benchmarkDir: benchDir,
    quiet: true,
  });
  assert.equal(m.parameters.n, 9);
  const removed = readFileSync(sidecarPaths(out).removed, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(removed.length, planted.length, "every planted problem and nothing else is removed");
  assert.deepEqual(new Set(removed.map((r) => r.line)), plantAt);
  const byKey = new Map([...aime, ...math500].map((b) => [`${b.benchmark}:${b.id}`, b]));
  for (const r of removed) {
    assert.equal(r.rule, "ngram-9");
    const row = rows[r.line - 1];
    assert.equal(`${r.benchmark}:${r.benchmarkId}`, row.planted);
    assert.equal(r.ngram.split(" ").length, 9);
    // The reported 9-gram is in both the benchmark problem and the training prompt (normalised).
    assert.ok(normalizeText(byKey.get(row.planted as string)?.text ?? "").includes(r.ngram));
    assert.ok(normalizeText(row.problem).includes(r.ngram));
  }
  assert.equal(m.counts.kept, clean.length);
  assert.deepEqual(m.counts.removed, { "ngram-9": planted.length });
  console.log(
    `decontam: removed ${removed.length} planted rows (${aimePicks.length} AIME24 + ${mathPicks.length} MATH-500), kept ${m.counts.kept} clean rows`,
  );
});

test("benchmarks load by file path too, and every local benchmark name resolves", async (t) => {
  if (!present) {
    t.skip("decontam conformance: ../shared/data not present");
    return;
  }
  const byPath = await loadDecontamBenchmark(join(benchDir, "aime24.jsonl"));
  assert.equal(byPath.length, 30);
  assert.equal(byPath[0].benchmark, "aime24");
  for (const name of ["aime25", "hmmt25", "amc23", "gsm8k", "lcb_v5"]) {
    const items = await loadDecontamBenchmark(name, benchDir);
    assert.ok(items.length >= 30, `${name}: ${items.length}`);
  }
});

test("--bench all loads the whole eval suite (AIME 24/25, HMMT 25, MATH-500, AMC 23, LCB v5)", async (t) => {
  if (!present) {
    t.skip("decontam conformance: ../shared/data not present");
    return;
  }
  const src = join(dir, "one.jsonl");
  writeFileSync(
    src,
    `${JSON.stringify({ problem: "a clean prompt about nothing in particular at all today" })}\n`,
  );
  const m = await runDecontam([src], join(dir, "one.out.jsonl"), {
    benchmarks: ["all"],
    benchmarkDir: benchDir,
    quiet: true,
  });
  assert.deepEqual(Object.keys(m.parameters.benchmarks as Record<string, number>), [
    "aime24",
    "aime25",
    "hmmt_feb_2025",
    "math500",
    "amc23",
    "livecodebench_v5",
  ]);
  assert.equal(m.counts.kept, 1);
});
