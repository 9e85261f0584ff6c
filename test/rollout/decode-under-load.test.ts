// The RL trainer asserts that the sampler's log-probs (KV-cache decode) equal its own recomputation (one
// full forward) and that a seeded run is bit-identical. Both must hold on a busy machine, where the native
// pool's workers are descheduled mid-part and the caller takes their share over, and while a second JS
// thread calls the same kernels (the pool then runs that thread's loops inline).
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { nativeAvailable } from "../../src/engine/native.js";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { generate } from "../../src/rollout/generate.js";
import type { Completion } from "../../src/rollout/types.js";

const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";

// Large enough that gemm, attention and decode attention all split across the pool's threads.
const config = tinyQwen3Config({
  vocabSize: 200,
  hiddenSize: 128,
  intermediateSize: 256,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 32,
});

function prompts(count: number): number[][] {
  const out: number[][] = [];
  let s = 7;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  for (let p = 0; p < count; p++) {
    const len = 2 + Math.floor(next() * 20);
    out.push(Array.from({ length: len }, () => 1 + Math.floor(next() * (config.vocabSize - 1))));
  }
  return out;
}

/** The trainer's recomputation: prompt + completion right-padded into one batch, one full forward. */
function recomputed(model: Qwen3Model, ps: number[][], completions: Completion[]): number[][] {
  const seqs = completions.map((c) => [...ps[c.promptIndex], ...c.tokens]);
  const T = Math.max(...seqs.map((s) => s.length - 1));
  const B = seqs.length;
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  const lengths = new Int32Array(B);
  seqs.forEach((s, b) => {
    lengths[b] = s.length - 1;
    const P = ps[completions[b].promptIndex].length;
    for (let t = 0; t < s.length - 1; t++) {
      tokens[b * T + t] = s[t];
      if (t >= P - 1) targets[b * T + t] = s[t + 1];
    }
  });
  const { logp } = model.logprobs({ tokens, targets, batchSize: B, seqLen: T, lengths }, { entropy: true });
  return completions.map((c, b) => {
    const start = b * T + ps[c.promptIndex].length - 1;
    return c.tokens.map((_, j) => logp[start + j]);
  });
}

/** A second JS thread that spins, or hammers the native gemm and attention (same addon, same pool). */
function startBusyThread(kind: "spin" | "native"): Worker {
  const addon =
    process.env.KLEAR_NATIVE_ADDON ?? join(process.cwd(), "build", "Release", "klear_native.node");
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    let stop = false;
    parentPort.on("message", () => { stop = true; });
    if (workerData.kind === "spin") {
      const loop = () => { const end = Date.now() + 20; while (Date.now() < end) {} if (!stop) setImmediate(loop); else process.exit(0); };
      loop();
    } else {
      const n = require(workerData.addon);
      const M = 96, K = 128, N = 160;
      const a = new Float32Array(M * K).fill(0.5), b = new Float32Array(N * K).fill(0.25), c = new Float32Array(M * N);
      const B = 4, T = 24, H = 4, Hkv = 2, hd = 32;
      const q = new Float32Array(B * T * H * hd).fill(0.1), k = new Float32Array(B * T * Hkv * hd).fill(0.2);
      const v = new Float32Array(B * T * Hkv * hd).fill(0.3), o = new Float32Array(B * T * H * hd), l = new Float32Array(B * H * T);
      const loop = () => {
        for (let i = 0; i < 20; i++) {
          n.gemm(false, true, M, N, K, 1, a, K, b, K, 0, c, N);
          n.attention(q, k, v, o, l, B, T, H, Hkv, hd, null, 0.2);
        }
        if (!stop) setImmediate(loop); else process.exit(0);
      };
      loop();
    }`;
  const w = new Worker(code, { eval: true, workerData: { kind, addon } });
  w.on("error", (e) => busyErrors.push(e));
  return w;
}

const busyErrors: Error[] = [];

async function stopBusyThread(w: Worker): Promise<void> {
  const exited = new Promise<void>((res) => w.once("exit", () => res()));
  w.postMessage("stop");
  await exited;
}

test(
  "decode log-probs equal the full recomputation, bit-identically, while other threads compete",
  { skip },
  async () => {
    const model = Qwen3Model.create({ ...config, initializerRange: 0.2 }, { seed: 3 });
    const ps = prompts(24);
    const params = { temperature: 1, maxNewTokens: 24, n: 4, seed: 11, stopTokenIds: [0] };
    const quiet = generate(model, ps, params);
    const quietRecomputed = recomputed(model, ps, quiet);

    for (const kind of ["spin", "native", "native"] as const) {
      const busy = startBusyThread(kind);
      try {
        for (let round = 0; round < 2; round++) {
          const loaded = generate(model, ps, params);
          const loadedRecomputed = recomputed(model, ps, loaded);
          loaded.forEach((c, i) => {
            assert.deepEqual(
              c.tokens,
              quiet[i].tokens,
              `${kind}: completion ${i} differs from the quiet run`,
            );
            assert.deepEqual(
              c.modelLogprobs,
              quiet[i].modelLogprobs,
              `${kind}: sampler log-probs of ${i} differ`,
            );
            assert.deepEqual(
              loadedRecomputed[i],
              quietRecomputed[i],
              `${kind}: recomputed log-probs of ${i} differ`,
            );
            c.modelLogprobs.forEach((lp, j) => {
              const d = Math.abs(lp - loadedRecomputed[i][j]);
              assert.ok(d < 1e-3, `${kind}: completion ${i} token ${j}: sampler and trainer differ by ${d}`);
            });
          });
        }
      } finally {
        await stopBusyThread(busy);
      }
      assert.deepEqual(busyErrors, [], "the competing thread failed");
    }
  },
);
