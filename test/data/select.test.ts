import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  hashedNgramVector,
  kCenterGreedy,
  mixQuotas,
  rankSources,
  runSelect,
  SelectionSampler,
  sidecarPaths,
  syntheticCorpus,
  topKSources,
} from "../../src/data/index.js";
import { KlearError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-select-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("K-Center Greedy picks one point per well-separated cluster before any second one", () => {
  const rng = new Rng(1);
  const centers = Array.from({ length: 6 }, () => Array.from({ length: 8 }, () => rng.normal() * 10));
  const vectors: Float32Array[] = [];
  const clusterOf: number[] = [];
  for (let i = 0; i < 300; i++) {
    const c = i % 6;
    vectors.push(Float32Array.from(centers[c], (x) => x + rng.normal() * 0.1));
    clusterOf.push(c);
  }
  const picked = kCenterGreedy(vectors, 6, { seed: 3 });
  assert.equal(picked.length, 6);
  assert.equal(new Set(picked.map((i) => clusterOf[i])).size, 6);
  assert.equal(new Set(kCenterGreedy(vectors, 50)).size, 50);
  assert.deepEqual(kCenterGreedy(vectors.slice(0, 3), 10), [0, 1, 2]);
});

test("K-Center over hashed n-gram vectors spreads a selection over topics, unlike the first rows", () => {
  const topics = [
    "geometry triangle angle circle radius",
    "python list sort array index",
    "probability dice coin draw urn",
  ];
  const rng = new Rng(2);
  const texts: string[] = [];
  for (let i = 0; i < 90; i++) {
    const t = topics[i < 80 ? 0 : i < 85 ? 1 : 2].split(" ");
    texts.push(Array.from({ length: 20 }, () => t[rng.int(t.length)]).join(" "));
  }
  const picked = kCenterGreedy(
    texts.map((t) => hashedNgramVector(t)),
    3,
    { seed: 0 },
  );
  const topicOf = (i: number) => (i < 80 ? 0 : i < 85 ? 1 : 2);
  assert.equal(new Set(picked.map(topicOf)).size, 3);
});

test("sources rank by score and the top K are kept", () => {
  const scores = [
    { source: "b", score: 0.5 },
    { source: "a", score: 0.9 },
    { source: "c", score: 0.5 },
  ];
  assert.deepEqual(
    rankSources(scores).map((s) => s.source),
    ["a", "b", "c"],
  );
  assert.deepEqual(topKSources(scores, 2), ["a", "b"]);
  assert.throws(() => topKSources(scores, 0), KlearError);
});

test("mix quotas follow the ratios, total exactly, and never exceed what a source has", () => {
  const avail = new Map([
    ["a", 1000],
    ["b", 1000],
    ["c", 50],
  ]);
  const q = mixQuotas(avail, { a: 0.5, b: 0.3, c: 0.2 }, 1000);
  assert.equal(q.get("c"), 50);
  assert.equal(
    [...q.values()].reduce((x, y) => x + y, 0),
    1000,
  );
  assert.ok((q.get("a") ?? 0) > (q.get("b") ?? 0));
  const exact = mixQuotas(avail, { a: 3, b: 1 }, 400);
  assert.deepEqual(Object.fromEntries(exact), { a: 300, b: 100 });
  assert.throws(() => mixQuotas(avail, { zzz: 1 }, 10), KlearError);
});

test("selection sampling takes exactly k of n in one pass", () => {
  for (const [k, n] of [
    [0, 10],
    [3, 10],
    [10, 10],
    [15, 10],
  ]) {
    const s = new SelectionSampler(k, n, new Rng(k));
    let taken = 0;
    for (let i = 0; i < n; i++) if (s.take()) taken++;
    assert.equal(taken, Math.min(k, n));
  }
});

test("klear data select: top-K sources by given scores, ratios, then K-Center, with every drop reported", async () => {
  const src = join(dir, "pool.jsonl");
  const rows = [...syntheticCorpus({ rows: 600, duplicateFraction: 0, sources: 3, seed: 4 })];
  writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const out = join(dir, "selected.jsonl");
  const m = await runSelect([src], out, {
    sourceScores: { "source-0": 0.9, "source-1": 0.8, "source-2": 0.1 },
    topKSources: 2,
    ratios: { "source-0": 3, "source-1": 1 },
    total: 200,
    kCenter: 50,
    seed: 7,
    quiet: true,
  });
  assert.equal(m.counts.kept, 50);
  assert.deepEqual(m.parameters.quotas, { "source-0": 150, "source-1": 50 });
  assert.deepEqual(m.counts.removed, { "source-not-top-k": 200, "mix-quota": 200, "k-center": 150 });
  const kept = readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.ok(kept.every((r) => r.data_source !== "source-2"));
  const removed = readFileSync(sidecarPaths(out).removed, "utf8").trim().split("\n");
  assert.equal(removed.length, 550);
  // Deterministic for a seed.
  const again = await runSelect([src], join(dir, "selected2.jsonl"), {
    sourceScores: { "source-0": 0.9, "source-1": 0.8, "source-2": 0.1 },
    topKSources: 2,
    ratios: { "source-0": 3, "source-1": 1 },
    total: 200,
    kCenter: 50,
    seed: 7,
    quiet: true,
  });
  assert.equal(readFileSync(join(dir, "selected2.jsonl"), "utf8"), readFileSync(out, "utf8"));
  assert.equal(again.counts.kept, 50);
});

test("klear data select computes source scores when none are given (hard fraction)", async () => {
  const src = join(dir, "tagged.jsonl");
  const rows = [
    ...Array.from({ length: 10 }, (_, i) => ({
      problem: `a ${i}`,
      data_source: "mostly-hard",
      difficulty: i < 8 ? "hard" : "easy",
    })),
    ...Array.from({ length: 10 }, (_, i) => ({
      problem: `b ${i}`,
      data_source: "mostly-easy",
      difficulty: i < 2 ? "hard" : "easy",
    })),
  ];
  writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const m = await runSelect([src], join(dir, "top1.jsonl"), { topKSources: 1, quiet: true });
  assert.deepEqual(m.parameters.chosenSources, ["mostly-hard"]);
  assert.equal(m.counts.kept, 10);
});
