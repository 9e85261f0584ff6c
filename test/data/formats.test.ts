import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { asyncBufferFromFile, parquetMetadataAsync, parquetSchema } from "hyparquet";
import {
  type DataRecord,
  fromVerlRow,
  type MalformedRow,
  readDataRows,
  runConvert,
  sidecarPaths,
  toChatRow,
  toVerlRow,
  type VerlRow,
} from "../../src/data/index.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-formats-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(path: string, malformed: MalformedRow[] = []): Promise<DataRecord[]> {
  const out: DataRecord[] = [];
  for await (const r of readDataRows(path, { onMalformed: (m) => malformed.push(m) })) out.push(r);
  return out;
}

const genericRows: Record<string, unknown>[] = [
  {
    id: 1,
    score: 0.5,
    ok: true,
    text: "héllo ∑ 🎉",
    messages: [
      { role: "user", content: "q" },
      { role: "assistant", content: "a" },
    ],
    meta: { level: 3, tags: ["x", "y"], nested: { deep: "z" } },
    maybe: null,
    mixed: 1,
    empty: [],
    emptyObj: {},
  },
  {
    id: 2,
    score: 2,
    ok: false,
    text: "",
    messages: [{ role: "user", content: "only a question" }],
    meta: { level: 5, tags: [] },
    mixed: "one",
    big: 12345678901234,
  },
  { id: 3, text: "third row has few fields" },
];

