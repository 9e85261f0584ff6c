/**
 * bench:data — MinHash LSH near-duplicate removal over the same synthetic corpus with klear and with
 * datasketch (Python, from PyPI, in a venv under .cache/ that this script creates when missing).
 * Both sides do the same work per row: parse the jsonl row, normalise the prompt, 3-word shingles,
 * a 128-permutation signature, an LSH query with the same bands×rows, confirmation by estimated
 * Jaccard, insertion. Medians of several runs; the peer runs in the same invocation.
 *
 *   npm run bench:data            (KLEAR_BENCH_DATA_ROWS=20000, KLEAR_BENCH_DATA_RUNS=5)
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Deduplicator, readDataRows, rowPromptText, syntheticCorpus } from "../src/data/index.js";

const ROWS = Number(process.env.KLEAR_BENCH_DATA_ROWS ?? 20_000);
const RUNS = Number(process.env.KLEAR_BENCH_DATA_RUNS ?? 5);
const THRESHOLD = 0.8;
const NUM_PERM = 128;
const SHINGLE = 3;

const root = resolve(import.meta.dirname, "..");
const venv = join(root, ".cache", "data-bench-venv");
const python = join(venv, "bin", "python");

function ensurePeer(): void {
  if (existsSync(python)) {
    try {
      execFileSync(python, ["-c", "import datasketch"], { stdio: "ignore" });
      return;
    } catch {
      // installed venv without datasketch: install below
    }
  } else {
    console.log(`creating ${venv} (datasketch from PyPI)`);
    execFileSync("/usr/bin/python3", ["-m", "venv", venv], { stdio: "inherit" });
  }
  execFileSync(join(venv, "bin", "pip"), ["install", "--quiet", "datasketch"], { stdio: "inherit" });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function klearRun(
  path: string,
  bands: number,
  rows: number,
): Promise<{ seconds: number; removed: number; n: number }> {
  const t0 = performance.now();
  const dedup = new Deduplicator({
    exact: false,
    threshold: THRESHOLD,
    numPerm: NUM_PERM,
    shingleSize: SHINGLE,
    bands,
    rows,
  });
  let removed = 0;
  let n = 0;
  for await (const rec of readDataRows(path)) {
    if (dedup.check(rowPromptText(rec.value) ?? "", rec)) removed++;
    n++;
  }
  return { seconds: (performance.now() - t0) / 1000, removed, n };
}

async function main(): Promise<void> {
  ensurePeer();
  const dir = join(root, "bench", "out");
  mkdirSync(dir, { recursive: true });
  const corpus = join(dir, `data-corpus-${ROWS}.jsonl`);
  if (!existsSync(corpus)) {
    const lines: string[] = [];
    for (const r of syntheticCorpus({ rows: ROWS, duplicateFraction: 0.2, maxEdits: 3, seed: 1 })) {
      lines.push(JSON.stringify(r));
    }
    writeFileSync(corpus, `${lines.join("\n")}\n`);
  }
  // One LSH configuration for both sides: klear's default for the threshold.
  const probe = new Deduplicator({
    exact: false,
    threshold: THRESHOLD,
    numPerm: NUM_PERM,
    shingleSize: SHINGLE,
  });
  const { bands, rows } = probe.lsh!.options;
  console.log(
    `corpus ${corpus}: ${ROWS} rows; threshold ${THRESHOLD}, ${NUM_PERM} perms, ${SHINGLE}-word shingles, ${bands}x${rows} bands`,
  );

  await klearRun(corpus, bands, rows); // warm-up (JIT)
  const klearTimes: number[] = [];
  let klearRemoved = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = await klearRun(corpus, bands, rows);
    klearTimes.push(r.seconds);
    klearRemoved = r.removed;
  }
  const peerOut = execFileSync(
    python,
    [
      join(root, "bench", "peers", "data_minhash.py"),
      corpus,
      String(THRESHOLD),
      String(NUM_PERM),
      String(SHINGLE),
      String(bands),
      String(rows),
      String(RUNS),
    ],
    { encoding: "utf8", maxBuffer: 1 << 20 },
  );
  const peer = JSON.parse(peerOut.trim().split("\n").pop() ?? "{}") as {
    rows: number;
    removed: number;
    seconds: number[];
  };
  const klearRate = ROWS / median(klearTimes);
  const peerRate = peer.rows / median(peer.seconds);
  console.log(`klear:      ${klearTimes.map((t) => t.toFixed(3)).join(" ")} s  removed ${klearRemoved}`);
  console.log(`datasketch: ${peer.seconds.map((t) => t.toFixed(3)).join(" ")} s  removed ${peer.removed}`);
  console.log(
    `RESULT data klear=${klearRate.toFixed(0)} peer=${peerRate.toFixed(0)} unit=rows/s ratio=${(klearRate / peerRate).toFixed(2)}`,
  );
}

await main();
