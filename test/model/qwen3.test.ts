// Qwen3Model behaviour: KV-cache decoding equals the full forward, padding and masks do not leak,
// micro-batches with a global token count reproduce the full batch's gradient, bad input is named.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import { AdamW, countLossTokens } from "../../src/engine/optim.js";
import { parseQwen3Config, qwen3ConfigToJson, tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { KlearError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";
import { randomTokens, smallQwen3 } from "./qwen3-helpers.js";

const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";

const small = () => smallQwen3();

function logSoftmaxAt(logits: Float32Array, offset: number, V: number, target: number): number {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, logits[offset + j]);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(logits[offset + j] - m);
  return logits[offset + target] - m - Math.log(s);
}

test(
  "incremental decode (mixed prompt lengths, then one token at a time) equals the full forward",
  { skip },
  () => {
    const cfg = small();
    const model = Qwen3Model.create(cfg, { seed: 3 });
    const rng = new Rng(1);
    const B = 3;
    const T = 10;
    const V = cfg.vocabSize;
    const tokens = randomTokens(rng, B * T, V);
    // Full forward: logp of every next token.
    const targets = new Int32Array(B * T).fill(-1);
    for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) targets[b * T + t] = tokens[b * T + t + 1];
    const { logp } = model.logprobs({ tokens, targets, batchSize: B, seqLen: T });

    const cache = model.createKVCache(B, T);
    const prompt = [4, 1, 6];
    const chunk = Math.max(...prompt);
    const first = new Int32Array(B * chunk);
    for (let b = 0; b < B; b++) for (let t = 0; t < prompt[b]; t++) first[b * chunk + t] = tokens[b * T + t];
    let logits = model.forwardTokens(cache, first, Int32Array.from(prompt));
    assert.deepEqual([...cache.lengths], prompt);
    let worst = 0;
    for (;;) {
      const counts = new Int32Array(B);
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        const pos = cache.lengths[b];
        if (pos < T) {
          // Logits after a prefix of length pos predict token pos, whose full-forward logp sits at pos - 1.
          const got = logSoftmaxAt(logits, b * V, V, tokens[b * T + pos]);
          worst = Math.max(worst, Math.abs(got - logp[b * T + pos - 1]));
          counts[b] = 1;
          next[b] = tokens[b * T + pos];
        }
      }
      if (counts.every((c) => c === 0)) break;
      logits = model.forwardTokens(cache, next, counts);
      // A sequence given no token this step gets a zero logits row.
      for (let b = 0; b < B; b++)
        if (counts[b] === 0) assert.ok(logits.subarray(b * V, (b + 1) * V).every((x) => x === 0));
    }
    assert.ok(worst < 1e-4, `decode vs full forward: max |Δlogp| = ${worst}`);
    assert.throws(
      () => model.forwardTokens(cache, new Int32Array(B)),
      (e: KlearError) => e.code === "KV_CACHE_FULL",
    );
    cache.reset();
    assert.equal(cache.lengths[0], 0);
    assert.throws(
      () => model.createKVCache(1 << 16, 1 << 20),
      (e: KlearError) => e.code === "KV_CACHE_TOO_LARGE" && /GiB/.test(e.message),
    );
  },
);

test("padding: a sequence's logp does not depend on the padding after it or on other rows", { skip }, () => {
  const cfg = small();
  const model = Qwen3Model.create(cfg, { seed: 4 });
  const rng = new Rng(2);
  const T = 8;
  const a = randomTokens(rng, T, cfg.vocabSize);
  const tg = randomTokens(rng, T, cfg.vocabSize);
  const alone = model.logprobs({
    tokens: a,
    targets: tg,
    batchSize: 1,
    seqLen: T,
    lengths: Int32Array.from([5]),
  });
  const padded = a.slice();
  padded.fill(7, 5);
  const other = randomTokens(rng, T, cfg.vocabSize);
  const tokens = new Int32Array(2 * T);
  tokens.set(other);
  tokens.set(padded, T);
  const targets = new Int32Array(2 * T);
  targets.set(tg);
  targets.set(tg, T);
  const both = model.logprobs({ tokens, targets, batchSize: 2, seqLen: T, lengths: Int32Array.from([8, 5]) });
  for (let t = 0; t < 5; t++) assert.ok(Math.abs(both.logp[T + t] - alone.logp[t]) < 1e-5);
  for (let t = 5; t < T; t++) assert.equal(both.logp[T + t], 0);
});

