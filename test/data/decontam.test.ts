import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  loadDecontamBenchmark,
  NgramDecontaminator,
  runDecontam,
  sidecarPaths,
} from "../../src/data/index.js";
import { KlearError } from "../../src/util/errors.js";
import { plantWithEdits } from "./decontam-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-decontam-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const bench = [
  {
    benchmark: "toy",
    id: "p1",
    text: "Let $f(x) = 3x^2 + 2x - 7$. Find the sum of all real values of $x$ for which $f(f(x)) = 0$ holds true.",
  },
  {
    benchmark: "toy",
    id: "p2",
    text: "A regular hexagon is inscribed in a circle of radius ten; compute the area of the region inside the circle but outside the hexagon.",
  },
];

test("a 9-gram shared with a benchmark is found through case, spacing, LaTeX and word edits", () => {
  const d = new NgramDecontaminator(bench, 9);
  const hit = d.check(plantWithEdits(bench[0].text, 12));
  assert.ok(hit);
  assert.equal(hit.benchmarkId, "p1");
  assert.equal(hit.ngram.split(" ").length, 9);
  assert.equal(d.check("Let f be a function. Find the sum of the digits of one hundred."), null);
  // Eight shared words are not enough.
  assert.equal(d.check("find the area of the region inside the circle now"), null);
  assert.ok(d.check("please compute the area of the region inside the circle but outside it"));
  assert.throws(() => new NgramDecontaminator(bench, 0), KlearError);
});

test("klear data decontam takes benchmark files, removes contaminated rows and reports each with its n-gram", async () => {
  const benchFile = join(dir, "toy.jsonl");
  writeFileSync(
    benchFile,
    bench.map((b) => JSON.stringify({ problem: b.text, unique_id: b.id })).join("\n") + "\n",
  );
  const src = join(dir, "train.jsonl");
  const rows = [
    { messages: [{ role: "user", content: "What is two plus two, in words?" }] },
    { messages: [{ role: "user", content: plantWithEdits(bench[1].text, 12) }] },
    {
      prompt: [{ role: "user", content: "Unrelated: sort a list of integers in Python." }],
      reward_model: { ground_truth: "x" },
    },
  ];
  writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const out = join(dir, "clean.jsonl");
  const m = await runDecontam([src], out, { benchmarks: [benchFile], quiet: true });
  assert.equal(m.counts.kept, 2);
  const removed = readFileSync(sidecarPaths(out).removed, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(removed.length, 1);
  assert.equal(removed[0].line, 2);
  assert.equal(removed[0].benchmark, "toy");
  assert.equal(removed[0].benchmarkId, "p2");
  assert.equal(removed[0].ngram.split(" ").length, 9);
  assert.deepEqual(m.parameters.benchmarks, { [benchFile]: 2 });
});

test("an unknown benchmark name is an error naming the valid ones", async () => {
  await assert.rejects(loadDecontamBenchmark("aime1999", dir), (e: KlearError) => /aime24/.test(e.fix));
  await assert.rejects(loadDecontamBenchmark("/no/such/file.jsonl"), KlearError);
});
