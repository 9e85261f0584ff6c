import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  BENCHMARKS,
  type EvalProblem,
  type EvalScorer,
  EvalStore,
  evaluate,
  formatResultsTable,
  importResponses,
  type LoadedBenchmark,
  OpenAIGenerator,
  passAtK,
  sampleSeed,
} from "../../src/eval/index.js";
import { type FakeOpenAIOptions, startFakeOpenAI } from "../helpers/fake-openai.js";

const root = mkdtempSync(join(tmpdir(), "klear-eval-run-"));
after(() => rmSync(root, { recursive: true, force: true }));

const N = 8;
/** Per problem: how many of the 8 samples are right, and the wrong answers the others give. */
const PLAN: { id: string; gold: string; correct: number; wrong: (i: number) => string; level: string }[] = [
  { id: "p-all", gold: "12", correct: 8, wrong: () => "0", level: "1" },
  { id: "p-three", gold: "5", correct: 3, wrong: () => "7", level: "1" }, // majority wrong (7 ×5)
  { id: "p-none", gold: "9", correct: 0, wrong: (i) => String(100 + i), level: "2" },
  { id: "p-four", gold: "1/2", correct: 4, wrong: (i) => `w${i}`, level: "2" }, // majority right (4 vs 1 each)
];

const bench: LoadedBenchmark = {
  spec: BENCHMARKS.math500,
  source: ["test"],
  problems: PLAN.map((p) => ({
    id: p.id,
    kind: "math" as const,
    question: `Problem ${p.id}?`,
    answer: p.gold,
    difficulty: p.level,
  })),
};

/** The fake server's canned answers: sample i of a problem is right iff i < correct (found via its seed). */
function respond(seed: number, benchName = "math500"): FakeOpenAIOptions["respond"] {
  const bySeed = new Map<number, string>();
  for (const p of PLAN) {
    for (let i = 0; i < N; i++) {
      const ans = i < p.correct ? p.gold : p.wrong(i);
      bySeed.set(
        sampleSeed(seed, benchName, p.id, i),
        `<think>thinking ${"x".repeat(i * 10)}</think>\nSo the answer is \\boxed{${ans}}.`,
      );
    }
  }
  return (r) => bySeed.get(r.seed ?? -1) ?? "no idea";
}

/** A stand-in scorer (the real ones are exercised end to end): last \boxed{} equals the gold text. */
function countingScorer(): EvalScorer & { calls: Map<string, number> } {
  const calls = new Map<string, number>();
  return {
    calls,
    async score(problem: EvalProblem, response: string) {
      const key = `${problem.id}|${response}`;
      calls.set(key, (calls.get(key) ?? 0) + 1);
      const m = [...response.matchAll(/\\boxed\{([^}]*)\}/g)].pop();
      const extracted = m ? m[1] : null;
      const correct = extracted === problem.answer;
      return { score: correct ? 1 : 0, correct, extracted, reason: correct ? "equal" : "different" };
    },
  };
}

function expected() {
  const avg = PLAN.reduce((a, p) => a + p.correct / N, 0) / PLAN.length;
  const pass = (k: number) => PLAN.reduce((a, p) => a + passAtK(N, p.correct, k), 0) / PLAN.length;
  return { avg, pass };
}

async function runOnce(outDir: string, fakeOpts: FakeOpenAIOptions, extra: { maxRetries?: number } = {}) {
  const fake = await startFakeOpenAI({ respond: respond(0), ...fakeOpts });
  const generator = new OpenAIGenerator({
    endpoints: [fake.url],
    model: "fake-model",
    timeoutMs: 800,
    maxRetries: extra.maxRetries ?? 40,
    backoffMs: 1,
    maxBackoffMs: 5,
    concurrency: 8,
  });
  const scorer = countingScorer();
  try {
    const outcome = await evaluate({
      benchmarks: [bench],
      generator,
      scorer,
      outDir,
      n: N,
      model: "fake-model",
      bootstrap: 200,
      progress: { silent: true },
    });
    return { outcome, fake, scorer };
  } finally {
    generator.close();
    await fake.close();
  }
}

