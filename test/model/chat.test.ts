import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  applyChatTemplate,
  type ChatRenderOptions,
  type ChatTemplateMessage,
  JinjaChatTemplate,
  renderTrainingConversation,
  SIMPLE_CHAT_TEMPLATE,
} from "../../src/model/chat.js";
import { ByteTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";

const QWEN3_SUBSET = join(import.meta.dirname, "../../fixtures/model/qwen3-tokenizer-subset");

describe("Qwen3's own chat template", () => {
  const expected = JSON.parse(readFileSync(join(QWEN3_SUBSET, "expected_chat.json"), "utf8")) as {
    cases: {
      messages: ChatTemplateMessage[];
      options: Record<string, boolean>;
      tools?: unknown[];
      expected: string;
    }[];
  };

  it("renders exactly as Python jinja2 does in transformers (generation prompt, thinking off, tools)", async () => {
    const tok = await loadTokenizer(QWEN3_SUBSET);
    assert.ok(expected.cases.length >= 10);
    for (const c of expected.cases) {
      const opts: ChatRenderOptions = {
        addGenerationPrompt: c.options.add_generation_prompt,
        enableThinking: c.options.enable_thinking,
        tools: c.tools,
      };
      assert.equal(applyChatTemplate(tok, c.messages, opts), c.expected, JSON.stringify(c.options));
    }
  });

  it("ends the generation prompt with an empty think block only when thinking is off", async () => {
    const tok = await loadTokenizer(QWEN3_SUBSET);
    const msgs: ChatTemplateMessage[] = [{ role: "user", content: "2+2?" }];
    assert.ok(
      applyChatTemplate(tok, msgs, { addGenerationPrompt: true }).endsWith("<|im_start|>assistant\n"),
    );
    assert.ok(
      applyChatTemplate(tok, msgs, { addGenerationPrompt: true, enableThinking: false }).endsWith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n",
      ),
    );
    assert.ok(applyChatTemplate(tok, msgs).endsWith("2+2?<|im_end|>\n"));
  });
});

describe("built-in template for tiny models", () => {
  const tok = new ByteTokenizer();
  const msgs: ChatTemplateMessage[] = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "1+1?" },
  ];

  it("is ChatML and is used when the tokenizer has none", () => {
    assert.equal(
      applyChatTemplate(tok, msgs, { addGenerationPrompt: true }),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n",
    );
    assert.ok(
      applyChatTemplate(tok, msgs, { addGenerationPrompt: true, enableThinking: false }).endsWith(
        "1+1?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
      ),
    );
    assert.equal(
      applyChatTemplate(tok, msgs),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n",
    );
  });

  it("tokenizes into single ids for the chat markers", () => {
    const ids = tok.encode(applyChatTemplate(tok, msgs, { addGenerationPrompt: true }));
    assert.equal(ids.filter((id) => id === tok.specialTokens.get("<|im_start|>")).length, 3);
    assert.equal(ids.filter((id) => id === tok.eosTokenId).length, 2);
  });

  it("a template on the tokenizer wins, and bad templates name their source", () => {
    const custom = new ByteTokenizer({
      chatTemplate: "{{ bos_token }}{{ messages | length }}{{ eos_token }}",
    });
    assert.equal(applyChatTemplate(custom, msgs), "2<|im_end|>");
    assert.throws(
      () => new JinjaChatTemplate("{% for %}", "x/tokenizer_config.json"),
      /x\/tokenizer_config\.json: chat template does not parse/,
    );
    assert.equal(new JinjaChatTemplate(SIMPLE_CHAT_TEMPLATE).render([]), "");
  });
});

describe("Python string semantics in templates", () => {
  it("strip/lstrip/rstrip with an argument remove only those characters, as Python's str methods do", () => {
    const t = new JinjaChatTemplate(
      "{{ messages[0].content.strip('\\n') }}|{{ messages[0].content.lstrip('\\n ') }}|{{ messages[0].content.rstrip() }}|",
    );
    assert.equal(t.render([{ role: "user", content: "\n  a  \n" }]), "  a  |a  \n|\n  a|");
  });
});

describe("renderTrainingConversation on other templates", () => {
  const convo: ChatTemplateMessage[] = [
    { role: "system", content: "S" },
    { role: "user", content: "Q1" },
    { role: "assistant", content: "A1" },
    { role: "user", content: "Q2" },
    { role: "assistant", content: "A2" },
  ];
  const trainedText = (tok: ByteTokenizer, msgs = convo) => {
    const r = renderTrainingConversation(tok, msgs);
    return r.spans.map((s) => r.text.slice(s.start, s.end));
  };

  it("ChatML (the built-in template): each assistant turn through its <|im_end|>", () => {
    assert.deepEqual(trainedText(new ByteTokenizer()), ["A1<|im_end|>", "A2<|im_end|>"]);
  });

  it("a Llama-3-style template with a BOS token: through <|eot_id|>", () => {
    const tok = new ByteTokenizer({
      addedTokens: [
        { content: "<|begin_of_text|>", special: true },
        { content: "<|start_header_id|>", special: true },
        { content: "<|end_header_id|>", special: true },
        { content: "<|eot_id|>", special: true },
      ],
      bosToken: "<|begin_of_text|>",
      eosToken: "<|eot_id|>",
      chatTemplate:
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content | trim }}<|eot_id|>{% endfor %}" +
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
    });
    assert.deepEqual(trainedText(tok), ["A1<|eot_id|>", "A2<|eot_id|>"]);
    const r = renderTrainingConversation(tok, convo);
    assert.equal(r.ids[0], tok.bosTokenId);
  });

  it("a template that closes turns with whitespace only: the turn's text, without the whitespace", () => {
    const tok = new ByteTokenizer({
      chatTemplate:
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
    });
    assert.deepEqual(trainedText(tok), ["A1", "A2"]);
  });

  it("a token straddling a span's start is in the mask, as transformers' char_to_token rule has it", () => {
    // The added token ": A" spans the end of the generation prompt ("assistant: ") and the reply.
    const tok = new ByteTokenizer({
      addedTokens: [
        { content: "<|endoftext|>", special: true },
        { content: "<|im_end|>", special: true },
        { content: ": A", special: false },
      ],
      chatTemplate:
        "{% for m in messages %}{{ m.role }}: {{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
    });
    const msgs: ChatTemplateMessage[] = [
      { role: "user", content: "Q" },
      { role: "assistant", content: "AB" },
    ];
    const r = renderTrainingConversation(tok, msgs);
    const straddler = tok.specialTokens.get(": A")!;
    const at = r.ids.indexOf(straddler);
    assert.ok(at > 0);
    assert.equal(r.assistantMask[at], 1, "the straddling token is trained");
    assert.equal(r.assistantMask[at - 1], 0);
    assert.equal(tok.decode(r.ids.filter((_, i) => r.assistantMask[i] === 1)), ": AB<|im_end|>");
  });
});
