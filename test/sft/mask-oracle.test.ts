import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type ChatTemplateMessage, renderTrainingConversation } from "../../src/model/chat.js";
import { loadTokenizer } from "../../src/model/tokenizer.js";

// Made by scripts/oracle/make_sft_mask_fixture.py: transformers' apply_chat_template with
// return_assistant_tokens_mask=True on the full Qwen3 tokenizer (generation markers added to the stock template).
const FIXTURE = join(import.meta.dirname, "fixtures/qwen3-mask");
const expected = JSON.parse(readFileSync(join(FIXTURE, "expected.json"), "utf8")) as {
  cases: { messages: ChatTemplateMessage[]; text: string; input_ids: number[]; assistant_masks: number[] }[];
};

describe("assistant-only loss mask against transformers (Qwen3's own template)", () => {
  it("has multi-turn rows, including ones whose earlier reasoning the template drops", () => {
    assert.ok(expected.cases.length >= 5);
    assert.ok(expected.cases.some((c) => c.messages.filter((m) => m.role === "assistant").length >= 3));
  });

  for (const [n, c] of expected.cases.entries()) {
    it(`row ${n}: same text, ids and mask, token for token`, async () => {
      const tok = await loadTokenizer(FIXTURE);
      const r = renderTrainingConversation(tok, c.messages);
      assert.equal(r.text, c.text);
      assert.deepEqual(r.ids, c.input_ids);
      assert.deepEqual([...r.assistantMask], c.assistant_masks);
    });
  }

  it("keeps the <think> block inside the trained span of the final turn", async () => {
    const tok = await loadTokenizer(FIXTURE);
    const c = expected.cases[0];
    const r = renderTrainingConversation(tok, c.messages);
    const trainedText = r.spans.map((s) => r.text.slice(s.start, s.end)).join("");
    assert.ok(trainedText.startsWith("<think>\n17 * 3 = 51.\n</think>\n\n"), trainedText);
    assert.ok(trainedText.endsWith("<|im_end|>"));
  });

  it("last-assistant trains only the final turn", async () => {
    const tok = await loadTokenizer(FIXTURE);
    const c = expected.cases[3];
    const all = renderTrainingConversation(tok, c.messages);
    const last = renderTrainingConversation(tok, c.messages, { trainOn: "last-assistant" });
    assert.equal(last.spans.length, 1);
    assert.deepEqual(last.spans[0], all.spans[all.spans.length - 1]);
    assert.ok(last.assistantMask.reduce((a, b) => a + b, 0) < all.assistantMask.reduce((a, b) => a + b, 0));
  });
});
