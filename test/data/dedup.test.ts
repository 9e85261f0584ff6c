import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  Deduplicator,
  exactJaccard,
  MinHashLsh,
  optimalLshParams,
  resolveMinHashOptions,
  runDedup,
  sidecarPaths,
  syntheticCorpus,
} from "../../src/data/index.js";
import { KlearError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-dedup-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("LSH bands and rows follow the threshold like datasketch's criterion", () => {
  const p = optimalLshParams(0.8, 128);
  assert.ok(p.bands * p.rows <= 128);
  // The S-curve's steepest point (1/b)^(1/r) sits near the threshold.
  const knee = (1 / p.bands) ** (1 / p.rows);
  assert.ok(Math.abs(knee - 0.8) < 0.08, `knee ${knee}`);
  assert.deepEqual(resolveMinHashOptions({ bands: 16, rows: 8 }).bands, 16);
  assert.throws(() => resolveMinHashOptions({ bands: 20, rows: 8 }), KlearError);
  assert.throws(() => resolveMinHashOptions({ threshold: 1.5 }), KlearError);
});

test("MinHash estimates Jaccard similarity within sampling error", () => {
  const lsh = new MinHashLsh({ numPerm: 256 });
  const rows = [...syntheticCorpus({ rows: 400, duplicateFraction: 0.5, maxEdits: 12, seed: 7 })];
  let worst = 0;
  for (const r of rows) {
    if (r.dup_of < 0) continue;
    const orig = rows[r.dup_of];
    const truth = exactJaccard(r.problem, orig.problem);
    const est = (() => {
      const a = lsh.signature(r.problem);
      const b = lsh.signature(orig.problem);
      let same = 0;
      for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
      return same / a.length;
    })();
    worst = Math.max(worst, Math.abs(est - truth));
  }
  // 256 permutations: one standard error is at most 0.031.
  assert.ok(worst < 0.13, `worst estimate error ${worst}`);
});

test("near-duplicate removal at Jaccard 0.8: precision and recall on a corpus with known duplicates", () => {
  const rows = [
    ...syntheticCorpus({ rows: 4000, duplicateFraction: 0.3, minEdits: 0, maxEdits: 14, seed: 3 }),
  ];
  const dedup = new Deduplicator({ threshold: 0.8 });
  const removed = new Set<number>();
  const kept: number[] = [];
  for (const r of rows) {
    const v = dedup.check(r.problem, { file: "corpus", line: r.id + 1 });
    if (v) removed.add(r.id);
    else kept.push(r.id);
  }
  // Ground truth: a row is a near-duplicate when some earlier row of its cluster has exact Jaccard ≥ 0.8.
  const clusterOf = (id: number) => (rows[id].dup_of < 0 ? id : rows[id].dup_of);
  const members = new Map<number, number[]>();
  const truthJ = new Map<number, number>();
  for (const r of rows) {
    const c = clusterOf(r.id);
    const earlier = members.get(c) ?? [];
    let best = 0;
    for (const e of earlier) best = Math.max(best, exactJaccard(r.problem, rows[e].problem));
    truthJ.set(r.id, best);
    earlier.push(r.id);
    members.set(c, earlier);
  }
  const truth = new Set([...truthJ].filter(([, j]) => j >= 0.8).map(([id]) => id));
  let tp = 0;
  for (const id of removed) if (truth.has(id)) tp++;
  const precision = tp / removed.size;
  const recall = tp / truth.size;
  console.log(
    `minhash dedup @0.8 (128 perms, ${dedup.lsh?.options.bands}x${dedup.lsh?.options.rows}): ` +
      `precision ${precision.toFixed(3)} recall ${recall.toFixed(3)} (${truth.size} true near-duplicates, ${removed.size} removed)`,
  );
  assert.ok(precision >= 0.9, `precision ${precision}`);
  assert.ok(recall >= 0.9, `recall ${recall}`);
  // Away from the threshold the decision is certain: clear copies go, clearly different rows stay.
  for (const [id, j] of truthJ) {
    if (j >= 0.92) assert.ok(removed.has(id), `row ${id} with Jaccard ${j.toFixed(2)} survived`);
    if (j < 0.65) assert.ok(!removed.has(id), `row ${id} with Jaccard ${j.toFixed(2)} was removed`);
  }
  // Every unrelated original survives.
  for (const r of rows) if (r.dup_of < 0) assert.ok(!removed.has(r.id), `original ${r.id} removed`);
});

test("exact dedup compares normalised text: case, punctuation, spacing and LaTeX markup are ignored", () => {
  const d = new Deduplicator({ near: false });
  assert.equal(d.check("Find $x^2$ if x = 3.", { file: "f", line: 1 }), null);
  assert.deepEqual(d.check("find  X^{2} if x=3", { file: "f", line: 2 }), {
    rule: "exact",
    duplicateOf: { file: "f", line: 1 },
  });
  assert.equal(d.check("Find x^3 if x = 3.", { file: "f", line: 3 }), null);
});

test("klear data dedup streams a file, reports each removal with the row it duplicates, and writes a manifest", async () => {
  const src = join(dir, "corpus.jsonl");
  const rows = [...syntheticCorpus({ rows: 300, duplicateFraction: 0.3, maxEdits: 1, seed: 11 })];
  writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const out = join(dir, "dedup.jsonl");
  const m = await runDedup([src], out, { quiet: true, threshold: 0.8 });
  const removedRows = readFileSync(sidecarPaths(out).removed, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const dupCount = rows.filter((r) => r.dup_of >= 0).length;
  assert.equal(removedRows.length, m.counts.read - m.counts.kept);
  assert.ok(removedRows.length >= dupCount * 0.95, `${removedRows.length} of ${dupCount}`);
  for (const r of removedRows) {
    assert.ok(r.rule === "exact" || r.rule === "near");
    assert.ok(r.duplicateOf.line < r.line);
    if (r.rule === "near") assert.ok(r.jaccard >= 0.8);
  }
  assert.equal(m.parameters.threshold, 0.8);
  assert.equal(m.parameters.numPerm, 128);
  assert.deepEqual(Object.keys(m.counts.removed).sort(), Object.keys(m.counts.removed).sort());
  const onDisk = JSON.parse(readFileSync(sidecarPaths(out).manifest, "utf8"));
  assert.equal(onDisk.counts.kept, m.counts.kept);
  assert.equal(onDisk.inputs[0].bytes, readFileSync(src).length);
});
