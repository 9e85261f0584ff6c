import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import { applyChatTemplate, type ChatTemplateMessage } from "../../src/model/chat.js";
import { loadCheckpoint, loadModel, saveCheckpoint } from "../../src/model/checkpoint.js";

// A folder written by HF transformers' save_pretrained (scripts/oracle/make_hf_checkpoint_fixture.py): bf16,
// sharded with an index, tied embeddings, transformers-5 config keys, chat_template.jinja beside the tokenizer.
const HF_DIR = join(import.meta.dirname, "../../fixtures/model/hf-tiny-qwen3");
const expected = JSON.parse(readFileSync(`${HF_DIR}.expected.json`, "utf8")) as {
  messages: ChatTemplateMessage[];
  prompt: string;
  ids: number[];
  last_positions: number;
  logits: number[][];
};
const root = mkdtempSync(join(tmpdir(), "klear-hf-checkpoint-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("a checkpoint saved by HF transformers", () => {
  it("loads: config, sharded bf16 weights, tokenizer and its separate chat template", async () => {
    const ckpt = await loadCheckpoint(HF_DIR);
    assert.equal(ckpt.config.tieWordEmbeddings, true);
    assert.equal(ckpt.config.ropeTheta, 1_000_000);
    assert.equal(ckpt.tensors.size, 2 * 11 + 2);
    assert.ok([...ckpt.storedDtypes.values()].every((d) => d === "BF16"));
    const rendered = applyChatTemplate(ckpt.tokenizer, expected.messages, {
      addGenerationPrompt: true,
      enableThinking: false,
    });
    assert.equal(rendered, expected.prompt);
    assert.deepEqual(ckpt.tokenizer.encode(rendered), expected.ids);
    assert.equal(ckpt.generationConfig.eos_token_id, ckpt.tokenizer.eosTokenId);
  });

  it("re-saved by klear keeps its chat template and weights", async (t) => {
    if (!nativeAvailable()) {
      t.skip("native addon not built (npm run build:native); loadModel needs it");
      return;
    }
    const { model, tokenizer } = await loadModel(HF_DIR);
    const dir = join(root, "resaved");
    await saveCheckpoint(dir, model, tokenizer, { dtype: "bfloat16" });
    const back = await loadCheckpoint(dir);
    assert.equal(back.tokenizer.chatTemplate, tokenizer.chatTemplate);
    const original = await loadCheckpoint(HF_DIR);
    for (const [name, data] of original.tensors) assert.deepEqual(back.tensors.get(name), data, name);
  });

  it("gives transformers' logits (float32 compute on the bf16 weights)", async (t) => {
    if (!nativeAvailable()) {
      t.skip("native addon not built (npm run build:native)");
      return;
    }
    const { model, config } = await loadModel(HF_DIR);
    const ids = expected.ids;
    const cache = model.createKVCache(1, ids.length);
    let maxDiff = 0;
    for (let i = 0; i < ids.length; i++) {
      const logits = model.forwardTokens(cache, new Int32Array([ids[i]]));
      const row = i - (ids.length - expected.last_positions);
      if (row < 0) continue;
      for (let v = 0; v < config.vocabSize; v++) {
        maxDiff = Math.max(maxDiff, Math.abs(logits[v] - expected.logits[row][v]));
      }
    }
    assert.ok(maxDiff < 1e-4, `max |logit diff| ${maxDiff}`);
  });
});