test("with injected 500s, 429s, timeouts, dropped connections and slow replies, every sample is scored exactly once and the metrics equal the hand-computed ones", async () => {
  const out = join(root, "faults");
  // Deterministic fault schedule over request arrival order (retries arrive later and get their own turn).
  const schedule = ["500", "429", "hang", "drop", "drop-mid-body", "slow", null, null, null, null] as const;
  const { outcome, fake, scorer } = await runOnce(out, {
    faultPlan: (i) => schedule[i % schedule.length],
    slowMs: 50,
  });
  for (const f of ["500", "429", "hang", "drop", "drop-mid-body", "slow"] as const) {
    assert.ok(fake.stats.faults[f] > 0, `fault ${f} injected`);
  }
  assert.equal(outcome.failed, 0);
  assert.equal(outcome.generated, PLAN.length * N);
  // every (problem, sample) scored exactly once
  assert.equal(scorer.calls.size, PLAN.length * N);
  for (const [k, c] of scorer.calls) assert.equal(c, 1, k);
  const b = outcome.results.benchmarks[0];
  assert.equal(b.samples, PLAN.length * N);
  assert.equal(b.missingSamples, 0);
  const e = expected();
  assert.ok(Math.abs(b.metrics["avg@8"].value - e.avg) < 1e-12);
  // avg@8 = (8 + 3 + 0 + 4) / 8 / 4
  assert.ok(Math.abs(b.metrics["avg@8"].value - 15 / 32) < 1e-12);
  for (const { k, estimate } of b.passAtK)
    assert.ok(Math.abs(estimate.value - e.pass(k)) < 1e-12, `pass@${k}`);
  assert.deepEqual(
    b.passAtK.map((p) => p.k),
    [1, 2, 4, 8],
  );
  // maj@8: p-all right, p-three wrong (7 wins), p-none wrong, p-four right → 0.5
  assert.equal(b.metrics["maj@8"].value, 0.5);
  assert.deepEqual(
    b.perProblem.map((p) => [p.id, p.correct, p.majAnswer, p.outcomes]),
    [
      ["p-all", 8, "12", "11111111"],
      ["p-three", 3, "7", "11100000"],
      ["p-none", 0, "100", "00000000"],
      ["p-four", 4, "1/2", "11110000"],
    ],
  );
  // per-difficulty: level 1 = (1 + 3/8)/2, level 2 = (0 + 4/8)/2
  assert.deepEqual(
    b.breakdown.difficulty.map((g) => [g.group, g.problems, g.avg.value]),
    [
      ["1", 2, 11 / 16],
      ["2", 2, 1 / 4],
    ],
  );
  assert.ok(b.metrics["avg@8"].ci95[0] <= e.avg && e.avg <= b.metrics["avg@8"].ci95[1]);
  assert.equal(b.lengths.unit, "tokens");
  const table = formatResultsTable(outcome.results);
  assert.match(table, /math500\s+4\s+8\s+46\.9/);
  const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  assert.equal(json.benchmarks[0].metrics["avg@8"].value, 15 / 32);
  assert.ok(readFileSync(join(out, "report.html"), "utf8").includes("klear-data"));
});

test("rerunning a finished run asks for nothing and writes identical results", async () => {
  const out = join(root, "rerun");
  const first = await runOnce(out, {});
  const bytes = readFileSync(join(out, "results.json"), "utf8");
  const html = readFileSync(join(out, "report.html"), "utf8");
  const second = await runOnce(out, {});
  assert.equal(second.fake.stats.requests, 0);
  assert.equal(second.outcome.generated, 0);
  assert.equal(second.scorer.calls.size, 0);
  assert.equal(readFileSync(join(out, "results.json"), "utf8"), bytes);
  assert.equal(readFileSync(join(out, "report.html"), "utf8"), html);
  assert.equal(first.outcome.results.benchmarks[0].metrics["avg@8"].value, 15 / 32);
});