test("jsonl → parquet → jsonl is lossless for nested, sparse, null and mixed-type rows", async () => {
  const src = join(dir, "generic.jsonl");
  writeFileSync(src, genericRows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const pq = join(dir, "generic.parquet");
  await runConvert([src], pq, { quiet: true });
  const back = join(dir, "generic.back.jsonl");
  await runConvert([pq], back, { quiet: true });
  const rows = readFileSync(back, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(rows, genericRows);
  // The parquet rows themselves decode to the same values.
  assert.deepEqual(
    (await readAll(pq)).map((r) => r.value),
    genericRows,
  );
});

const problemRows = [
  { problem: "Find $x$ if $2x = 4$.", answer: "2", data_source: "numina", ability: "math", level: 1 },
  { question: "How many primes are below 10?", answer: "4", data_source: "gsm", ability: "math" },
  {
    problem: "Read n and print n+1.",
    answer: JSON.stringify({ inputs: ["1\n"], outputs: ["2\n"] }),
    data_source: "taco",
    ability: "code",
    meta: { difficulty: "easy" },
  },
];

test("problem rows → verl rows → problem rows is lossless", () => {
  for (const row of problemRows) {
    const verl = toVerlRow(row);
    assert.equal(verl.prompt[0].role, "user");
    assert.equal(verl.reward_model.style, "rule");
    assert.deepEqual(fromVerlRow(verl), row);
  }
});

test("verl rows → parquet (verl's nested layout) → verl rows is lossless, and converts from jsonl", async () => {
  const src = join(dir, "problems.jsonl");
  writeFileSync(src, problemRows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const pq = join(dir, "train.parquet");
  const m = await runConvert([src], pq, { to: "verl", quiet: true });
  assert.equal(m.counts.kept, 3);
  const verlRows = (await readAll(pq)).map((r) => r.value as VerlRow);
  assert.deepEqual(
    verlRows,
    problemRows.map((r) => toVerlRow(r)),
  );
  // The layout verl and HF datasets expect: prompt is a LIST of {role, content} structs, reward_model a struct.
  const meta = await parquetMetadataAsync(await asyncBufferFromFile(pq));
  const tree = parquetSchema(meta);
  const prompt = tree.children.find((c) => c.element.name === "prompt");
  assert.equal(prompt?.element.converted_type, "LIST");
  const rm = tree.children.find((c) => c.element.name === "reward_model");
  assert.deepEqual(
    rm?.children.map((c) => c.element.name),
    ["ground_truth", "style"],
  );
  // And back to problem rows.
  const backPath = join(dir, "problems.back.jsonl");
  await runConvert([pq], backPath, { to: "problem", quiet: true });
  assert.deepEqual(
    (await readAll(backPath)).map((r) => r.value),
    problemRows,
  );
});

test("verl conversion adds split and a running index when asked, as verl's preprocessors do", async () => {
  const src = join(dir, "p2.jsonl");
  writeFileSync(src, problemRows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const out = join(dir, "p2.verl.jsonl");
  await runConvert([src], out, { to: "verl", split: "train", quiet: true });
  const rows = (await readAll(out)).map((r) => r.value as VerlRow);
  assert.deepEqual(
    rows.map((r) => [r.extra_info?.split, r.extra_info?.index]),
    [
      ["train", 0],
      ["train", 1],
      ["train", 2],
    ],
  );
});

test("chat rows come from problem and verl rows; benchmark rows give verl rows with their answer", () => {
  assert.deepEqual(toChatRow({ problem: "q?", response: "a.", data_source: "s" }), {
    messages: [
      { role: "user", content: "q?" },
      { role: "assistant", content: "a." },
    ],
    data_source: "s",
  });
  const aimeLike = {
    messages: [{ role: "user", content: "AIME problem" }],
    meta: { unique_id: "2024-I-1", answer: "73" },
  };
  const v = toVerlRow(aimeLike, { dataSource: "aime24" });
  assert.equal(v.reward_model.ground_truth, "73");
  assert.equal(v.data_source, "aime24");
  assert.deepEqual(v.prompt, [{ role: "user", content: "AIME problem" }]);
});

test("malformed rows are counted by reason and reported with file and line, never dropped silently", async () => {
  const src = join(dir, "bad.jsonl");
  const good = JSON.stringify({ problem: "a fine problem", answer: "1" });
  const parts: Buffer[] = [
    Buffer.from(`${good}\n`),
    Buffer.from("{not json\n"),
    Buffer.from('"a string"\n'),
    Buffer.from('{"answer": "no prompt"}\n'),
    Buffer.from('{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"   "}]}\n'),
    Buffer.concat([Buffer.from('{"problem":"bad '), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]),
    Buffer.from("\n"),
    Buffer.from(`${good}\r\n`),
    Buffer.from('{"problem": "last line without newline"}'),
  ];
  writeFileSync(src, Buffer.concat(parts));
  const out = join(dir, "bad.out.jsonl");
  const m = await runConvert([src], out, { to: "chat", quiet: true });
  assert.deepEqual(m.malformed.byReason, {
    "bad-json": 1,
    "not-object": 1,
    "missing-field": 1,
    "empty-response": 1,
    "invalid-utf8": 1,
  });
  assert.equal(m.counts.read, 8);
  assert.equal(m.counts.kept, 3);
  assert.equal(m.counts.malformed, 5);
  const reported = readFileSync(sidecarPaths(out).malformed, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as MalformedRow);
  assert.deepEqual(
    reported.map((r) => [r.line, r.reason]),
    [
      [2, "bad-json"],
      [3, "not-object"],
      [4, "missing-field"],
      [5, "empty-response"],
      [6, "invalid-utf8"],
    ],
  );
  assert.ok(reported.every((r) => r.file.endsWith("bad.jsonl")));
  const manifest = JSON.parse(readFileSync(sidecarPaths(out).manifest, "utf8"));
  assert.equal(manifest.inputs[0].rows, 8);
  assert.match(manifest.inputs[0].sha256, /^[0-9a-f]{64}$/);
});

test("lines longer than the read buffer are read whole", async () => {
  const src = join(dir, "long.jsonl");
  const long = "word ".repeat(600_000);
  writeFileSync(src, `${JSON.stringify({ problem: long })}\n${JSON.stringify({ problem: "short" })}\n`);
  const rows = await readAll(src);
  assert.equal(rows.length, 2);
  assert.equal((rows[0].value.problem as string).length, long.length);
  assert.equal(rows[1].line, 2);
});
