import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { toChatRow } from "../../src/data/index.js";
import { SftConfigSchema, type SftSource } from "../../src/sft/config.js";
import {
  checkSomeRowsKept,
  emptySummary,
  encodeConversation,
  readSftSource,
  rowConversation,
} from "../../src/sft/data.js";
import { KlearError } from "../../src/util/errors.js";
import { byteTokenizer, chatRows, tempDir, writeJsonl, writeJsonlGz, writeParquet } from "./helpers.js";

const FIELDS = SftConfigSchema.parse({}).data.fields;
const ENCODE = { template: "chat", trainOn: "all-assistant", maxTokens: 512, overLong: "truncate" } as const;

function source(path: string | string[], extra: Partial<SftSource> = {}): SftSource {
  return { path, weight: 1, format: "auto", name: "", ...extra };
}

function read(path: string | string[], extra: Partial<Parameters<typeof readSftSource>[2]> = {}) {
  const summary = emptySummary();
  const opts = { ...ENCODE, onBadRow: "skip" as const, maxRows: 0, fields: FIELDS, summary, ...extra };
  return { summary, rows: readSftSource(byteTokenizer(), source(path), opts) };
}

describe("SFT row formats", () => {
  it("reads HF messages (with reasoning_content), ShareGPT conversations (with a row system) and prompt/completion", () => {
    const [m] = chatRows("messages", 1);
    assert.deepEqual(rowConversation(m, "auto", FIELDS), [
      { role: "user", content: "What is 0+0?" },
      { role: "assistant", content: "0", reasoning_content: "0+0=0" },
    ]);
    const [c] = chatRows("conversations", 1);
    assert.deepEqual(rowConversation(c, "auto", FIELDS), [
      { role: "system", content: "Add." },
      { role: "user", content: "What is 0+0?" },
      { role: "assistant", content: "<think>\n0+0=0\n</think>\n\n0" },
    ]);
    const [p] = chatRows("prompt-completion", 1);
    assert.deepEqual(rowConversation(p, "auto", FIELDS), [
      { role: "user", content: "What is 0+0?" },
      { role: "assistant", content: "<think>\n0+0=0\n</think>\n\n0" },
    ]);
    // Conversational prompt/completion (TRL) and content given as text parts.
    const turns = rowConversation(
      {
        prompt: [{ role: "user", content: [{ type: "text", text: "Hi" }] }],
        completion: [{ role: "assistant", content: "Hello" }],
      },
      "prompt-completion",
      FIELDS,
    );
    assert.deepEqual(turns, [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
    ]);
  });

  it("honours configured field names (dotted paths and turn keys)", () => {
    const fields = {
      ...FIELDS,
      messages: "data.dialog",
      role: "speaker",
      content: "text",
      reasoning: "thought",
    };
    const row = {
      data: {
        dialog: [
          { speaker: "user", text: "Q" },
          { speaker: "assistant", text: "A", thought: "T" },
        ],
      },
    };
    assert.deepEqual(rowConversation(row, "messages", fields), [
      { role: "user", content: "Q" },
      { role: "assistant", content: "A", reasoning_content: "T" },
    ]);
  });

  it("keeps the reasoning inside the trained span (Qwen3's template, byte tokenizer)", () => {
    const tok = byteTokenizer();
    const turns = rowConversation(chatRows("messages", 1)[0], "auto", FIELDS);
    const { ids, lossMask } = encodeConversation(tok, turns, ENCODE);
    const trained = tok.decode([...ids].filter((_, i) => lossMask[i] === 1));
    assert.equal(trained, "<think>\n0+0=0\n</think>\n\n0<|im_end|>");
  });

  it("template none: prompt + completion + EOS, loss on the completion and EOS", () => {
    const tok = byteTokenizer();
    const { ids, lossMask } = encodeConversation(
      tok,
      [
        { role: "user", content: "1+1=" },
        { role: "assistant", content: "2" },
      ],
      { ...ENCODE, template: "none" },
    );
    assert.deepEqual([...ids], [...tok.encode("1+1=2"), tok.eosTokenId]);
    assert.deepEqual([...lossMask], [0, 0, 0, 0, 1, 1]);
  });
});

describe("klear data output", () => {
  it("chat rows written by klear data convert --to chat are SFT rows as they are", () => {
    const row = toChatRow({
      problem: "What is 2+2?",
      response: "<think>\n2+2=4\n</think>\n\n\\boxed{4}",
      data_source: "s",
    });
    assert.deepEqual(rowConversation(row, "auto", FIELDS), [
      { role: "user", content: "What is 2+2?" },
      { role: "assistant", content: "<think>\n2+2=4\n</think>\n\n\\boxed{4}" },
    ]);
  });
});