test("requests that fail for good are reported; a rerun fetches only those and equals an uninterrupted run", async () => {
  const out = join(root, "partial");
  // Every request for p-four fails with 500 in the first run.
  const first = await runOnce(
    out,
    { faultPlan: (_i, r) => (r.prompt.includes("p-four") ? "500" : null) },
    { maxRetries: 1 },
  );
  assert.equal(first.outcome.failed, N);
  assert.equal(first.outcome.results.benchmarks[0].missingSamples, N);
  const store = new EvalStore(join(out, "results.sqlite"));
  assert.equal(store.failureCount("math500"), N);
  store.close();
  const second = await runOnce(out, {});
  assert.equal(second.fake.stats.answered, N, "only the missing samples are asked for");
  assert.equal(second.outcome.failed, 0);
  const clean = await runOnce(join(root, "clean"), {});
  assert.deepEqual(second.outcome.results, clean.outcome.results);
});

test("a different model or sampling setup in the same --out is refused", async () => {
  const out = join(root, "fingerprint");
  await runOnce(out, {});
  const fake = await startFakeOpenAI({ respond: respond(0) });
  const generator = new OpenAIGenerator({ endpoints: [fake.url], model: "other" });
  try {
    await assert.rejects(
      evaluate({
        benchmarks: [bench],
        generator,
        scorer: countingScorer(),
        outDir: out,
        n: N,
        model: "other",
        progress: { silent: true },
      }),
      /holds a run with other settings/,
    );
  } finally {
    generator.close();
    await fake.close();
  }
});

test("offline scoring of responses a user already has (ids, problem text, Klear's inference output)", async () => {
  const out = join(root, "offline");
  const file = join(root, "responses.jsonl");
  const lines: unknown[] = [];
  for (const p of PLAN) {
    for (let i = 0; i < N; i++) {
      const text = `\\boxed{${i < p.correct ? p.gold : p.wrong(i)}}`;
      if (p.id === "p-all") lines.push({ id: p.id, response: text });
      else if (p.id === "p-three") lines.push({ problem: `Problem ${p.id}?`, response: text });
      else
        lines.push({
          id: 7,
          meta: { unique_id: p.id },
          messages: [
            { role: "user", content: "?" },
            { role: "assistant", content: text },
          ],
        });
    }
  }
  lines.push({ id: "unknown-problem", response: "x" });
  writeFileSync(join(root, "responses.jsonl"), lines.map((l) => JSON.stringify(l)).join("\n"));
  const imported = await importResponses(file, bench, out);
  assert.deepEqual(imported, { samples: PLAN.length * N, maxPerProblem: N, unmatched: 1 });
  const scorer = countingScorer();
  const outcome = await evaluate({
    benchmarks: [bench],
    scorer,
    outDir: out,
    n: N,
    bootstrap: 200,
    progress: { silent: true },
  });
  assert.equal(
    [...scorer.calls.values()].reduce((a, b) => a + b, 0),
    PLAN.length * N,
  );
  assert.equal(outcome.results.benchmarks[0].metrics["avg@8"].value, 15 / 32);
  assert.equal(outcome.results.benchmarks[0].metrics["maj@8"].value, 0.5);
  // importing the same file again adds nothing
  assert.equal((await importResponses(file, bench, out)).samples, 0);
});

test("results.json reads back for the report; other JSON is refused", async () => {
  const { readEvalResults, renderEvalReport } = await import("../../src/report/index.js");
  const out = join(root, "rerun");
  const results = readEvalResults(join(out, "results.json"));
  assert.equal(results.benchmarks[0].name, "math500");
  assert.equal(renderEvalReport(results), readFileSync(join(out, "report.html"), "utf8"));
  writeFileSync(join(root, "other.json"), "{}");
  assert.throws(() => readEvalResults(join(root, "other.json")), /not a klear eval results file/);
});

test("one eval per run folder: a live owner is refused, a dead one's lock is taken over", async () => {
  const { lockRunDir } = await import("../../src/eval/run.js");
  const dir = join(root, "locked");
  const release = lockRunDir(dir);
  release();
  // A live process (our parent) holds it.
  writeFileSync(join(dir, ".lock"), String(process.ppid));
  assert.throws(() => lockRunDir(dir), /another klear eval \(pid \d+\) is running/);
  // A pid that no longer exists: taken over.
  writeFileSync(join(dir, ".lock"), "2147483646");
  const again = lockRunDir(dir);
  assert.equal(readFileSync(join(dir, ".lock"), "utf8"), String(process.pid));
  again();
});
