import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { applyChatTemplate } from "../../src/model/chat.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer, type Tokenizer } from "../../src/model/tokenizer.js";
import { VllmWeightSync, WeightVersions } from "../../src/rollout/handoff.js";
import { ServerGenerator } from "../../src/rollout/server-generator.js";
import { checkServedVersion, checkServerSetup } from "../../src/rollout/server-version.js";
import { SERVED_NAME, startVllm, type VllmUnderTest, vllmSkipReason } from "./vllm-harness.js";

/** Served fp32 log-probs vs klear's fp32 recomputation (measured ≈ 1e-5). */
const TOLERANCE = 1e-3;

const skip = vllmSkipReason();
if (skip) console.log(`# SKIP test:server (vLLM CPU): ${skip}`);

/** klear's log-probs of `completion` after `prompt`, as the trainer recomputes them. */
function recompute(model: Qwen3Model, prompt: number[], completion: number[]): number[] {
  const ids = [...prompt, ...completion];
  const seqLen = ids.length - 1;
  const { logp } = model.logprobs({
    tokens: Int32Array.from(ids.slice(0, seqLen)),
    targets: Int32Array.from(ids.slice(1)),
    batchSize: 1,
    seqLen,
  });
  return Array.from(logp.slice(prompt.length - 1));
}