describe("SFT files", () => {
  it("reads jsonl, .jsonl.gz, parquet and a folder of shards alike", async (t) => {
    const dir = tempDir(t);
    const rows = chatRows("messages", 6);
    const jsonl = writeJsonl(join(dir, "a.jsonl"), rows);
    const gz = writeJsonlGz(join(dir, "b.jsonl.gz"), rows);
    const pq = await writeParquet(join(dir, "c.parquet"), rows);
    const expected = await read(jsonl).rows;
    assert.equal(expected.length, 6);
    for (const p of [gz, pq]) {
      const got = await read(p).rows;
      assert.deepEqual(
        got.map((e) => [...e.ids]),
        expected.map((e) => [...e.ids]),
        p,
      );
    }
    const folder = await read(dir).rows;
    assert.equal(folder.length, 18);
    assert.match(folder[0].where, /a\.jsonl:1$/);
  });
});

describe("per-source field names", () => {
  it("a source's fields layer over data.fields", async (t) => {
    const dir = tempDir(t);
    const path = writeJsonl(join(dir, "d.jsonl"), [
      {
        dialog: [
          { who: "user", text: "Q" },
          { who: "assistant", text: "A" },
        ],
      },
    ]);
    const summary = emptySummary();
    const rows = await readSftSource(byteTokenizer(), source(path, { fields: { messages: "dialog" } }), {
      ...ENCODE,
      onBadRow: "error",
      maxRows: 0,
      fields: { ...FIELDS, role: "who", content: "text" },
      summary,
    });
    assert.equal(rows.length, 1);
    assert.equal(summary.kept, 1);
  });
});

describe("malformed rows", () => {
  function badFile(dir: string): string {
    const good = chatRows("messages", 3).map((r) => JSON.stringify(r));
    const lines = [
      good[0],
      "{not json",
      "[1, 2]",
      JSON.stringify({ text: "no turns here" }),
      JSON.stringify({ messages: [{ role: "user", content: "only a question" }] }),
      JSON.stringify({ messages: [{ role: "user" }, { role: "assistant", content: "A" }] }),
      JSON.stringify({
        messages: [
          { role: "user", content: "Q" },
          { role: "assistant", content: "\ud800" },
        ],
      }),
      JSON.stringify({
        messages: [
          { role: "user", content: "Q".repeat(600) },
          { role: "assistant", content: "A" },
        ],
      }),
      good[1],
    ];
    const path = join(dir, "bad.jsonl");
    const bytes = Buffer.concat([
      Buffer.from(`${lines.join("\n")}\n`),
      Buffer.from([0x7b, 0x22, 0x6d, 0xff, 0xfe, 0x22, 0x7d, 0x0a]), // {"m\xff\xfe"}: invalid UTF-8
      Buffer.from(`${good[2]}\n`),
    ]);
    writeFileSync(path, bytes);
    return path;
  }

  it("skips and counts every malformed row by cause, with file and line", async (t) => {
    const path = badFile(tempDir(t));
    const { summary, rows } = read(path, { overLong: "drop" });
    const kept = await rows;
    assert.equal(kept.length, 3);
    assert.equal(summary.rows, 11);
    assert.equal(summary.kept, 3);
    assert.deepEqual(summary.dropped, {
      "bad-json": 1,
      "not-object": 1,
      "missing-field": 1,
      "no-assistant-turn": 1,
      "bad-turn": 1,
      "invalid-utf8": 2,
      "too-long": 1,
    });
    assert.equal(summary.firstDropped[0].where, `${path}:2`);
    assert.equal(summary.firstDropped[0].cause, "bad-json");
  });

  it("truncates over-long rows when asked, and counts them", async (t) => {
    const path = badFile(tempDir(t));
    const { summary, rows } = read(path, { overLong: "truncate", maxTokens: 100 });
    await rows;
    // The 600-character question leaves no assistant token within 100 tokens: dropped, not trained on.
    assert.equal(summary.dropped["no-loss-tokens"], 1);
    assert.equal(summary.dropped["too-long"], undefined);
    const { summary: s2, rows: r2 } = read(path, { overLong: "truncate", maxTokens: 40 });
    await r2;
    assert.ok(s2.truncated >= 1, JSON.stringify(s2));
  });

  it("onBadRow=error stops at the first bad row, naming its file and line and the fix", async (t) => {
    const path = badFile(tempDir(t));
    await assert.rejects(read(path, { onBadRow: "error" }).rows, (e: unknown) => {
      assert.ok(e instanceof KlearError);
      assert.match(e.message, new RegExp(`${path.replace(/[.]/g, "\\.")}:2: bad-json`));
      assert.match(e.fix ?? "", /onBadRow=skip/);
      return true;
    });
  });

  it("a set whose rows all fail is an error naming the first failures and the fix", async (t) => {
    const dir = tempDir(t);
    const path = writeJsonl(join(dir, "wrong.jsonl"), [{ question: "Q", answer: "A" }, { question: "Q2" }]);
    const { summary, rows } = read(path);
    await rows;
    assert.throws(
      () => checkSomeRowsKept(summary, "klear sft data"),
      (e: unknown) => {
        assert.ok(e instanceof KlearError);
        assert.match(e.message, /none of the 2 rows/);
        assert.match(e.message, /wrong\.jsonl:1: missing-field/);
        assert.match(e.fix ?? "", /data\.fields/);
        return true;
      },
    );
  });
});
