// The Tinker training backend behind the PolicyTrainer seam, against the fake server: what it sends for
// one update, the forward it saves, checkpoints that restore server state, sampling per weights version.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTinyQwen3 } from "../../scripts/server/make-tiny-qwen3.js";
import { TINKER_STATE_FILE, tinkerBackend } from "../../src/backend/tinker/trainer.js";
import type { PolicyTrainer } from "../../src/backend/types.js";
import { FakeTinkerServer } from "./fake-tinker-server.js";

const optimizer = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

describe("tinker backend", () => {
  const server = new FakeTinkerServer();
  const dir = mkdtempSync(join(tmpdir(), "klear-tinker-"));
  const base = join(dir, "base");
  let backend: ReturnType<typeof tinkerBackend>;

  before(async () => {
    await makeTinyQwen3(base);
    const url = await server.start();
    backend = tinkerBackend({
      client: { baseUrl: url, backoffMs: 1 },
      lora: { rank: 4, seed: 3 },
      lossConvention: "skyrl-jax",
      samplingConcurrency: 2,
    });
  });
  after(async () => {
    backend.client.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const seqs = [
    { promptTokens: [257, 65], responseTokens: [66, 67, 258] },
    { promptTokens: [257, 70, 71], responseTokens: [72] },
  ];

  test("one update: the forward of logprobs() is reused, gradients go out at the optimizer step", async () => {
    const policy: PolicyTrainer = await backend.openPolicy(base, { optimizer });
    const from = server.log.length;
    const old = await policy.logprobs(seqs, { temperature: 1, entropy: true });
    assert.deepEqual(
      old.map((o) => Array.from(o.logp)),
      seqs.map((s) => s.responseTokens.map((y) => Math.fround(server.logprob(y, 0)))),
    );
    const dLogp = [Float64Array.from([0.1, -0.2, 0.3]), Float64Array.from([-0.4])];
    await policy.forwardBackward(seqs, { temperature: 1 }, (out) => {
      assert.deepEqual(out[0].logp, old[0].logp);
      return { dLogp };
    });
    const fbBefore = server.log.slice(from).filter((l) => l.route === "/api/v1/forward_backward");
    assert.equal(fbBefore.length, 1, "only the logprobs() forward: forwardBackward reused it");
    const step = await policy.optimizerStep({ lr: 5e-4, gradClip: 1 });
    assert.deepEqual(step, { gradNorm: 1.5, applied: true });

    const sent = server.log
      .slice(from)
      .filter((l) => l.route === "/api/v1/forward_backward" && !l.fb?.forwardOnly);
    assert.equal(sent.length, 1);
    const fb = sent[0].fb!;
    assert.equal(fb.lossFn, "importance_sampling");
    // Row 0: prompt 2, response 3 → positions 1..3 of 4; A = −dLogp · R · B (R = 3, B = 2).
    const d0 = fb.data[0].lossFnInputs;
    assert.deepEqual(Array.from(fb.data[0].tokens), [257, 65, 66, 67]);
    assert.deepEqual(Array.from(d0.target_tokens.data), [65, 66, 67, 258]);
    assert.deepEqual(Array.from(d0.weights.data), [0, 1, 1, 1]);
    assert.deepEqual(
      Array.from(d0.advantages.data).map((v) => Math.round(v * 1e6) / 1e6),
      [0, -0.6, 1.2, -1.8],
    );
    assert.deepEqual(Array.from(d0.logprobs.data).slice(1), Array.from(Float32Array.from(old[0].logp)));
    assert.deepEqual(
      Array.from(fb.data[1].lossFnInputs.advantages.data).map((v) => Math.round(v * 1e6) / 1e6),
      [0, 0, 0.8],
    );
    const optim = server.log.slice(from).find((l) => l.route === "/api/v1/optim_step")!.json as Record<
      string,
      unknown
    >;
    assert.deepEqual(optim.adam_params, {
      learning_rate: 5e-4,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weight_decay: 0.1,
      grad_clip_norm: 1,
    });

    // New weights: the next forwardBackward must run its own forward, seeing the updated log-probs.
    await policy.forwardBackward(seqs, { temperature: 1 }, (out) => {
      assert.equal(out[1].logp[0], Math.fround(server.logprob(72, 1)));
      return { dLogp };
    });
  });

  test("checkpoints record the server state, and opening one loads it into a fresh model", async () => {
    const policy = await backend.openPolicy(base, { optimizer });
    const ckpt = join(dir, "step-1");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(ckpt);
    await policy.save(ckpt);
    const state = JSON.parse(readFileSync(join(ckpt, TINKER_STATE_FILE), "utf8"));
    assert.match(state.statePath, /^tinker:\/\/.+\/weights\/klear-ckpt-/);
    assert.match(state.samplerPath, /^tinker:\/\/.+\/sampler_weights\//);
    const from = server.log.length;
    await backend.openPolicy(ckpt, { optimizer, resumeOptimizer: { optimizerSteps: 1 } });
    const load = server.log.slice(from).find((l) => l.route === "/api/v1/load_weights")!.json as Record<
      string,
      unknown
    >;
    assert.equal(load.path, state.statePath);
    assert.equal(load.optimizer, true);
    await assert.rejects(
      backend.openPolicy(base, { optimizer, resumeOptimizer: { optimizerSteps: 1 } }),
      (e: Error & { code?: string }) => e.code === "TINKER_NO_SERVER_STATE",
    );
  });

  test("the sampler exports the weights once per version and returns tokens with log-probs", async () => {
    const policy = await backend.openPolicy(base, { optimizer });
    const from = server.log.length;
    const gen = policy.sampler();
    const params = {
      n: 2,
      maxNewTokens: 2,
      temperature: 1,
      stopTokenIds: [258],
      seed: 5,
      decode: (t: number[]) => t.join(" "),
    };
    const out = await gen.generate(
      [
        [257, 65],
        [257, 66],
      ],
      params,
    );
    await policy.sampler().generate([[257, 65]], params);
    assert.equal(out.length, 4);
    assert.deepEqual(out[1], {
      promptIndex: 0,
      sampleIndex: 1,
      tokens: [41, 42],
      logprobs: [-0.5, -0.25],
      modelLogprobs: [-0.5, -0.25],
      text: "41 42",
      finishReason: "length",
    });
    assert.equal(
      server.log.slice(from).filter((l) => l.route === "/api/v1/save_weights_for_sampler").length,
      1,
    );
    // The server draws sample k from seed + k, so prompts are spaced n = 2 apart: no shared streams.
    const seeds = server.log
      .slice(from)
      .filter((l) => l.route === "/api/v1/asample")
      .map((l) => (l.json as { sampling_params: { seed: number } }).sampling_params.seed);
    assert.deepEqual(seeds.slice(0, 2).sort(), [5_000_015, 5_000_017]);
    const sample = server.log.slice(from).find((l) => l.route === "/api/v1/asample")!.json as {
      sampling_params: unknown;
    };
    assert.deepEqual(sample.sampling_params, {
      max_tokens: 2,
      temperature: 1,
      top_k: -1,
      top_p: 1,
      seed: 5_000_015,
      stop: [258],
    });
  });

  test("what the API cannot compute is refused with the fix", async () => {
    const policy = await backend.openPolicy(base, { optimizer });
    await assert.rejects(policy.logprobs(seqs, { temperature: 0.7 }), /temperature 1 only/);
    await assert.rejects(
      policy.forwardBackward(seqs, { temperature: 1, entropy: true }, () => ({ dLogp: [] })),
      /returns no entropies/,
    );
    await assert.rejects(
      policy
        .sampler()
        .generate([[1]], { maxNewTokens: 1, temperature: 1, stopStrings: ["x"], decode: String }),
      /no stop strings/,
    );
  });
});
