import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer } from "../../src/model/tokenizer.js";
import {
  createWeightSync,
  SglangWeightSync,
  untiedForServing,
  VllmWeightSync,
  versionName,
  WeightVersions,
} from "../../src/rollout/handoff.js";
import { ServerGenerator } from "../../src/rollout/server-generator.js";
import { checkServedVersion, checkServerSetup, compareLogprobs } from "../../src/rollout/server-version.js";
import { type FakeServer, startFakeServer } from "./fake-inference-server.js";

const fast = { maxRetries: 4, backoffMs: 5, maxBackoffMs: 20, timeoutMs: 500 };

describe("ServerGenerator against a fake server", () => {
  let fake: FakeServer;
  before(async () => {
    fake = await startFakeServer({ slowMs: 1500 });
  });
  after(() => fake.close());

  test("sends prompt ids, n, seed and stop ids; returns the sampled ids and log-probs as given", async () => {
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", vocabSize: 300, ...fast });
    const out = await gen.generate([[1, 2, 3], [10]], {
      n: 2,
      temperature: 1,
      maxNewTokens: 5,
      seed: 9,
      stopTokenIds: [13],
    });
    gen.close();
    assert.equal(out.length, 4);
    const [a, , c] = out;
    assert.deepEqual(a.tokens, [4, 5, 6, 7, 8]);
    assert.equal(a.finishReason, "length");
    assert.deepEqual(a.modelLogprobs, [-0.1, -0.1, -0.1, -0.1, -0.1]);
    assert.deepEqual(c.tokens, [11, 12, 13]);
    assert.equal(c.finishReason, "stop");
    const body = fake.requests.at(-1)?.body ?? {};
    assert.deepEqual(body.prompt, [10]);
    assert.equal(body.n, 2);
    assert.equal(body.ignore_eos, true);
    assert.deepEqual(body.stop_token_ids, [13]);
    assert.equal(typeof body.seed, "number");
  });

  test("5xx, slow answers and dropped connections are retried; the results are the same", async () => {
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", ...fast });
    const params = { temperature: 1, maxNewTokens: 3 };
    const clean = await gen.generate([[1]], params);
    fake.faults.push("500", "slow", "drop");
    const retried = await gen.generate([[1]], params);
    assert.deepEqual(retried, clean);
    assert.deepEqual(gen.client.stats.retryCauses, { "500": 1, timeout: 1, connection: 1 });
    gen.close();
  });

  test("a server that keeps failing ends the batch with an error (nothing half-returned)", async () => {
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", ...fast, maxRetries: 2 });
    fake.faults.push(...Array<"500">(12).fill("500"));
    await assert.rejects(
      gen.generate([[1], [2]], { temperature: 1, maxNewTokens: 3 }),
      /INFERENCE_FAILED|failed after 3 attempts/,
    );
    fake.faults.length = 0;
    gen.close();
  });

  test("an aborted completion (a reload mid-request) is an error, not a short sample", async () => {
    // A server of its own: a retry still in flight from an earlier test must not take this test's fault.
    const own = await startFakeServer({ slowMs: 1500 });
    const gen = new ServerGenerator({ endpoints: [own.url], model: "fake", ...fast });
    own.faults.push("abort");
    try {
      await assert.rejects(
        gen.generate([[1]], { temperature: 1, maxNewTokens: 3 }),
        (e: Error & { code?: string }) => e.code === "SERVER_ABORTED",
      );
    } finally {
      gen.close();
      await own.close();
    }
  });

  test("ids outside the policy's vocabulary and a wrong model name fail clearly", async () => {
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", vocabSize: 6, ...fast });
    await assert.rejects(
      gen.generate([[1]], { temperature: 1, maxNewTokens: 8 }),
      /SERVER_TOKEN_OUT_OF_VOCAB|outside the policy/,
    );
    await assert.rejects(
      gen.generate([[9]], { temperature: 1, maxNewTokens: 1 }),
      /outside the policy's vocabulary/,
    );
    gen.close();
    const wrong = new ServerGenerator({ endpoints: [fake.url], model: "nope", ...fast });
    await assert.rejects(wrong.generate([[1]], { temperature: 1, maxNewTokens: 1 }), /HTTP 404/);
    await assert.rejects(
      checkServerSetup({ client: wrong.client, model: "nope" }),
      /serves fake, not "nope"/,
    );
    wrong.close();
  });

  test("several endpoints share the requests", async () => {
    const other = await startFakeServer();
    const gen = new ServerGenerator({
      endpoints: [fake.url, other.url],
      model: "fake",
      ...fast,
      concurrency: 2,
    });
    const before = fake.requests.length;
    await gen.generate(
      Array.from({ length: 8 }, (_, i) => [i]),
      { temperature: 1, maxNewTokens: 2 },
    );
    gen.close();
    assert.ok(fake.requests.length - before >= 2 && other.requests.length >= 2);
    await other.close();
  });

  test("SGLang flavour: native /generate with input_ids, output_token_logprobs read back", async () => {
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", flavor: "sglang", ...fast });
    const out = await gen.generate([[5]], { n: 2, temperature: 1, maxNewTokens: 2, seed: 1 });
    gen.close();
    assert.deepEqual(
      out.map((c) => c.tokens),
      [
        [6, 7],
        [6, 7],
      ],
    );
    const body = fake.requests.at(-1)?.body as {
      input_ids: number[][];
      sampling_params: { sampling_seed: number }[];
    };
    assert.deepEqual(body.input_ids, [[5], [5]]);
    assert.notEqual(body.sampling_params[0].sampling_seed, body.sampling_params[1].sampling_seed);
  });
});

