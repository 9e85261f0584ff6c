import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { run } from "../../src/cli/commands/data.js";
import { DataStatsAccumulator, formatStatsText, LengthHistogram, runStats } from "../../src/data/index.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-stats-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const rows = [
  ...Array.from({ length: 30 }, (_, i) => ({
    messages: [
      { role: "user", content: `problem number ${i} about numbers` },
      { role: "assistant", content: `<think>${"step ".repeat(10 + i * 10)}</think> \\boxed{${i}}` },
    ],
    data_source: "openthoughts",
    difficulty: i % 10 < 8 ? "hard" : "easy",
  })),
  ...Array.from({ length: 10 }, (_, i) => ({
    problem: `short ${i}`,
    response: "ok",
    data_source: "numina",
    difficulty: "medium",
  })),
];

test("length histograms give exact count/mean/max and quantiles within a bucket", () => {
  const h = new LengthHistogram();
  for (let i = 1; i <= 1000; i++) h.add(i);
  const j = h.toJSON();
  assert.equal(j.count, 1000);
  assert.equal(j.mean, 500.5);
  assert.equal(j.max, 1000);
  assert.ok(Math.abs(j.p50 - 500) / 500 < 0.1, `p50 ${j.p50}`);
  assert.ok(Math.abs(j.p90 - 900) / 900 < 0.1, `p90 ${j.p90}`);
});

test("stats: counts per source, token lengths and the difficulty histogram, in text and HTML", async () => {
  const src = join(dir, "sft.jsonl");
  writeFileSync(src, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n{oops\n`);
  const html = join(dir, "stats.html");
  const json = join(dir, "stats.json");
  const r = await runStats([src], { html, json });
  assert.match(r.text, /rows: 40/);
  assert.match(r.text, /openthoughts\s+30\s+75\.0%/);
  assert.match(r.text, /numina\s+10\s+25\.0%/);
  assert.match(r.text, /difficulty:/);
  assert.match(r.text, /hard .* 24 \(60\.0%\)/);
  assert.deepEqual(r.malformed.byReason, { "bad-json": 1 });
  const page = readFileSync(html, "utf8");
  assert.match(page, /^<!doctype html>/);
  assert.match(page, /<table id="sources">/);
  assert.equal((page.match(/<svg /g) ?? []).length, 4);
  const data = JSON.parse(
    /<script type="application\/json" id="stats-data">(.*?)<\/script>/s.exec(page)?.[1] ?? "",
  );
  assert.equal(data.total.rows, 40);
  assert.deepEqual(data.total.difficulty, { hard: 24, easy: 6, medium: 10 });
  const onDisk = JSON.parse(readFileSync(json, "utf8"));
  assert.equal(onDisk.sources.openthoughts.rows, 30);
  assert.ok(onDisk.sources.openthoughts.responseTokens.max > onDisk.sources.numina.responseTokens.max);
  assert.ok(existsSync(`${html}.manifest.json`));
});

test("stats text stays readable for an empty dataset", () => {
  assert.match(formatStatsText(new DataStatsAccumulator()), /rows: 0/);
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await run(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

test("klear data CLI: every subcommand writes its output atomically with a manifest and leaves no temp files", async () => {
  const src = join(dir, "cli.jsonl");
  const data = [
    {
      problem: "Find the value of x such that two x plus three equals eleven.",
      answer: "4",
      data_source: "s1",
    },
    {
      problem: "find the value of X such that two x plus three equals eleven",
      answer: "4",
      data_source: "s1",
    },
    {
      problem: "How many ways can five books be arranged on a shelf in a row?",
      answer: "120",
      data_source: "s2",
    },
  ];
  writeFileSync(src, data.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const bench = join(dir, "bench.jsonl");
  writeFileSync(
    bench,
    `${JSON.stringify({ problem: "In how many ways can five books be arranged on a shelf in a row if order matters?" })}\n`,
  );
  const outDir = join(dir, "out");
  const runs: [string, string[]][] = [
    ["dedup", ["dedup", src, "--out", join(outDir, "dedup.jsonl"), "--quiet"]],
    ["decontam", ["decontam", src, "--out", join(outDir, "decontam.jsonl"), "--bench", bench, "--quiet"]],
    ["convert", ["convert", src, "--out", join(outDir, "train.parquet"), "--to", "verl", "--quiet"]],
    ["select", ["select", src, "--out", join(outDir, "select.jsonl"), "--k-center", "2", "--quiet"]],
  ];
  for (const [name, args] of runs) {
    const r = await cli(args);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /manifest /);
  }
  const files = readdirSync(outDir).sort();
  assert.deepEqual(
    files.filter((f) => f.startsWith(".")),
    [],
    "no temporary files left behind",
  );
  for (const base of ["dedup.jsonl", "decontam.jsonl", "train.parquet", "select.jsonl"]) {
    for (const suffix of ["", ".manifest.json", ".removed.jsonl", ".malformed.jsonl"]) {
      assert.ok(files.includes(base + suffix), `${base + suffix} missing`);
    }
    const m = JSON.parse(readFileSync(join(outDir, `${base}.manifest.json`), "utf8"));
    assert.equal(m.inputs[0].rows, 3);
    assert.match(m.inputs[0].sha256, /^[0-9a-f]{64}$/);
    assert.equal(typeof m.parameters, "object");
  }
  const dedup = JSON.parse(readFileSync(join(outDir, "dedup.jsonl.manifest.json"), "utf8"));
  assert.deepEqual(dedup.counts.removed, { exact: 1 });
  const deco = JSON.parse(readFileSync(join(outDir, "decontam.jsonl.manifest.json"), "utf8"));
  assert.deepEqual(deco.counts.removed, { "ngram-9": 1 });
  const stats = await cli(["stats", src]);
  assert.equal(stats.code, 0);
  assert.match(stats.stdout, /rows: 3/);
  assert.equal((await cli(["frobnicate"])).code, 2);
  assert.match((await cli(["--help"])).stdout, /dedup/);
  await assert.rejects(cli(["dedup", src]), /--out/);
  await assert.rejects(cli(["tag", src, "--out", join(outDir, "t.jsonl")]), /--endpoint/);
});

test("stats count real tokens with a model's tokenizer when given one", async () => {
  const tokDir = fileURLToPath(new URL("../../fixtures/model/qwen3-tokenizer-subset", import.meta.url));
  const src = join(dir, "tok.jsonl");
  writeFileSync(src, `${JSON.stringify({ problem: "Hello world", response: "The answer is 42." })}\n`);
  const approx = await runStats([src]);
  const real = await runStats([src], { tokenizer: join(tokDir, "tokenizer.json") });
  assert.match(real.text, /\(tokens\)/);
  assert.match(approx.text, /\(approx\. tokens\)/);
  assert.ok(real.stats.all.promptTokens.max >= 2);
});