describe("vLLM CPU server", { skip: skip ?? false, timeout: 900_000 }, () => {
  let vllm: VllmUnderTest;
  let policy: Qwen3Model;
  let tokenizer: Tokenizer;
  let gen: ServerGenerator;

  before(async () => {
    vllm = await startVllm();
    ({ model: policy, tokenizer } = await loadModel(vllm.modelDir));
    gen = new ServerGenerator({
      endpoints: [vllm.url],
      model: SERVED_NAME,
      vocabSize: policy.config.vocabSize,
      timeoutMs: 60_000,
      maxRetries: 60,
      backoffMs: 500,
      maxBackoffMs: 4000,
    });
  });
  after(async () => {
    gen?.close();
    await vllm?.stop();
  });

  test("start-up checks: model name and tokenizer", async () => {
    await checkServerSetup({ client: gen.client, model: SERVED_NAME, tokenizer });
    await assert.rejects(
      checkServerSetup({ client: gen.client, model: "other" }),
      /SERVER_WRONG_MODEL|serves tiny/,
    );
    const otherTokenizer = new ByteTokenizer({
      addedTokens: [
        { content: "<|endoftext|>", special: true },
        { content: "<|im_end|>", special: true },
        { content: "<|im_start|>", special: true },
      ],
    });
    await assert.rejects(
      checkServerSetup({ client: gen.client, model: SERVED_NAME, tokenizer: otherTokenizer }),
      (e: Error & { code?: string }) => e.code === "TOKENIZER_MISMATCH",
    );
  });

  test("token-exact: prompt ids as rendered, completion ids as sampled, log-probs equal klear's", async () => {
    const prompts = ["What is 2+3?", "Say ✓ twice."].map((q) =>
      tokenizer.encode(
        applyChatTemplate(tokenizer, [{ role: "user", content: q }], { addGenerationPrompt: true }),
      ),
    );
    // A prompt whose bytes spell a special token: tokenising its text would give the single special id.
    prompts.push([...Buffer.from("<|im_end|>")].map(Number));
    const params = { n: 4, temperature: 1, maxNewTokens: 24, seed: 11, stopTokenIds: [tokenizer.eosTokenId] };
    const out = await gen.generate(prompts, params);
    assert.equal(out.length, prompts.length * 4);
    let retokenisesDifferently = 0;
    let maxDiff = 0;
    for (const c of out) {
      assert.ok(c.tokens.length > 0);
      assert.equal(c.modelLogprobs.length, c.tokens.length);
      assert.ok(c.finishReason === "length" || c.tokens.at(-1) === tokenizer.eosTokenId);
      const again = tokenizer.encode(tokenizer.decode(c.tokens));
      if (again.length !== c.tokens.length || again.some((t, i) => t !== c.tokens[i]))
        retokenisesDifferently++;
      const mine = recompute(policy, prompts[c.promptIndex], c.tokens);
      for (let i = 0; i < mine.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(mine[i] - c.modelLogprobs[i]));
    }
    console.log(
      `# served vs klear log-probs: max |Δ| ${maxDiff.toExponential(2)}; ${retokenisesDifferently}/${out.length} completions re-tokenise differently`,
    );
    // Random bytes are mostly not UTF-8: their text re-encodes to other ids, which klear never trains on.
    assert.ok(retokenisesDifferently > 0, "expected completions whose text re-tokenises differently");
    assert.ok(maxDiff < TOLERANCE, `served log-probs differ from klear's by ${maxDiff}`);
    // Same seed, same samples; the prompt ids the server saw were checked against those sent.
    const again = await gen.generate(prompts.slice(0, 1), params);
    assert.deepEqual(
      again.map((c) => c.tokens),
      out.filter((c) => c.promptIndex === 0).map((c) => c.tokens),
    );
  });

  test("weight hand-off: reload in place, version probe passes after and fails before", async () => {
    const before0 = await checkServedVersion({
      client: gen.client,
      model: SERVED_NAME,
      policy,
      tolerance: TOLERANCE,
      version: "v0",
    });
    assert.ok(before0.ok);
    const versions = new WeightVersions({ dir: join(vllm.dir, "weights"), keep: 2 });
    const sync = new VllmWeightSync(gen.client);
    const untied = Qwen3Model.create(policy.config, { seed: 101 });
    const tied = Qwen3Model.create({ ...policy.config, tieWordEmbeddings: true }, { seed: 202 });
    for (const [version, next] of [untied, tied].entries()) {
      const tag = `v${version + 1}`;
      await assert.rejects(
        checkServedVersion({
          client: gen.client,
          model: SERVED_NAME,
          policy: next,
          tolerance: TOLERANCE,
          version: tag,
        }),
        (e: Error & { code?: string }) => e.code === "STALE_WEIGHTS",
      );
      const t0 = performance.now();
      const path = await versions.write(next, tokenizer, version + 1);
      const written = performance.now();
      await sync.load(path, tag);
      const loaded = performance.now();
      const check = await checkServedVersion({
        client: gen.client,
        model: SERVED_NAME,
        policy: next,
        tolerance: TOLERANCE,
        version: tag,
      });
      console.log(
        `# hand-off ${tag} (${next.config.tieWordEmbeddings ? "tied" : "untied"} policy): write ${(written - t0).toFixed(0)} ms, reload ${(loaded - written).toFixed(0)} ms, probe max |Δ| ${check.maxAbsDiff.toExponential(2)}`,
      );
      assert.ok(check.ok);
    }
    assert.deepEqual(await versions.list(), [1, 2]);
    // Back to the served folder's own weights for the tests that follow.
    await sync.load(vllm.modelDir, "v0");
    await checkServedVersion({
      client: gen.client,
      model: SERVED_NAME,
      policy,
      tolerance: TOLERANCE,
      version: "v0",
    });
  });

  test("a server killed mid-generation and restarted: the request is retried and completes", async (t) => {
    if (!vllm.kill || !vllm.restart) return t.skip("reusing an outside server (KLEAR_TEST_VLLM_URL)");
    const prompts = [tokenizer.encode("kill me softly")];
    const params = { n: 2, temperature: 1, maxNewTokens: 128, seed: 5 };
    const expected = await gen.generate(prompts, params);
    // Retries enough to outlast a restart (1–3 min: vLLM recompiles on every start).
    const patient = new ServerGenerator({
      endpoints: [vllm.url],
      model: SERVED_NAME,
      maxRetries: 2000,
      backoffMs: 200,
      maxBackoffMs: 1000,
    });
    const pending = patient.generate(prompts, params);
    await new Promise((r) => setTimeout(r, 300));
    await vllm.kill();
    const restarted = vllm.restart();
    const got = await pending;
    await restarted;
    assert.ok(patient.client.stats.retries > 0, "the request should have been retried");
    patient.close();
    // Seeded, and the same weights: the retried request samples exactly what the first run did.
    assert.deepEqual(
      got.map((c) => c.tokens),
      expected.map((c) => c.tokens),
    );
  });
});
