import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  codeTestCount,
  codeTestsFromGroundTruth,
  difficultyOf,
  generatorSampler,
  mathDifficultyScorer,
  openAiCompatibleSampler,
  type ResponseSampler,
  type ResponseScorer,
  rlDataFilter,
  runTag,
  sidecarPaths,
  tagDifficulty,
} from "../../src/data/index.js";
import { startFakeOpenAI } from "../helpers/fake-openai.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-tag-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Canned model: for each prompt, how many of the 16 samples are right. */
const CORRECT_OF_16: Record<string, number> = {
  "What is 2+2?": 16,
  "What is 3*3?": 13,
  "Compute 7-2.": 9,
  "Compute 10/2.": 8,
  "What is 6*7?": 4,
  "Hard integral?": 1,
  "Impossible sum?": 0,
};
const GOLD: Record<string, string> = {
  "What is 2+2?": "4",
  "What is 3*3?": "9",
  "Compute 7-2.": "5",
  "Compute 10/2.": "5",
  "What is 6*7?": "42",
  "Hard integral?": "\\frac{\\pi}{4}",
  "Impossible sum?": "17",
};

test("difficulty tags follow the pass-rate thresholds", () => {
  assert.equal(difficultyOf(1), "easy");
  assert.equal(difficultyOf(0.75), "easy");
  assert.equal(difficultyOf(0.74), "medium");
  assert.equal(difficultyOf(0.25), "medium");
  assert.equal(difficultyOf(0.2), "hard");
  assert.equal(difficultyOf(0.5, { easyAtLeast: 0.5 }), "easy");
});

test("tagging against a fake OpenAI-compatible server with canned answers gives the expected tags and RL filter", async () => {
  const fake = await startFakeOpenAI({
    respond: (req) => {
      const n = Number(req.body.n ?? 1);
      const right = CORRECT_OF_16[req.prompt] ?? 0;
      const gold = GOLD[req.prompt] ?? "0";
      return Array.from({ length: n }, (_, i) =>
        i < right
          ? `<think>easy</think> The answer is $\\boxed{${gold}}$.`
          : "<think>hmm</think> I get \\boxed{-1}.",
      );
    },
  });
  try {
    const rows = Object.keys(CORRECT_OF_16).map((problem) => ({
      data_source: "toy",
      prompt: [{ role: "user", content: problem }],
      ability: "math",
      reward_model: { ground_truth: GOLD[problem], style: "rule" },
    }));
    const src = join(dir, "rl.jsonl");
    writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const sampler = openAiCompatibleSampler({ endpoints: [fake.url], model: "fake", maxRetries: 0 });
    const out = join(dir, "tagged.jsonl");
    const m = await runTag([src], out, {
      sampler,
      scorers: { math: mathDifficultyScorer() },
      n: 16,
      concurrency: 4,
      quiet: true,
    });
    assert.equal(m.counts.kept, 7);
    const tagged = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      tagged.map((r) => [r.prompt[0].content, r.passes, r.difficulty]),
      [
        ["What is 2+2?", 16, "easy"],
        ["What is 3*3?", 13, "easy"],
        ["Compute 7-2.", 9, "medium"],
        ["Compute 10/2.", 8, "medium"],
        ["What is 6*7?", 4, "medium"],
        ["Hard integral?", 1, "hard"],
        ["Impossible sum?", 0, "hard"],
      ],
    );
    assert.ok(tagged.every((r) => r.samples === 16));
    // The paper's math RL filter: a majority (more than half) of 16 samples correct.
    const filtered = join(dir, "filtered.jsonl");
    const m2 = await runTag([src], filtered, {
      sampler,
      scorers: { math: mathDifficultyScorer() },
      rlFilter: true,
      quiet: true,
    });
    assert.equal(m2.counts.kept, 3);
    assert.deepEqual(m2.counts.removed, { "math-no-majority": 4 });
    const removed = readFileSync(sidecarPaths(filtered).removed, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      removed.map((r) => [r.line, r.passes]),
      [
        [4, 8],
        [5, 4],
        [6, 1],
        [7, 0],
      ],
    );
    sampler.close();
  } finally {
    await fake.close();
  }
});

