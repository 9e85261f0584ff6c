// Qwen3Model training paths: tempered log-probs (logits / T) and their gradient, the fused chunked
// output layer of lossAndBackward, per-position loss weights and per-layer activation recomputation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ConfigError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";

const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";

const small = (tie = false) =>
  tinyQwen3Config({
    vocabSize: 40,
    hiddenSize: 32,
    intermediateSize: 48,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 8,
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: tie,
  });

function randomTokens(rng: Rng, n: number, V: number): Int32Array {
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) t[i] = rng.int(V);
  return t;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let md = 0;
  let mr = 1e-12;
  for (let i = 0; i < a.length; i++) {
    md = Math.max(md, Math.abs(a[i] - b[i]));
    mr = Math.max(mr, Math.abs(b[i]));
  }
  return md / mr;
}

function grads(model: Qwen3Model): Map<string, Float32Array> {
  return new Map([...model.parameters()].map(([n, p]) => [n, p.grad.slice()]));
}

test("temperature: logp/entropy/gradients equal a model whose lm_head is divided by T", { skip }, () => {
  const cfg = small(false);
  const rng = new Rng(21);
  const B = 2;
  const T = 6;
  const tokens = randomTokens(rng, B * T, cfg.vocabSize);
  const targets = randomTokens(rng, B * T, cfg.vocabSize);
  targets[3] = -1;
  const dLogp = new Float32Array(B * T).map(() => rng.normal());
  const dEnt = new Float32Array(B * T).map(() => rng.normal());
  const temperature = 0.6;
  const batch = { tokens, targets, batchSize: B, seqLen: T };

  const tempered = Qwen3Model.create(cfg, { seed: 4 });
  const a = tempered.logprobs(batch, { entropy: true, temperature });
  tempered.zeroGrad();
  tempered.backward(dLogp, dEnt);

  const scaled = Qwen3Model.create(cfg, { seed: 4 });
  const head = scaled.parameters().get("lm_head.weight");
  assert.ok(head);
  for (let i = 0; i < head.data.length; i++) head.data[i] /= temperature;
  const b = scaled.logprobs(batch, { entropy: true });
  scaled.zeroGrad();
  scaled.backward(dLogp, dEnt);

  assert.ok(maxRelDiff(a.logp, b.logp) < 1e-5, "tempered logp");
  assert.ok(maxRelDiff(a.entropy ?? [], b.entropy ?? []) < 1e-5, "tempered entropy");
  const ga = grads(tempered);
  for (const [name, g] of grads(scaled)) {
    const expected = name === "lm_head.weight" ? g.map((x) => x / temperature) : g;
    const got = ga.get(name) ?? new Float32Array();
    assert.ok(maxRelDiff(got, expected) < 1e-4, `${name}: gradient differs (${maxRelDiff(got, expected)})`);
  }
});

test(
  "temperature: the gradient of Σ w·logp matches central finite differences (tied embeddings)",
  { skip },
  () => {
    const cfg = small(true);
    const rng = new Rng(22);
    const B = 1;
    const T = 5;
    const tokens = randomTokens(rng, B * T, cfg.vocabSize);
    const targets = randomTokens(rng, B * T, cfg.vocabSize);
    const w = new Float32Array(B * T).map(() => rng.normal());
    const temperature = 0.7;
    const model = Qwen3Model.create(cfg, { seed: 5 });
    const batch = { tokens, targets, batchSize: B, seqLen: T };
    const objective = () => {
      const { logp } = model.logprobs(batch, { temperature });
      let s = 0;
      for (let i = 0; i < logp.length; i++) s += w[i] * logp[i];
      return s;
    };
    objective();
    model.zeroGrad();
    model.backward(w);
    const embed = model.parameters().get("model.embed_tokens.weight");
    assert.ok(embed);
    const analytic = embed.grad.slice();
    let checked = 0;
    for (let k = 0; k < 12; k++) {
      const i = (tokens[k % T] * cfg.hiddenSize + ((k * 7) % cfg.hiddenSize)) % embed.data.length;
      const x = embed.data[i];
      const h = 2e-3;
      embed.data[i] = x + h;
      const up = objective();
      embed.data[i] = x - h;
      const down = objective();
      embed.data[i] = x;
      const numeric = (up - down) / (2 * h);
      assert.ok(
        Math.abs(numeric - analytic[i]) <= 2e-3 + 2e-2 * Math.abs(numeric),
        `embed[${i}]: analytic ${analytic[i]} vs numeric ${numeric}`,
      );
      checked++;
    }
    assert.equal(checked, 12);
  },
);

test("temperature: a non-positive or non-finite temperature is a ConfigError", { skip }, () => {
  const model = Qwen3Model.create(small(), { seed: 1 });
  const batch = { tokens: new Int32Array(3), targets: new Int32Array(3), batchSize: 1, seqLen: 3 };
  for (const t of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => model.logprobs(batch, { temperature: t }), ConfigError);
  }
});
