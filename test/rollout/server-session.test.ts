import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer } from "../../src/model/tokenizer.js";
import { RolloutServerConfigSchema } from "../../src/rollout/server-config.js";
import { ServerSession } from "../../src/rollout/server-session.js";
import { startFakeServer } from "./fake-inference-server.js";

const tokenizer = new ByteTokenizer();
const model = Qwen3Model.create(
  tinyQwen3Config({ vocabSize: 300, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, headDim: 8 }),
  { seed: 1 },
);

test("a server that loses the weights while a step samples is handed them again and the step resampled", async () => {
  const fake = await startFakeServer({ tokenize: (text) => tokenizer.encode(text) });
  // The trainer's log-prob is what the fake serves at the version it holds after the hand-off.
  const policy = {
    model,
    logprobs: async (batch: readonly { responseTokens: readonly number[] }[]) =>
      batch.map((b) => ({ logp: new Float64Array(b.responseTokens.length).fill(-(1 + fake.version) / 10) })),
  };
  const config = RolloutServerConfigSchema.parse({ endpoints: [fake.url], model: "fake", maxRetries: 2 });
  const session = await ServerSession.forRun(
    config,
    mkdtempSync(join(tmpdir(), "klear-session-")),
    policy,
    tokenizer,
  );
  let collects = 0;
  const { result, metrics } = await session.sampleStep(4, async (generator) => {
    collects++;
    const out = await generator.generate([[1]], { temperature: 1, maxNewTokens: 2 });
    if (collects === 1) fake.version = 0; // the server restarted on its start-up weights mid-step
    return out;
  });
  assert.equal(collects, 2);
  assert.equal(fake.adminCalls.filter((c) => c === "/collective_rpc").length, 2);
  assert.deepEqual(result[0].modelLogprobs, [-0.2, -0.2]);
  assert.equal(metrics.servedVersion, 4);
  assert.equal(metrics.staleness, 0);
  assert.ok(metrics.versionProbeMaxDiff !== null && metrics.versionProbeMaxDiff < 1e-6);
  // syncEvery 1: the next step hands over again.
  const next = await session.sampleStep(5, async () => null);
  assert.equal(next.metrics.servedVersion, 5);
  await session.close();
  await fake.close();
});

test("lag beyond maxOffPolicySteps, a missing endpoint and a policy without weights are refused at start", async () => {
  const fake = await startFakeServer({ tokenize: (text) => tokenizer.encode(text) });
  const policy = { model, logprobs: async () => [] };
  const dir = mkdtempSync(join(tmpdir(), "klear-session-"));
  const parse = (o: object) =>
    RolloutServerConfigSchema.parse({ model: "fake", endpoints: [fake.url], ...o });
  await assert.rejects(
    ServerSession.forRun(parse({ syncEvery: 3 }), dir, policy, tokenizer),
    /maxOffPolicySteps/,
  );
  await assert.rejects(
    ServerSession.forRun(parse({ endpoints: "" }), dir, policy, tokenizer),
    /needs endpoints/,
  );
  await assert.rejects(
    ServerSession.forRun(parse({}), dir, { logprobs: policy.logprobs }, tokenizer),
    /policy's weights/,
  );
  await assert.rejects(
    ServerSession.forRun(
      parse({}),
      dir,
      policy,
      new ByteTokenizer({ addedTokens: [{ content: "<|x|>", special: true }] }),
    ),
    /TOKENIZER_MISMATCH|tokenises a probe text/,
  );
  const lagging = await ServerSession.forRun(
    parse({ syncEvery: 3, maxOffPolicySteps: 2 }),
    dir,
    {
      model,
      logprobs: async (batch: readonly { responseTokens: readonly number[] }[]) =>
        batch.map((b) => ({
          logp: new Float64Array(b.responseTokens.length).fill(-(1 + fake.version) / 10),
        })),
    },
    tokenizer,
  );
  const staleness: number[] = [];
  for (const step of [0, 1, 2, 3])
    staleness.push((await lagging.sampleStep(step, async () => null)).metrics.staleness);
  assert.deepEqual(staleness, [0, 1, 2, 0]);
  await lagging.close();
  await fake.close();
});
