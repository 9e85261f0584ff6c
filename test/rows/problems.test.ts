import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runConvert } from "../../src/data/index.js";
import { scoreResponse } from "../../src/rewards/index.js";
import { codeTestsFromGroundTruth, type RowProblem, readRowProblems } from "../../src/rows/index.js";

const dir = mkdtempSync(join(tmpdir(), "klear-rows-problems-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const tests = { inputs: ["1\n", "2\n"], outputs: ["2\n", "3\n"] };
const problemRows = [
  { problem: "What is $1+1$?", answer: "2", data_source: "math_longcot_math_verify", ability: "math" },
  { question: "How many primes are below 10?", answer: 4, data_source: "gsm", ability: "math" },
  {
    problem: "Read n and print n+1.",
    answer: JSON.stringify(tests),
    data_source: "coder1_longcot",
    ability: "code",
  },
];

const strip = (ps: RowProblem[]) => ps.map(({ id: _id, file: _file, ...rest }) => rest);

test("verl parquet written by `klear data convert` reads as the problems its jsonl gives", async () => {
  const src = join(dir, "problems.jsonl");
  writeFileSync(src, `${problemRows.map((r) => JSON.stringify(r)).join("\n")}\n`);
  const verlJsonl = join(dir, "train.verl.jsonl");
  const verlParquet = join(dir, "train.parquet");
  await runConvert([src], verlJsonl, { quiet: true, to: "verl" });
  await runConvert([src], verlParquet, { quiet: true, to: "verl" });
  const fromParquet = await readRowProblems(verlParquet);
  const fromJsonl = await readRowProblems(verlJsonl);
  assert.deepEqual(strip(fromParquet), strip(fromJsonl));
  assert.deepEqual(
    fromParquet.map((p) => p.id),
    [0, 1, 2].map((i) => `${verlParquet}#${i}`),
  );
  const [math, count, code] = fromParquet;
  assert.deepEqual(math.messages, [{ role: "user", content: "What is $1+1$?" }]);
  assert.equal(math.kind, "math");
  assert.equal(math.answer, "2");
  assert.equal(math.source, "math_longcot_math_verify");
  assert.equal(count.answer, "4");
  assert.equal(code.kind, "code");
  assert.deepEqual(code.tests, codeTestsFromGroundTruth(tests));
  assert.equal(code.line, 3);
  // The problems go straight to the scorer.
  const r = await scoreResponse(math, "<think>1+1</think> \\boxed{2}");
  assert.equal(r.correct, true);
});

test("a row without an answer or runnable tests is an error naming its file and row", async () => {
  const bad = join(dir, "bad.jsonl");
  writeFileSync(
    bad,
    [
      JSON.stringify({ prompt: [{ role: "user", content: "q" }], reward_model: { ground_truth: "1" } }),
      JSON.stringify({ prompt: [{ role: "user", content: "no answer" }] }),
    ].join("\n"),
  );
  await assert.rejects(readRowProblems(bad), /bad\.jsonl:2: the row has no reference answer[\s\S]*fix:/);
  const code = join(dir, "code.jsonl");
  writeFileSync(
    code,
    JSON.stringify({ ability: "code", prompt: "p", reward_model: { ground_truth: '{"pytest":"x"}' } }),
  );
  await assert.rejects(readRowProblems(code), /code\.jsonl:1: the tests are not/);
  const noPrompt = join(dir, "noprompt.jsonl");
  writeFileSync(noPrompt, JSON.stringify({ answer: "1" }));
  await assert.rejects(readRowProblems(noPrompt), /noprompt\.jsonl:1: the row has no prompt/);
});

test("field names and the kind can be given for rows in other shapes", async () => {
  const f = join(dir, "custom.jsonl");
  writeFileSync(f, JSON.stringify({ q: "Compute 3*3.", gold: { value: 9 } }));
  const [p] = await readRowProblems(f, { names: { prompt: "q", answer: "gold.value" } });
  assert.equal(p.prompt, "Compute 3*3.");
  assert.equal(p.answer, "9");
  const c = join(dir, "custom-code.jsonl");
  writeFileSync(c, JSON.stringify({ prompt: "p", reward_model: { ground_truth: JSON.stringify(tests) } }));
  const [cp] = await readRowProblems(c, { kind: "code" });
  assert.equal(cp.tests?.length, 2);
});
