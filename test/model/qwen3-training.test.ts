// Qwen3Model training paths: tempered log-probs (logits / T) and their gradient, the fused chunked
// output layer of lossAndBackward, per-position loss weights and per-layer activation recomputation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ConfigError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";
import { randomTokens, smallQwen3 } from "./qwen3-helpers.js";

const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";

const small = (tie = false) => smallQwen3(tie);

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

function packedBatch(rng: Rng, V: number) {
  const B = 2;
  const T = 12;
  const tokens = randomTokens(rng, B * T, V);
  const targets = randomTokens(rng, B * T, V);
  for (let i = 0; i < targets.length; i += 4) targets[i] = -1;
  const segments = new Int32Array(B * T).map((_, i) => (i % T < 5 ? 0 : i % T < 9 ? 1 : 2));
  return { tokens, targets, batchSize: B, seqLen: T, segments, lengths: Int32Array.from([12, 10]) };
}

test(
  "lossAndBackward chunked over tokens (fused head) equals the whole-logits loss and gradient",
  { skip },
  () => {
    const cfg = small(true);
    const batch = packedBatch(new Rng(31), cfg.vocabSize);
    const run = (keepFloats: number, chunkFloats: number) => {
      const m = Qwen3Model.create(cfg, { seed: 8 });
      m.logitsMemory = { keepFloats, chunkFloats };
      m.zeroGrad();
      const r = m.lossAndBackward(batch, { temperature: 0.8 });
      return { r, g: grads(m) };
    };
    const whole = run(1 << 20, 1 << 20);
    for (const rows of [1, 3, 7]) {
      const chunked = run(10, rows * cfg.vocabSize);
      assert.ok(Math.abs(chunked.r.loss - whole.r.loss) < 1e-6, `loss with ${rows}-row chunks`);
      assert.equal(chunked.r.tokens, whole.r.tokens);
      for (const [name, g] of whole.g) {
        const d = maxRelDiff(chunked.g.get(name) ?? [], g);
        assert.ok(d < 1e-5, `${name} with ${rows}-row chunks differs by ${d}`);
      }
    }
    // The fused loss agrees with logprobs + backward of the same objective.
    const m = Qwen3Model.create(cfg, { seed: 8 });
    const { logp } = m.logprobs(batch, { temperature: 0.8 });
    const dLogp = new Float32Array(logp.length);
    let sum = 0;
    for (let i = 0; i < logp.length; i++) {
      if (logp[i] !== 0) {
        dLogp[i] = -1 / whole.r.tokens;
        sum -= logp[i];
      }
    }
    m.zeroGrad();
    m.backward(dLogp);
    assert.ok(Math.abs(sum / whole.r.tokens - whole.r.loss) < 1e-6);
    for (const [name, g] of grads(m)) assert.ok(maxRelDiff(g, whole.g.get(name) ?? []) < 1e-5, name);
  },
);

test("loss weights scale each token's NLL and its gradient", { skip }, () => {
  const cfg = small();
  const batch = packedBatch(new Rng(32), cfg.vocabSize);
  const N = batch.batchSize * batch.seqLen;
  const weights = new Float32Array(N).map((_, i) => (i % 3) * 0.5);
  const a = Qwen3Model.create(cfg, { seed: 9 });
  a.zeroGrad();
  const ra = a.lossAndBackward(batch, { weights, tokenCount: 10 });
  const b = Qwen3Model.create(cfg, { seed: 9 });
  const { logp } = b.logprobs(batch);
  let sum = 0;
  const dLogp = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    sum -= weights[i] * logp[i];
    dLogp[i] = -weights[i] / 10;
  }
  b.zeroGrad();
  b.backward(dLogp);
  assert.ok(Math.abs(ra.loss - sum / 10) < 1e-6, `${ra.loss} vs ${sum / 10}`);
  for (const [name, g] of grads(b)) assert.ok(maxRelDiff(grads(a).get(name) ?? [], g) < 1e-5, name);
  assert.throws(() => a.lossAndBackward(batch, { weights: new Float32Array(3) }), ConfigError);
});

test("recompute: per-layer activation recomputation gives bit-identical logp and gradients", { skip }, () => {
  const cfg = small(true);
  const batch = packedBatch(new Rng(33), cfg.vocabSize);
  const N = batch.batchSize * batch.seqLen;
  const dLogp = new Float32Array(N).map((_, i) => Math.sin(i));
  const dEnt = new Float32Array(N).map((_, i) => Math.cos(i));
  const run = (recompute: boolean) => {
    const m = Qwen3Model.create(cfg, { seed: 10 });
    const out = m.logprobs(batch, { entropy: true, recompute });
    m.zeroGrad();
    m.backward(dLogp, dEnt);
    const g1 = grads(m);
    m.zeroGrad();
    const loss = m.lossAndBackward(batch, { recompute });
    return { out, g1, loss, g2: grads(m) };
  };
  const kept = run(false);
  const recomputed = run(true);
  assert.deepEqual([...recomputed.out.logp], [...kept.out.logp]);
  assert.deepEqual([...(recomputed.out.entropy ?? [])], [...(kept.out.entropy ?? [])]);
  assert.deepEqual(recomputed.loss, kept.loss);
  for (const [name, g] of kept.g1) assert.deepEqual([...(recomputed.g1.get(name) ?? [])], [...g], name);
  for (const [name, g] of kept.g2) assert.deepEqual([...(recomputed.g2.get(name) ?? [])], [...g], name);
});
