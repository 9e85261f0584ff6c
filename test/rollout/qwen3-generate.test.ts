import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { generate } from "../../src/rollout/generate.js";

// A small random Qwen3: big enough that its logits are not trivial, small enough to run in a second.
const config = tinyQwen3Config({
  vocabSize: 96,
  hiddenSize: 64,
  intermediateSize: 128,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
});
// Larger init than HF's 0.02 so the distribution is far from uniform and argmax is well separated.
const model = Qwen3Model.create({ ...config, initializerRange: 0.2 }, { seed: 1 });
const prompts = [[1, 2, 3, 4, 5], [7], [9, 8, 7], [3, 3, 3, 3, 3, 3, 3, 3]];

/** The trainer's view: one cache-free logprobs pass over prompt + completion, padded to a batch. */
function trainerLogprobs(seqs: { prompt: number[]; completion: number[] }[]): number[][] {
  const T = Math.max(...seqs.map((s) => s.prompt.length + s.completion.length)) - 1;
  const B = seqs.length;
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  seqs.forEach((s, b) => {
    const all = [...s.prompt, ...s.completion];
    for (let t = 0; t < all.length - 1; t++) {
      tokens[b * T + t] = all[t];
      if (t + 1 >= s.prompt.length) targets[b * T + t] = all[t + 1];
    }
  });
  const { logp } = model.logprobs({ tokens, targets, batchSize: B, seqLen: T });
  return seqs.map((s, b) => s.completion.map((_, i) => logp[b * T + s.prompt.length - 1 + i]));
}

describe("generate on the engine's Qwen3", () => {
  it("greedy decoding through the KV cache equals argmax of full recomputation", () => {
    const out = generate(model, prompts, { temperature: 0, maxNewTokens: 10 });
    for (const c of out) {
      const seq = [...prompts[c.promptIndex]];
      for (const t of c.tokens) {
        const cache = model.createKVCache(1, seq.length);
        const logits = model.forwardTokens(cache, Int32Array.from(seq));
        let best = 0;
        for (let v = 1; v < config.vocabSize; v++) if (logits[v] > logits[best]) best = v;
        assert.equal(t, best);
        seq.push(t);
      }
    }
  });

  it("the sampler's raw logprobs match the trainer's recomputed logprobs", (t) => {
    const out = generate(model, prompts, {
      temperature: 1,
      topP: 0.9,
      topK: 30,
      maxNewTokens: 24,
      n: 3,
      seed: 5,
    });
    const recomputed = trainerLogprobs(
      out.map((c) => ({ prompt: prompts[c.promptIndex], completion: c.tokens })),
    );
    let maxDiff = 0;
    let count = 0;
    out.forEach((c, i) => {
      c.modelLogprobs.forEach((lp, j) => {
        maxDiff = Math.max(maxDiff, Math.abs(lp - recomputed[i][j]));
        count++;
      });
    });
    t.diagnostic(
      `max |sampler raw logprob − trainer logprob| = ${maxDiff.toExponential(2)} over ${count} tokens`,
    );
    assert.ok(maxDiff < 1e-4, `max abs diff ${maxDiff}`);
  });

  it("a completion does not depend on which other prompts share the batch", () => {
    const params = { temperature: 0.8, maxNewTokens: 12, n: 2, seed: 9 };
    const together = generate(model, prompts, params);
    const oneByOne = generate(model, prompts, { ...params, maxBatchSize: 1 });
    assert.deepEqual(
      oneByOne.map((c) => c.tokens),
      together.map((c) => c.tokens),
    );
  });
});