test("packing: documents packed in one row score as they do alone, gradients included", { skip }, () => {
  const cfg = small();
  const rng = new Rng(21);
  const lens = [5, 3, 6];
  const T = 14;
  const docs = lens.map((n) => randomTokens(rng, n, cfg.vocabSize));
  const docTargets = lens.map((n) => randomTokens(rng, n, cfg.vocabSize));
  const packedModel = Qwen3Model.create(cfg, { seed: 22 });
  const tokens = new Int32Array(T);
  const targets = new Int32Array(T).fill(-1);
  const segments = new Int32Array(T).fill(99);
  let at = 0;
  docs.forEach((d, i) => {
    tokens.set(d, at);
    targets.set(docTargets[i], at);
    segments.fill(i, at, at + d.length);
    at += d.length;
  });
  const packed = packedModel.logprobs({
    tokens,
    targets,
    batchSize: 1,
    seqLen: T,
    lengths: Int32Array.from([at]),
    segments,
  });
  packedModel.zeroGrad();
  packedModel.backward(new Float32Array(T).fill(1));
  const aloneModel = Qwen3Model.create(cfg, { seed: 22 });
  aloneModel.zeroGrad();
  at = 0;
  docs.forEach((d, i) => {
    const alone = aloneModel.logprobs({ tokens: d, targets: docTargets[i], batchSize: 1, seqLen: d.length });
    for (let t = 0; t < d.length; t++)
      assert.ok(Math.abs(alone.logp[t] - packed.logp[at + t]) < 1e-5, `doc ${i} pos ${t}`);
    aloneModel.backward(new Float32Array(d.length).fill(1));
    at += d.length;
  });
  for (const [name, p] of packedModel.parameters()) {
    const q = aloneModel.parameters().get(name);
    assert.ok(q);
    let md = 0;
    let mr = 1e-12;
    for (let i = 0; i < p.grad.length; i++) {
      md = Math.max(md, Math.abs(p.grad[i] - q.grad[i]));
      mr = Math.max(mr, Math.abs(q.grad[i]));
    }
    assert.ok(md / mr < 1e-4, `${name}: packed gradient differs (${md / mr})`);
  }
});

test(
  "gradient accumulation: micro-batches with the mini-batch token count reproduce the full gradient",
  { skip },
  () => {
    const cfg = small();
    const rng = new Rng(5);
    const B = 4;
    const T = 6;
    const tokens = randomTokens(rng, B * T, cfg.vocabSize);
    const targets = randomTokens(rng, B * T, cfg.vocabSize);
    for (let i = 0; i < targets.length; i += 5) targets[i] = -1; // a loss mask
    const lengths = Int32Array.from([6, 3, 5, 6]);
    const full = Qwen3Model.create(cfg, { seed: 9 });
    full.zeroGrad();
    const whole = full.lossAndBackward({ tokens, targets, batchSize: B, seqLen: T, lengths });

    const split = Qwen3Model.create(cfg, { seed: 9 });
    split.zeroGrad();
    const total = countLossTokens(targets, B, T, lengths);
    assert.equal(total, whole.tokens);
    let loss = 0;
    for (const [start, n] of [
      [0, 1],
      [1, 3],
    ]) {
      const r = split.lossAndBackward(
        {
          tokens: tokens.slice(start * T, (start + n) * T),
          targets: targets.slice(start * T, (start + n) * T),
          batchSize: n,
          seqLen: T,
          lengths: lengths.slice(start, start + n),
        },
        { tokenCount: total },
      );
      loss += r.loss;
    }
    assert.ok(Math.abs(loss - whole.loss) < 1e-5, `loss ${loss} vs ${whole.loss}`);
    for (const [name, p] of full.parameters()) {
      const q = split.parameters().get(name);
      assert.ok(q);
      let md = 0;
      let mr = 1e-12;
      for (let i = 0; i < p.grad.length; i++) {
        md = Math.max(md, Math.abs(p.grad[i] - q.grad[i]));
        mr = Math.max(mr, Math.abs(p.grad[i]));
      }
      assert.ok(md / mr < 1e-4, `${name}: micro-batch gradient differs (${md / mr})`);
    }
  },
);

test("chunked logits (past the memory limit) give the same logp, entropy and gradients", { skip }, () => {
  const cfg = small();
  const rng = new Rng(12);
  const B = 3;
  const T = 7;
  const tokens = randomTokens(rng, B * T, cfg.vocabSize);
  const targets = randomTokens(rng, B * T, cfg.vocabSize);
  targets[4] = -1;
  const lengths = Int32Array.from([7, 2, 5]);
  const dEnt = new Float32Array(B * T).map(() => rng.normal());
  const dLogp = new Float32Array(B * T).map(() => rng.normal());
  const run = (chunked: boolean) => {
    const model = Qwen3Model.create(cfg, { seed: 13 });
    if (chunked) model.logitsMemory = { keepFloats: 10, chunkFloats: 2 * cfg.vocabSize };
    const out = model.logprobs({ tokens, targets, batchSize: B, seqLen: T, lengths }, { entropy: true });
    model.zeroGrad();
    model.backward(dLogp, dEnt);
    return { out, grads: [...model.parameters()].map(([, p]) => p.grad.slice()) };
  };
  const whole = run(false);
  const chunked = run(true);
  // The lm_head product runs at another row count per chunk, which may round the last bit differently.
  const within = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++)
      assert.ok(Math.abs(a[i] - b[i]) <= 1e-5, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  };
  within(chunked.out.logp, whole.out.logp, "logp");
  within(chunked.out.entropy ?? [], whole.out.entropy ?? [], "entropy");
  whole.grads.forEach((g, i) => {
    let md = 0;
    let mr = 1e-12;
    for (let j = 0; j < g.length; j++) {
      md = Math.max(md, Math.abs(g[j] - chunked.grads[i][j]));
      mr = Math.max(mr, Math.abs(g[j]));
    }
    assert.ok(md / mr < 1e-5, `gradient ${i} differs by ${md / mr}`);
  });
});

