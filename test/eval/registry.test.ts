import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parquetWriteBuffer } from "hyparquet-writer";
import {
  buildMessages,
  decodeLcbTests,
  getBenchmark,
  LCB_SYSTEM_MESSAGE,
  loadBenchmark,
} from "../../src/eval/index.js";

const dir = mkdtempSync(join(tmpdir(), "klear-eval-registry-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, rows: unknown[]): string {
  const p = join(dir, name);
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return p;
}

// A real LiveCodeBench private-tests blob: base64(zlib(pickle.dumps(json.dumps(tests)))), made with CPython.
const PICKLED = "eJxrYJlqxwABPVbR1UqZeQWlJUpWCkqGCkYxeUo6Ckr5pSVQIWOIQElqcUlJZUEqSKi4JCUzT6k2dooeALEqFJ0=";

test("unknown benchmark names list the valid ones; aliases resolve", () => {
  assert.throws(() => getBenchmark("aime2099"), /use one of: aime24, aime25, hmmt_feb_2025, math500/);
  assert.equal(getBenchmark("lcb_v6").name, "livecodebench_v6");
  assert.deepEqual(getBenchmark("livecodebench_v5").window, { from: "2024-08-01", to: "2025-02-01" });
  assert.deepEqual(getBenchmark("livecodebench_v6").window, { from: "2025-02-01", to: "2025-05-01" });
});

test("math rows in each shipped shape", async () => {
  const aime = write("aime24.jsonl", [
    {
      messages: [{ role: "user", content: "P1" }],
      meta: { unique_id: "2024-I-1", solution: "73", level: "Hard" },
    },
  ]);
  const a = await loadBenchmark("aime24", { data: aime });
  assert.deepEqual(a.problems[0], {
    id: "2024-I-1",
    kind: "math",
    question: "P1",
    answer: "73",
    difficulty: "Hard",
    subject: undefined,
  });
  const h = await loadBenchmark("hmmt_feb_2025", {
    data: write("h.jsonl", [
      { id: 3, messages: [{ role: "user", content: "Q" }], solution: "\\boxed{1/2}", answer: "\\frac12" },
    ]),
  });
  assert.equal(h.problems[0].answer, "\\frac12");
  assert.equal(h.problems[0].id, "3");
  const amc = await loadBenchmark("amc23", {
    data: write("amc.jsonl", [{ id: 0, problem: "Q", question: "Q", answer: 27.0 }]),
  });
  assert.equal(amc.problems[0].answer, "27");
  const g = await loadBenchmark("gsm8k", {
    data: write("g.jsonl", [{ question: "Q", answer: "x <<1+1=2>>\n#### 1,234" }]),
  });
  assert.equal(g.problems[0].answer, "1234");
  // duplicated ids never merge two problems
  const d = await loadBenchmark("math500", {
    data: write("m.jsonl", [
      { problem: "A", answer: "1", unique_id: "x", level: 1, subject: "Algebra" },
      { problem: "B", answer: "2", unique_id: "x", level: 2, subject: "Algebra" },
    ]),
  });
  assert.deepEqual(
    d.problems.map((p) => [p.id, p.difficulty, p.subject]),
    [
      ["x", "1", "Algebra"],
      ["x#1", "2", "Algebra"],
    ],
  );
  await assert.rejects(
    loadBenchmark("aime24", { data: write("bad.jsonl", [{ problem: "no answer" }]) }),
    /row 1 has no answer/,
  );
  await assert.rejects(loadBenchmark("aime24", { data: join(dir, "absent") }), /does not exist/);
});

test("--limit keeps the first problems", async () => {
  const p = write(
    "many.jsonl",
    [1, 2, 3, 4].map((i) => ({ problem: `Q${i}`, answer: String(i) })),
  );
  assert.equal((await loadBenchmark("math500", { data: p, limit: 2 })).problems.length, 2);
});

test("LiveCodeBench hub rows: public + pickled private tests, func_name, date windows", async () => {
  const rows = [
    {
      question_title: "t",
      question_content: "Add two numbers.",
      platform: "atcoder",
      question_id: "abc1_a",
      contest_id: "abc1",
      contest_date: "2024-09-01T00:00:00",
      starter_code: "",
      difficulty: "easy",
      public_test_cases: JSON.stringify([{ input: "1 1\n", output: "2\n", testtype: "stdin" }]),
      private_test_cases: PICKLED,
      metadata: "{}",
    },
    {
      question_title: "u",
      question_content: "Sum a list.",
      platform: "leetcode",
      question_id: "3001",
      contest_id: "w1",
      contest_date: "2025-03-01T00:00:00",
      starter_code: "class Solution:\n    def total(self, xs: List[int]) -> int:\n        ",
      difficulty: "medium",
      public_test_cases: JSON.stringify([{ input: "[1, 2]", output: "3", testtype: "functional" }]),
      private_test_cases: "",
      metadata: JSON.stringify({ func_name: "total" }),
    },
  ];
  const p = write("livecodebench.jsonl", rows);
  const all = await loadBenchmark("livecodebench", { data: p });
  assert.equal(all.problems.length, 2);
  assert.equal(all.problems[0].tests?.length, 2);
  assert.deepEqual(all.problems[0].tests?.[1], { input: "1 2\n", output: "3\n", testtype: "stdin" });
  assert.equal(all.problems[1].fnName, "total");
  assert.equal(all.problems[1].difficulty, "medium");
  const v5 = await loadBenchmark("livecodebench_v5", { data: p });
  assert.deepEqual(
    v5.problems.map((x) => x.id),
    ["abc1_a"],
  );
  const v6 = await loadBenchmark("livecodebench_v6", { data: p });
  assert.deepEqual(
    v6.problems.map((x) => x.id),
    ["3001"],
  );
  // LiveCodeBench's own prompt, the system sentence opening the user turn
  const [m] = buildMessages(v6.problems[0]);
  assert.equal(m.role, "user");
  assert.ok(m.content.startsWith(`${LCB_SYSTEM_MESSAGE}\n\n### Question:\nSum a list.`));
  assert.ok(m.content.includes("```python\nclass Solution:"));
  assert.ok(m.content.endsWith("### Answer: (use the provided format with backticks)\n\n"));
  const [stdin] = buildMessages(v5.problems[0]);
  assert.ok(
    stdin.content.includes("Read the inputs from stdin") && stdin.content.includes("# YOUR CODE HERE"),
  );
  assert.equal(decodeLcbTests(PICKLED).length, 1);
});

test("math prompts: DeepSeek-R1 style by default, raw, or a custom template", () => {
  const p = { id: "1", kind: "math" as const, question: "What is 1+1?", answer: "2" };
  assert.deepEqual(buildMessages(p), [
    {
      role: "user",
      content: "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}.",
    },
  ]);
  assert.equal(buildMessages(p, "raw")[0].content, "What is 1+1?");
  assert.equal(buildMessages(p, "Q: {problem}\nA:")[0].content, "Q: What is 1+1?\nA:");
  assert.throws(() => buildMessages(p, "nope"), /neither a known style nor contains \{problem\}/);
});

/** A fake Hugging Face hub: /datasets/<repo>/resolve/<rev>/<file>, counting downloads. */
async function fakeHub(files: Record<string, Uint8Array | string>) {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? "");
    const m = /^\/datasets\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? "");
    const body = m ? files[`${m[1]}/${decodeURIComponent(m[3])}`] : undefined;
    if (body === undefined) {
      res.writeHead(404);
      res.end("not found");
      return;
    }
    res.writeHead(200);
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

