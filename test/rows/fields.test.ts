import assert from "node:assert/strict";
import { test } from "node:test";
import { rowMessages, rowPromptMessages, sniffRowFields } from "../../src/rows/index.js";

test("one sniffer reads prompt, response and messages from chat, ShareGPT, prompt/completion and verl rows", () => {
  const chat = sniffRowFields({
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: "2+2?" },
      { role: "assistant", content: "<think>add</think> 4" },
    ],
  });
  assert.equal(chat.prompt, "2+2?");
  assert.equal(chat.response, "<think>add</think> 4");
  assert.deepEqual(
    chat.promptMessages?.map((m) => m.role),
    ["system", "user"],
  );
  assert.equal(chat.messages?.length, 3);

  const sharegpt = sniffRowFields({
    conversations: [
      { from: "human", value: "hi" },
      { from: "gpt", value: "hello" },
    ],
  });
  assert.equal(sharegpt.prompt, "hi");
  assert.equal(sharegpt.response, "hello");
  assert.deepEqual(sharegpt.messages, [
    { role: "user", content: "hi" },
    { role: "assistant", content: "hello" },
  ]);

  const pc = sniffRowFields({ prompt: "Say x", completion: "x" });
  assert.equal(pc.prompt, "Say x");
  assert.deepEqual(pc.messages, [
    { role: "user", content: "Say x" },
    { role: "assistant", content: "x" },
  ]);

  const verl = sniffRowFields({
    data_source: "math_longcot_math_verify",
    prompt: [{ role: "user", content: "Find x." }],
    ability: "math",
    reward_model: { ground_truth: "3", style: "rule" },
  });
  assert.equal(verl.prompt, "Find x.");
  assert.equal(verl.answer, "3");
  assert.equal(verl.response, undefined);
  assert.equal(verl.source, "math_longcot_math_verify");
  assert.deepEqual(verl.promptMessages, [{ role: "user", content: "Find x." }]);

  const bench = sniffRowFields({ messages: [{ role: "user", content: "Q" }], meta: { solution: "12" } });
  assert.equal(bench.answer, "12");
  assert.equal(sniffRowFields({ problem: "p", answer: 27.0 }).answer, "27");
  assert.equal(sniffRowFields({ Problem: "HMMT style" }).prompt, "HMMT style");
  const code = sniffRowFields({
    ability: "code",
    prompt: "p",
    reward_model: { ground_truth: '{"inputs":[]}' },
  });
  assert.equal(code.tests, '{"inputs":[]}');
});

test("field names override the detection, as dotted paths", () => {
  const row = {
    q: { text: "What?" },
    a: { text: "That." },
    gold: 5,
    src: "mine",
    t: [{ input: "1", output: "2" }],
  };
  const f = sniffRowFields(row, {
    prompt: "q.text",
    response: "a.text",
    answer: "gold",
    source: "src",
    tests: "t",
  });
  assert.equal(f.prompt, "What?");
  assert.equal(f.response, "That.");
  assert.equal(f.answer, "5");
  assert.equal(f.source, "mine");
  assert.deepEqual(f.tests, row.t);
  assert.deepEqual(f.messages, [
    { role: "user", content: "What?" },
    { role: "assistant", content: "That." },
  ]);
  const custom = {
    dialog: [
      { from: "human", value: "a" },
      { from: "gpt", value: "b" },
    ],
  };
  assert.deepEqual(rowMessages(custom, { messages: "dialog" }), [
    { role: "user", content: "a" },
    { role: "assistant", content: "b" },
  ]);
  assert.deepEqual(rowPromptMessages(custom, { messages: "dialog" }), [{ role: "user", content: "a" }]);
  assert.equal(sniffRowFields({ x: 1 }).prompt, null);
});
