// The Tinker client against a fake server that injects faults: long-poll timeouts, 5xx, 429, lost
// futures, dropped connections. Retried requests resend the same seq_id, so nothing is applied twice.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { TinkerClient, TinkerRequestError } from "../../src/backend/tinker/client.js";
import { forwardDatum } from "../../src/backend/tinker/gradients.js";
import {
  decodeForwardBackwardOutput,
  decodeForwardBackwardRequest,
  decodeSampleResponse,
  encodeForwardBackwardOutput,
  encodeForwardBackwardRequest,
  encodeSampleResponse,
} from "../../src/backend/tinker/proto.js";
import { FakeTinkerServer } from "./fake-tinker-server.js";

const adam = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, gradClipNorm: 0 };

describe("tinker protobuf codec", () => {
  test("a forward_backward request round-trips, every field", () => {
    const req = {
      modelId: "model_1",
      seqId: 7,
      lossFn: "importance_sampling",
      lossFnConfig: { clip_low_threshold: 0.8 },
      forwardOnly: true,
      data: [
        {
          tokens: [1, 2, 151_935],
          lossFnInputs: {
            target_tokens: { dtype: "int64" as const, data: [2, 3, 4] },
            advantages: { dtype: "float32" as const, data: [0.5, -0.25, 0] },
          },
        },
      ],
    };
    const back = decodeForwardBackwardRequest(encodeForwardBackwardRequest(req));
    assert.equal(back.modelId, "model_1");
    assert.equal(back.seqId, 7);
    assert.equal(back.lossFn, "importance_sampling");
    assert.equal(back.forwardOnly, true);
    assert.deepEqual(back.lossFnConfig, { clip_low_threshold: 0.8 });
    assert.deepEqual(Array.from(back.data[0].tokens), [1, 2, 151_935]);
    assert.deepEqual(Array.from(back.data[0].lossFnInputs.target_tokens.data), [2, 3, 4]);
    assert.equal(back.data[0].lossFnInputs.target_tokens.dtype, "int64");
    assert.deepEqual(Array.from(back.data[0].lossFnInputs.advantages.data), [0.5, -0.25, 0]);
  });

  test("forward outputs and sample responses decode per datum", () => {
    const out = decodeForwardBackwardOutput(
      encodeForwardBackwardOutput([{ logprobs: [-1, -2] }, { logprobs: [-0.5] }]),
    );
    assert.deepEqual(
      out.outputs.map((o) => Array.from(o.logprobs)),
      [[-1, -2], [-0.5]],
    );
    const seqs = decodeSampleResponse(
      encodeSampleResponse([{ stopReason: "length", tokens: [5, 6], logprobs: [-0.5, -0.25] }]),
    );
    assert.deepEqual(seqs, [{ stopReason: "length", tokens: [5, 6], logprobs: [-0.5, -0.25] }]);
  });
});