test("the RL filters: math majority (strict or inclusive), code ≥16 tests and pass rate ≥ 0.5", () => {
  const math = { ability: "math" };
  const r = (passes: number, samples = 16) => ({
    passes,
    samples,
    passRate: passes / samples,
    difficulty: difficultyOf(passes / samples),
  });
  assert.equal(rlDataFilter(math, r(9)).keep, true);
  assert.equal(rlDataFilter(math, r(8)).keep, false);
  assert.equal(rlDataFilter(math, r(8), { mathMajority: "at-least-half" }).keep, true);
  const tests = (k: number) =>
    JSON.stringify({
      inputs: Array.from({ length: k }, (_, i) => `${i}\n`),
      outputs: Array.from({ length: k }, (_, i) => `${i}\n`),
    });
  const code16 = { ability: "code", reward_model: { ground_truth: tests(16) } };
  const code15 = { ability: "code", reward_model: { ground_truth: tests(15) } };
  assert.equal(codeTestCount(code16), 16);
  assert.deepEqual(rlDataFilter(code15, r(16)), { keep: false, reason: "code-too-few-tests" });
  assert.deepEqual(rlDataFilter(code16, r(8)), { keep: true });
  assert.deepEqual(rlDataFilter(code16, r(7)), { keep: false, reason: "code-low-pass-rate" });
  assert.equal(rlDataFilter(code16, r(7), { codeMinPassRate: 0.4 }).keep, true);
});

test("code ground truth converts to sandbox tests; unsupported formats are null", () => {
  assert.deepEqual(codeTestsFromGroundTruth(JSON.stringify({ inputs: ["1\n"], outputs: ["2\n"] })), [
    { input: "1\n", output: "2\n", testtype: "stdin" },
  ]);
  assert.deepEqual(
    codeTestsFromGroundTruth(JSON.stringify([{ input: "[1]", output: "1", testtype: "functional" }])),
    [{ input: "[1]", output: "1", testtype: "functional" }],
  );
  assert.equal(codeTestsFromGroundTruth(JSON.stringify({ functional: "assert f(1) == 2" })), null);
  assert.equal(codeTestsFromGroundTruth("not json"), null);
});

test("tagging logic runs with any injected sampler and scorer", async () => {
  const sampler: ResponseSampler = {
    sample: async (_p, n) => Array.from({ length: n }, (_, i) => String(i)),
  };
  const scorer: ResponseScorer = { score: async (_row, resp) => Number(resp) % 4 === 0 };
  const res = await tagDifficulty({ problem: "p" }, sampler, scorer, { n: 8 });
  assert.deepEqual(res, { samples: 8, passes: 2, passRate: 0.25, difficulty: "medium" });
});

test("a prompt whose sampling fails is reported under tag-error and the run goes on", async () => {
  const src = join(dir, "flaky.jsonl");
  writeFileSync(
    src,
    `${JSON.stringify({ problem: "ok one", answer: "1" })}\n${JSON.stringify({ problem: "boom", answer: "1" })}\n`,
  );
  const sampler: ResponseSampler = {
    sample: async (p, n) => {
      if (p === "boom") throw new Error("endpoint gave up");
      return Array.from({ length: n }, () => "\\boxed{1}");
    },
  };
  const scorer: ResponseScorer = { score: async () => true };
  const out = join(dir, "flaky.out.jsonl");
  const m = await runTag([src], out, { sampler, scorers: { math: scorer }, n: 4, quiet: true });
  assert.equal(m.counts.kept, 1);
  assert.deepEqual(m.counts.removed, { "tag-error": 1 });
  const removed = JSON.parse(readFileSync(sidecarPaths(out).removed, "utf8").trim());
  assert.equal(removed.line, 2);
  assert.match(removed.error, /endpoint gave up/);
});

test("a rollout Generator (the local engine's interface) can be the sampler", async () => {
  const calls: { n?: number; prompts: number[][] }[] = [];
  const generator = {
    async generate(prompts: number[][], params: { n?: number }) {
      calls.push({ n: params.n, prompts });
      return Array.from({ length: params.n ?? 1 }, (_, k) => ({
        promptIndex: 0,
        sampleIndex: (params.n ?? 1) - 1 - k,
        tokens: [48 + ((params.n ?? 1) - 1 - k)],
        logprobs: [0],
        modelLogprobs: [0],
        finishReason: "stop" as const,
      }));
    },
  };
  const sampler = generatorSampler(generator, {
    encode: (p) => [...p].map((c) => c.charCodeAt(0)),
    decode: (t) => String.fromCharCode(...t),
    params: { maxNewTokens: 8, temperature: 1 },
  });
  assert.deepEqual(await sampler.sample("hi", 3), ["0", "1", "2"]);
  assert.deepEqual(calls, [{ n: 3, prompts: [[104, 105]] }]);
});