describe("weight hand-off", () => {
  const tokenizer = new ByteTokenizer();
  const config = tinyQwen3Config({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 1,
    headDim: 8,
    tieWordEmbeddings: true,
  });

  test("versions are written untied, atomically, and pruned to the newest `keep`", async () => {
    const dir = mkdtempSync(join(tmpdir(), "klear-handoff-"));
    const versions = new WeightVersions({ dir, keep: 2 });
    const model = Qwen3Model.create(config, { seed: 1 });
    for (const v of [1, 2, 3]) await versions.write(model, tokenizer, v);
    assert.deepEqual(await versions.list(), [2, 3]);
    assert.equal(versionName(3), "v000003");
    const written = JSON.parse(await readFile(join(versions.pathOf(3), "config.json"), "utf8"));
    assert.equal(written.tie_word_embeddings, false);
    const head = untiedForServing(model).parameters().get("lm_head.weight");
    assert.equal(head?.data, model.parameters().get("model.embed_tokens.weight")?.data);
  });

  test("vLLM: pause → reload_weights(path) → reset prefix cache → version tag → resume; SGLang: update_weights_from_disk", async () => {
    const fake = await startFakeServer();
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", ...fast });
    await new VllmWeightSync(gen.client).load("/ckpt/v000001", "v1");
    assert.deepEqual(fake.adminCalls, [
      "/pause?mode=abort",
      "/collective_rpc",
      "/reset_prefix_cache",
      "/update_weight_version",
      "/resume",
    ]);
    await new SglangWeightSync(gen.client).load("/ckpt/v000002", "v2");
    assert.equal(fake.version, 2);
    assert.throws(() => createWeightSync("restart", gen.client), /needs a command/);
    gen.close();
    await fake.close();
  });

  test("restart command: gets the folder, then klear waits for /health", async () => {
    const fake = await startFakeServer();
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", ...fast });
    const dir = mkdtempSync(join(tmpdir(), "klear-restart-"));
    const sync = createWeightSync("restart", gen.client, {
      command: `echo "$KLEAR_WEIGHTS_DIR $KLEAR_WEIGHTS_VERSION" > ${dir}/got`,
      readyTimeoutMs: 5000,
    });
    await sync.load("/ckpt/v000007", "v7");
    assert.equal((await readFile(join(dir, "got"), "utf8")).trim(), "/ckpt/v000007 v7");
    await assert.rejects(
      createWeightSync("restart", gen.client, { command: "exit 3" }).load("/x", "v"),
      /exited with 3/,
    );
    gen.close();
    await fake.close();
  });

  test("version probe: served log-probs within tolerance pass, stale ones are refused", async () => {
    const fake = await startFakeServer();
    const gen = new ServerGenerator({ endpoints: [fake.url], model: "fake", ...fast });
    // A policy whose log-prob is −0.1 everywhere, as the fake serves at version 0.
    const policy = {
      config: { vocabSize: 300 },
      logprobs: (b: { seqLen: number }) => ({ logp: new Float32Array(b.seqLen).fill(-0.1) }),
    };
    const ok = await checkServedVersion({
      client: gen.client,
      model: "fake",
      policy,
      tolerance: 1e-4,
      version: "v0",
    });
    assert.ok(ok.ok && ok.maxAbsDiff < 1e-6);
    fake.version = 1;
    await assert.rejects(
      checkServedVersion({ client: gen.client, model: "fake", policy, tolerance: 1e-4, version: "v1" }),
      (e: Error & { code?: string }) => e.code === "STALE_WEIGHTS",
    );
    assert.deepEqual(compareLogprobs([0, -1], [0, -1.5], 0.4), {
      maxAbsDiff: 0.5,
      meanAbsDiff: 0.25,
      tolerance: 0.4,
      ok: false,
    });
    gen.close();
    await fake.close();
  });
});