test("loads by name from a (fake) Hugging Face hub into a cache, once; parquet and jsonl", async () => {
  const parquet = parquetWriteBuffer({
    columnData: [
      { name: "id", data: [60, 61] },
      { name: "problem", data: ["Find x.", "Find y."] },
      { name: "answer", data: ["204", "25"] },
    ],
  });
  const hub = await fakeHub({
    "HuggingFaceH4/aime_2024/data/train-00000-of-00001.parquet": new Uint8Array(parquet),
    "opencompass/AIME2025/aime2025-I.jsonl": '{"question": "Q1", "answer": "70"}\n',
    "opencompass/AIME2025/aime2025-II.jsonl": '{"question": "Q2", "answer": "588"}\n',
  });
  const cacheDir = join(dir, "hub-cache");
  try {
    const hubOpts = { endpoint: hub.url, cacheDir };
    const a = await loadBenchmark("aime24", { hub: hubOpts });
    assert.deepEqual(
      a.problems.map((p) => [p.id, p.question, p.answer]),
      [
        ["60", "Find x.", "204"],
        ["61", "Find y.", "25"],
      ],
    );
    const b = await loadBenchmark("aime25", { hub: hubOpts });
    assert.deepEqual(
      b.problems.map((p) => p.answer),
      ["70", "588"],
    );
    const before = hub.hits.length;
    await loadBenchmark("aime24", { hub: hubOpts });
    assert.equal(hub.hits.length, before, "second load is served from the cache");
    // HF_ENDPOINT is honoured when no endpoint is given
    process.env.HF_ENDPOINT = hub.url;
    await assert.rejects(loadBenchmark("hmmt_feb_2025", { hub: { cacheDir } }), /HTTP 404/);
    delete process.env.HF_ENDPOINT;
    await assert.rejects(loadBenchmark("math500", { hub: { cacheDir, offline: true } }), /HF_HUB_OFFLINE/);
  } finally {
    delete process.env.HF_ENDPOINT;
    await hub.close();
  }
});

test("a folder is searched for the benchmark's file names", async () => {
  const sub = join(dir, "folder");
  mkdirSync(sub);
  writeFileSync(
    join(sub, "HMMT-202502.jsonl"),
    `${JSON.stringify({ id: 0, messages: [{ role: "user", content: "Q" }], answer: "5" })}\n`,
  );
  assert.equal((await loadBenchmark("hmmt_feb_2025", { data: sub })).problems[0].answer, "5");
  await assert.rejects(loadBenchmark("aime24", { data: sub }), /no aime24 file in/);
});
