// 1000 training steps of a tiny Qwen3 must not grow memory: buffers are allocated once and reused.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import { AdamW, clipGradNorm } from "../../src/engine/optim.js";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";

const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";

test("1000 training steps keep RSS stable", { skip, timeout: 300_000 }, () => {
  const cfg = tinyQwen3Config({
    vocabSize: 64,
    hiddenSize: 64,
    intermediateSize: 128,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
  });
  const model = Qwen3Model.create(cfg, { seed: 1 });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const B = 4;
  const T = 32;
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let i = 0; i < tokens.length; i++) tokens[i] = (i * 5) % cfg.vocabSize;
  for (let i = 0; i < tokens.length; i++) targets[i] = (i + 1) % T === 0 ? -1 : tokens[i + 1];
  const cache = model.createKVCache(B, 40);
  const rss: number[] = [];
  for (let step = 0; step < 1000; step++) {
    model.zeroGrad();
    model.lossAndBackward({ tokens, targets, batchSize: B, seqLen: T });
    clipGradNorm(model.parameters(), 1);
    opt.step();
    if (step % 50 === 0) {
      cache.reset();
      model.forwardTokens(cache, tokens.subarray(0, B * 8));
      for (let i = 0; i < 8; i++) model.forwardTokens(cache, tokens.subarray(0, B));
    }
    if (step === 100 || step === 999) {
      global.gc?.();
      rss.push(process.memoryUsage().rss);
    }
  }
  const growthMiB = (rss[1] - rss[0]) / 2 ** 20;
  console.log(
    `  RSS after step 100: ${(rss[0] / 2 ** 20).toFixed(1)} MiB, after 1000: ${(rss[1] / 2 ** 20).toFixed(1)} MiB`,
  );
  assert.ok(growthMiB < 20, `RSS grew by ${growthMiB.toFixed(1)} MiB over 900 steps`);
});
