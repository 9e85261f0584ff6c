import assert from "node:assert/strict";
import { test } from "node:test";
import { OpenAIClient } from "../../src/rollout/openai.js";
import { startFakeOpenAI } from "../helpers/fake-openai.js";

const fastRetry = { backoffMs: 1, maxBackoffMs: 5 };

test("chat and completions round-trip, with n choices and usage", async () => {
  const fake = await startFakeOpenAI({
    respond: (r) =>
      r.body.n === 2 ? [`a:${r.prompt}`, { text: `b:${r.prompt}`, finishReason: "length" }] : `x:${r.prompt}`,
  });
  const client = new OpenAIClient({ endpoints: [fake.url.replace(/\/v1$/, "")] });
  try {
    const chat = await client.chat([{ role: "user", content: "hi" }], { model: "m", n: 2, temperature: 0.6 });
    assert.deepEqual(
      chat.choices.map((c) => [c.text, c.finishReason]),
      [
        ["a:hi", "stop"],
        ["b:hi", "length"],
      ],
    );
    assert.equal(chat.attempts, 1);
    assert.ok((chat.completionTokens ?? 0) > 0);
    const comp = await client.complete("yo", { model: "m", seed: 3, topK: 20, maxTokens: 10 });
    assert.equal(comp.choices[0].text, "x:yo");
  } finally {
    client.close();
    await fake.close();
  }
});

test("a reasoning parser's split thinking is put back in front of the answer", async () => {
  const http = await import("node:http");
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: "\\boxed{4}", reasoning_content: "2+2" },
            finish_reason: "stop",
          },
        ],
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const client = new OpenAIClient({
    endpoints: [`http://127.0.0.1:${(server.address() as { port: number }).port}`],
  });
  try {
    const r = await client.chat([{ role: "user", content: "q" }], { model: "m" });
    assert.equal(r.choices[0].text, "<think>\n2+2\n</think>\n\n\\boxed{4}");
    assert.equal(r.completionTokens, null);
  } finally {
    client.close();
    server.close();
  }
});

test("sampling parameters reach the server under OpenAI/vLLM names", async () => {
  let seen: Record<string, unknown> = {};
  const fake = await startFakeOpenAI({
    respond: (r) => {
      seen = r.body;
      return "ok";
    },
  });
  const client = new OpenAIClient({ endpoints: [fake.url] });
  try {
    await client.chat([{ role: "user", content: "q" }], {
      model: "m",
      temperature: 0.6,
      topP: 0.95,
      topK: 20,
      maxTokens: 100,
      seed: 5,
      repetitionPenalty: 1.05,
      stop: ["</s>"],
    });
    assert.equal(seen.model, "m");
    assert.equal(seen.temperature, 0.6);
    assert.equal(seen.top_p, 0.95);
    assert.equal(seen.top_k, 20);
    assert.equal(seen.max_tokens, 100);
    assert.equal(seen.seed, 5);
    assert.equal(seen.repetition_penalty, 1.05);
    assert.deepEqual(seen.stop, ["</s>"]);
  } finally {
    client.close();
    await fake.close();
  }
});

test("retries 500/429/timeouts/dropped connections until every request succeeds once", async () => {
  const fake = await startFakeOpenAI({
    respond: (r) => `answer ${r.prompt}`,
    faults: { status500: 0.1, status429: 0.05, hang: 0.05, drop: 0.05, dropMidBody: 0.05, slow: 0.05 },
    slowMs: 30,
    seed: 11,
  });
  const client = new OpenAIClient({
    endpoints: [fake.url],
    timeoutMs: 1000,
    maxRetries: 30,
    concurrency: 16,
    ...fastRetry,
  });
  try {
    const prompts = Array.from({ length: 200 }, (_, i) => `p${i}`);
    const out = await Promise.all(prompts.map((p) => client.complete(p, { model: "m" })));
    assert.deepEqual(
      out.map((o) => o.choices[0].text),
      prompts.map((p) => `answer ${p}`),
    );
    for (const f of ["500", "429", "hang", "drop", "drop-mid-body", "slow"] as const) {
      assert.ok(fake.stats.faults[f] > 0, `fault ${f} was injected`);
    }
    // A response the client timed out on (a loaded machine) is answered twice, never returned twice.
    assert.ok(fake.stats.answered >= 200);
    assert.equal(client.stats.succeeded, 200);
    assert.ok(client.stats.retries >= fake.stats.requests - fake.stats.answered);
    assert.ok(out.some((o) => o.attempts > 1));
  } finally {
    client.close();
    await fake.close();
  }
});

test("gives up after maxRetries with an error naming the endpoint and the fix", async () => {
  const fake = await startFakeOpenAI({ faultPlan: () => "500" });
  const client = new OpenAIClient({ endpoints: [fake.url], maxRetries: 2, ...fastRetry });
  try {
    await assert.rejects(client.complete("x", { model: "m" }), (e: Error) => {
      assert.match(e.message, /failed after 3 attempts: HTTP 500/);
      assert.match(e.message, /fix:/);
      return true;
    });
    assert.equal(fake.stats.requests, 3);
  } finally {
    client.close();
    await fake.close();
  }
});

test("a 4xx other than 429 is not retried", async () => {
  const fake = await startFakeOpenAI();
  const client = new OpenAIClient({
    endpoints: [`http://127.0.0.1:${fake.port}/other`],
    maxRetries: 5,
    ...fastRetry,
  });
  try {
    await assert.rejects(client.complete("x", { model: "m" }), /HTTP 404/);
    assert.equal(client.stats.retries, 0);
  } finally {
    client.close();
    await fake.close();
  }
});

test("never more requests in flight than the concurrency bound", async () => {
  const fake = await startFakeOpenAI({ faultPlan: () => "slow", slowMs: 15 });
  const client = new OpenAIClient({ endpoints: [fake.url], concurrency: 4 });
  try {
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.complete(`q${i}`, { model: "m" })));
    assert.equal(fake.stats.maxOpen, 4);
  } finally {
    client.close();
    await fake.close();
  }
});

test("least-loaded balancing over several endpoints, failing over", async () => {
  const mk = () => startFakeOpenAI({ faultPlan: () => "slow", slowMs: 20 });
  const a = await mk();
  const b = await mk();
  // A dead endpoint: every request to it is refused, so they fail over to the live ones.
  const dead = await startFakeOpenAI();
  const deadUrl = dead.url;
  await dead.close();
  const client = new OpenAIClient({
    endpoints: [a.url, b.url, deadUrl],
    concurrency: 6,
    maxRetries: 10,
    ...fastRetry,
  });
  try {
    await Promise.all(Array.from({ length: 60 }, (_, i) => client.complete(`q${i}`, { model: "m" })));
    assert.equal(a.stats.answered + b.stats.answered, 60);
    assert.ok(a.stats.answered >= 15 && b.stats.answered >= 15, `${a.stats.answered} / ${b.stats.answered}`);
    assert.ok(a.stats.maxOpen <= 6 && b.stats.maxOpen <= 6);
    assert.ok((client.stats.retryCauses.connection ?? 0) > 0);
  } finally {
    client.close();
    await a.close();
    await b.close();
  }
});

test("rejects a missing or malformed endpoint with a fix", () => {
  assert.throws(() => new OpenAIClient({ endpoints: [] }), /--endpoint/);
  assert.throws(() => new OpenAIClient({ endpoints: ["not a url"] }), /not a URL/);
});