test("training reduces the loss and is reproducible from a seed", { skip }, () => {
  const cfg = small();
  const run = () => {
    const model = Qwen3Model.create(cfg, { seed: 11 });
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
    const T = 12;
    const tokens = new Int32Array(2 * T);
    for (let i = 0; i < tokens.length; i++) tokens[i] = (i * 3) % cfg.vocabSize;
    const targets = new Int32Array(2 * T).fill(-1);
    for (let b = 0; b < 2; b++) for (let t = 0; t < T - 1; t++) targets[b * T + t] = tokens[b * T + t + 1];
    const losses: number[] = [];
    for (let s = 0; s < 15; s++) {
      model.zeroGrad();
      losses.push(model.lossAndBackward({ tokens, targets, batchSize: 2, seqLen: T }).loss);
      opt.step();
    }
    return losses;
  };
  const a = run();
  const b = run();
  assert.deepEqual(a, b);
  assert.ok(a[14] < a[0] * 0.5, `loss ${a[0]} -> ${a[14]}`);
});

test("fromTensors names a missing tensor and a shape mismatch; bad tokens are named", { skip }, () => {
  const cfg = small();
  const model = Qwen3Model.create(cfg, { seed: 1 });
  const tensors = new Map([...model.parameters()].map(([n, p]) => [n, p.data]));
  const again = Qwen3Model.fromTensors(cfg, tensors, "x.safetensors");
  assert.equal(again.parameterCount(), model.parameterCount());
  const missing = new Map(tensors);
  missing.delete("model.layers.1.mlp.up_proj.weight");
  assert.throws(
    () => Qwen3Model.fromTensors(cfg, missing, "ckpt/model.safetensors"),
    (e: KlearError) => /ckpt\/model\.safetensors/.test(e.message) && /mlp\.up_proj/.test(e.message),
  );
  const wrong = new Map(tensors);
  wrong.set("model.layers.0.self_attn.k_proj.weight", new Float32Array(5));
  assert.throws(
    () => Qwen3Model.fromTensors(cfg, wrong, "ckpt/model.safetensors"),
    (e: KlearError) =>
      e.code === "MODEL_TENSOR_SHAPE" && /k_proj/.test(e.message) && /\[16, 32\]/.test(e.message),
  );
  assert.throws(
    () =>
      model.logprobs({
        tokens: Int32Array.from([1, 99]),
        targets: Int32Array.from([1, 1]),
        batchSize: 1,
        seqLen: 2,
      }),
    (e: KlearError) => e.code === "MODEL_TOKEN_RANGE" && /vocab/.test(e.message),
  );
  assert.throws(() => model.backward(new Float32Array(3)), KlearError);
});

test("config: unsupported architectures are named with the supported ones; round trip", () => {
  assert.throws(
    () => parseQwen3Config({ architectures: ["LlamaForCausalLM"], model_type: "llama" }, "m/config.json"),
    (e: KlearError) => /m\/config\.json/.test(e.message) && /Qwen3ForCausalLM/.test(e.fix),
  );
  assert.throws(
    () =>
      parseQwen3Config(
        { architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", hidden_size: 8 },
        "c.json",
      ),
    (e: KlearError) => /c\.json/.test(e.message),
  );
  const cfg = tinyQwen3Config({
    ropeScaling: {
      type: "yarn",
      factor: 4,
      originalMaxPositionEmbeddings: 512,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 1.1386,
      truncate: true,
    },
  });
  const back = parseQwen3Config(qwen3ConfigToJson(cfg), "roundtrip");
  assert.deepEqual({ ...back, raw: {} }, { ...cfg, raw: {} });
  // Qwen3-0.6B's config.json, as released.
  const q06 = parseQwen3Config(
    {
      architectures: ["Qwen3ForCausalLM"],
      model_type: "qwen3",
      attention_bias: false,
      head_dim: 128,
      hidden_act: "silu",
      hidden_size: 1024,
      intermediate_size: 3072,
      max_position_embeddings: 40960,
      num_attention_heads: 16,
      num_hidden_layers: 28,
      num_key_value_heads: 8,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      vocab_size: 151936,
      use_sliding_window: false,
    },
    "Qwen3-0.6B/config.json",
  );
  assert.equal(q06.headDim, 128);
  assert.equal(q06.tieWordEmbeddings, true);
  assert.equal(q06.ropeScaling.type, "default");
});
