import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { syntheticVocabulary } from "../../src/data/index.js";
import { Rng } from "../../src/util/rng.js";
import { plantWithEdits } from "./decontam-helpers.js";

/**
 * A 1 GB jsonl (long-CoT-sized rows: a ~60-word prompt and a ~4 KB response) through `klear data
 * dedup` and then `klear data decontam`, each in its own process, whose peak RSS must stay under
 * 1 GB. The size can be lowered with KLEAR_DATA_E2E_MB for a quick local run.
 */
const TARGET_BYTES = Number(process.env.KLEAR_DATA_E2E_MB ?? 1024) * 1024 * 1024;
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "klear-data-1gb-"));
after(() => process.env.KLEAR_DATA_E2E_KEEP || rmSync(dir, { recursive: true, force: true }));

const BENCH_PROBLEMS = [
  "Let ABC be a triangle with integer side lengths whose perimeter is sixty and whose area is an integer; find the largest possible area of such a triangle.",
  "Find the number of ordered pairs of positive integers m and n such that m squared times n equals twenty to the power of twenty.",
];

function generate(path: string): { rows: number; nearDups: number; planted: number; malformed: number } {
  const rng = new Rng(42);
  const vocab = syntheticVocabulary(50_000, rng);
  // Pre-serialised, so writing a row costs one small JSON.stringify (the prompt), not 7 KB of escaping.
  const responses = Array.from({ length: 64 }, (_, k) =>
    JSON.stringify(
      `<think>${Array.from({ length: 700 }, () => vocab[rng.int(vocab.length)]).join(" ")}</think> The answer is \\boxed{${k}}.`,
    ),
  );
  // Recent originals only, so the generator itself stays small.
  const recent: string[][] = [];
  const fd = openSync(path, "w");
  let bytes = 0;
  let rows = 0;
  let nearDups = 0;
  let planted = 0;
  let malformed = 0;
  let chunk: string[] = [];
  let chunkBytes = 0;
  const push = (line: string) => {
    chunk.push(line);
    chunkBytes += line.length;
    if (chunkBytes > 8 << 20) {
      bytes += writeSync(fd, chunk.join(""));
      chunk = [];
      chunkBytes = 0;
    }
  };
  while (bytes + chunkBytes < TARGET_BYTES) {
    rows++;
    let words: string[];
    const u = rng.uniform();
    if (u < 0.1 && recent.length > 0) {
      // A near-duplicate: one substituted word (Jaccard ≈ 0.9 on 3-word shingles).
      words = [...recent[rng.int(recent.length)]];
      words[rng.int(words.length)] = vocab[rng.int(vocab.length)];
      nearDups++;
    } else {
      words = Array.from({ length: 50 + rng.int(20) }, () => vocab[rng.int(vocab.length)]);
      recent.push(words);
      if (recent.length > 2000) recent.splice(0, 1000);
    }
    let problem = words.join(" ");
    if (rows % 50_000 === 7 && planted < BENCH_PROBLEMS.length) {
      problem = plantWithEdits(BENCH_PROBLEMS[planted % 2]);
      planted++;
    }
    if (rows % 100_000 === 11) {
      push("{this row is not json\n");
      malformed++;
      continue;
    }
    push(
      `{"id":${rows},"data_source":"src-${rows % 3}","messages":[{"role":"user","content":${JSON.stringify(problem)}},{"role":"assistant","content":${responses[rng.int(responses.length)]}}]}\n`,
    );
  }
  bytes += writeSync(fd, chunk.join(""));
  closeSync(fd);
  return { rows, nearDups, planted, malformed };
}

function klear(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", join(repoRoot, "src/cli/main.ts"), "data", ...args],
    {
      cwd: repoRoot,
      encoding: "utf8",
      timeout: 600_000,
    },
  );
  return { status: r.status, stderr: r.stderr };
}

test(
  "a 1 GB jsonl goes through dedup and decontamination with peak RSS under 1 GB",
  { timeout: 900_000 },
  () => {
    const input = join(dir, "big.jsonl");
    const t0 = Date.now();
    const g = generate(input);
    const size = statSync(input).size;
    console.log(
      `generated ${(size / 2 ** 20).toFixed(0)} MiB, ${g.rows} rows in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    assert.ok(size >= TARGET_BYTES * 0.99);

    const deduped = join(dir, "dedup.jsonl");
    const d = klear(["dedup", input, "--out", deduped, "--quiet"]);
    assert.equal(d.status, 0, d.stderr);
    const dm = JSON.parse(readFileSync(`${deduped}.manifest.json`, "utf8"));
    console.log(
      `dedup: ${dm.durationSec.toFixed(1)} s (${dm.cpuSec.toFixed(1)} s CPU), peak RSS ${dm.peakRssMb} MB, removed ${JSON.stringify(dm.counts.removed)}`,
    );
    assert.ok(dm.peakRssMb < 1024, `dedup peak RSS ${dm.peakRssMb} MB`);
    assert.equal(dm.counts.read, g.rows);
    assert.equal(dm.counts.malformed, g.malformed);
    assert.deepEqual(dm.malformed.byReason, { "bad-json": g.malformed });
    const removed = (dm.counts.removed.near ?? 0) + (dm.counts.removed.exact ?? 0);
    assert.equal(dm.counts.kept + removed + dm.counts.malformed, dm.counts.read);
    assert.ok(
      removed >= g.nearDups * 0.97 && removed <= g.nearDups * 1.01 + 2,
      `removed ${removed} of ${g.nearDups}`,
    );

    const bench = join(dir, "bench.jsonl");
    const fd = openSync(bench, "w");
    for (const p of BENCH_PROBLEMS) writeSync(fd, `${JSON.stringify({ problem: p })}\n`);
    closeSync(fd);
    const clean = join(dir, "clean.jsonl");
    rmSync(input);
    const c = klear(["decontam", deduped, "--out", clean, "--bench", bench, "--quiet"]);
    assert.equal(c.status, 0, c.stderr);
    const cm = JSON.parse(readFileSync(`${clean}.manifest.json`, "utf8"));
    console.log(
      `decontam: ${cm.durationSec.toFixed(1)} s (${cm.cpuSec.toFixed(1)} s CPU), peak RSS ${cm.peakRssMb} MB, removed ${JSON.stringify(cm.counts.removed)}`,
    );
    assert.ok(cm.peakRssMb < 1024, `decontam peak RSS ${cm.peakRssMb} MB`);
    assert.deepEqual(cm.counts.removed, { "ngram-9": g.planted });
    assert.equal(cm.counts.kept, dm.counts.kept - g.planted);
    assert.ok(existsSync(`${clean}.removed.jsonl`));
  },
);