describe("tinker client faults", () => {
  const server = new FakeTinkerServer();
  let url = "";
  const client = () =>
    new TinkerClient({
      baseUrl: url,
      apiKey: "tml-secret-key",
      backoffMs: 1,
      maxBackoffMs: 5,
      maxRetries: 5,
    });

  before(async () => {
    url = await server.start();
  });
  after(() => server.stop());
  beforeEach(() => {
    server.faults.length = 0;
  });

  async function model(c: TinkerClient) {
    await c.createSession();
    return c.createModel("base", { rank: 4 });
  }

  test("a future that keeps timing out (408) is re-polled until it completes", async () => {
    const c = client();
    const m = await model(c);
    for (let i = 0; i < 4; i++) server.faults.push({ route: "/api/v1/retrieve_future", answer: 408 });
    const out = await m.forward([forwardDatum([1, 2], [3, 4])]);
    assert.equal(out.outputs[0].logprobs.length, 3);
    assert.equal(c.stats.retryCauses["408"], 4);
    c.close();
  });

  test("a future past futureTimeoutMs fails clearly instead of hanging", async () => {
    const c = new TinkerClient({ baseUrl: url, futureTimeoutMs: 50, backoffMs: 1 });
    await c.createSession();
    const m = await c.createModel("base", { rank: 4 });
    const pending = m.forward([forwardDatum([1], [2])]);
    // Every future id from now on stays pending on the server.
    for (let id = 1; id < 1000; id++) server.stuck.add(String(id));
    await assert.rejects(pending, (e: Error & { code?: string }) => e.code === "TINKER_FUTURE_TIMEOUT");
    server.stuck.clear();
    c.close();
  });

  test("5xx and 429 answers are retried with backoff, honouring retry-after", async () => {
    const c = client();
    const m = await model(c);
    server.faults.push(
      { route: "/api/v1/forward_backward", answer: 503 },
      { route: "/api/v1/forward_backward", answer: 429, retryAfter: 0.01 },
      { route: "/api/v1/retrieve_future", answer: 500 },
    );
    await m.forwardBackward([forwardDatum([1, 2], [3])], "cross_entropy");
    assert.equal(c.stats.retryCauses["5xx"], 2);
    assert.equal(c.stats.retryCauses["429"], 1);
    c.close();
  });

  test("a dropped connection after the server recorded the step resends the same seq_id: applied once", async () => {
    const c = client();
    const m = await model(c);
    server.faults.push(
      { route: "/api/v1/optim_step", answer: "drop" },
      { route: "/api/v1/retrieve_future", answer: "drop" },
    );
    await m.optimStep(adam);
    assert.equal(server.steps.get(m.modelId), 1);
    const sent = server.log
      .filter(
        (l) => l.route === "/api/v1/optim_step" && (l.json as { model_id?: string })?.model_id === m.modelId,
      )
      .map((l) => (l.json as { seq_id: number }).seq_id);
    assert.ok(sent.length >= 2, "the step was sent again");
    assert.equal(new Set(sent).size, 1, "with the same seq_id");
    assert.equal(c.stats.retryCauses.network, 2);
    c.close();
  });

  test("a lost future (410) resubmits the original request, which maps onto the same step", async () => {
    const c = client();
    const m = await model(c);
    server.faults.push({ route: "/api/v1/retrieve_future", answer: 410 });
    await m.optimStep(adam);
    assert.equal(server.steps.get(m.modelId), 1);
    assert.equal(c.stats.retryCauses["410"], 1);
    c.close();
  });

  test("a server that stays down fails with the fix, never with the API key", async () => {
    const c = new TinkerClient({
      baseUrl: "http://127.0.0.1:1",
      apiKey: "tml-secret-key",
      backoffMs: 1,
      maxRetries: 2,
    });
    await assert.rejects(c.createSession(), (e: Error & { code?: string }) => {
      assert.equal(e.code, "TINKER_UNREACHABLE");
      assert.ok(!e.message.includes("tml-secret-key"));
      return true;
    });
    assert.deepEqual(c.stats.retryCauses, { network: 2 });
  });

  test("rejected requests raise TinkerRequestError; the API key travels as X-API-Key", async () => {
    const c = client();
    const from = server.log.length;
    await c.createSession();
    server.faults.push({ route: "/api/v1/create_model", answer: 400 });
    await assert.rejects(c.createModel("base", { rank: 64 }), TinkerRequestError);
    assert.ok(server.log.slice(from).every((l) => l.apiKey === "tml-secret-key"));
    c.close();
  });

  test("sampling returns token ids and log-probs per sample", async () => {
    const c = client();
    await c.createSession();
    const seqs = await c.sample({ baseModel: "base" }, [1, 2, 3], {
      maxTokens: 2,
      temperature: 1,
      numSamples: 2,
    });
    assert.deepEqual(
      seqs.map((s) => s.tokens),
      [
        [40, 41],
        [41, 42],
      ],
    );
    assert.deepEqual(seqs[0].logprobs, [-0.5, -0.25]);
    c.close();
  });
});
