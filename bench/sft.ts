/**
 * SFT benchmark: training tokens/s and peak RSS of one packed 2,048-token sequence per step (several
 * documents, no attention across them, RoPE restarting per document, a prompt-masked loss), forward +
 * backward + AdamW in float32, for klear and for PyTorch CPU (HF transformers' Qwen3ForCausalLM + torch
 * AdamW, bench/peers/sft_torch.py) on the same batch, in the same run and environment. Two shapes: the
 * demo model, and Qwen3-0.6B's width (hidden 1024, 16 q / 8 kv heads of 128, FFN 3072, vocab 151,936,
 * tied) with a few layers. Each side runs in its own fresh process so its peak RSS is its own; the peer
 * runs at each thread count in KLEAR_BENCH_SFT_THREADS and the best median counts.
 *
 *   npm run bench:sft   (KLEAR_BENCH_RUNS=3, KLEAR_BENCH_SECONDS=2, KLEAR_BENCH_WARMUP=1, KLEAR_BENCH_SFT_LAYERS=2,
 *                        KLEAR_BENCH_SFT_SHAPES=demo,0.6b-width, KLEAR_BENCH_SFT_THREADS=1,2)
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nativeInfo } from "../src/engine/native.js";
import { AdamW } from "../src/engine/optim.js";
import { type Qwen3Config, tinyQwen3Config } from "../src/model/config.js";
import { Qwen3Model } from "../src/model/qwen3.js";
import { Rng } from "../src/util/rng.js";
import { loadLine, median, runTorchPeer } from "./torch-peer.js";

const RUNS = Number(process.env.KLEAR_BENCH_RUNS ?? 3);
const MIN_SECONDS = Number(process.env.KLEAR_BENCH_SECONDS ?? 2);
const SEQ = 2048;
const LAYERS_06B = Number(process.env.KLEAR_BENCH_SFT_LAYERS ?? 2);
// Untimed steps first (page-faulting the buffers in); 0 is fine where one step takes many seconds.
const WARMUP = Number(process.env.KLEAR_BENCH_WARMUP ?? 1);

const SHAPES: Record<string, () => Qwen3Config> = {
  // The demo's default model (src/tasks/demo-config.ts) over its byte tokenizer's 257 ids.
  demo: () =>
    tinyQwen3Config({
      vocabSize: 257,
      hiddenSize: 96,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      intermediateSize: 256,
      maxPositionEmbeddings: SEQ,
    }),
  "0.6b-width": () =>
    tinyQwen3Config({
      vocabSize: 151_936,
      hiddenSize: 1024,
      numHiddenLayers: LAYERS_06B,
      numAttentionHeads: 16,
      numKeyValueHeads: 8,
      headDim: 128,
      intermediateSize: 3072,
      tieWordEmbeddings: true,
      maxPositionEmbeddings: SEQ,
    }),
};

interface PackedBatch {
  tokens: Int32Array;
  targets: Int32Array;
  positions: Int32Array;
  segments: Int32Array;
}

/**
 * Documents of 64–640 tokens packed to exactly SEQ; each document's first 30% is its "prompt" (no loss),
 * and its last token has no target (the next token belongs to another document).
 */
function packedBatch(vocab: number): PackedBatch {
  const rng = new Rng(11);
  const tokens = new Int32Array(SEQ).map(() => rng.int(vocab));
  const targets = new Int32Array(SEQ).fill(-1);
  const positions = new Int32Array(SEQ);
  const segments = new Int32Array(SEQ);
  let doc = 0;
  for (let start = 0; start < SEQ; doc++) {
    const len = Math.min(64 + rng.int(577), SEQ - start);
    const prompt = Math.floor(len * 0.3);
    for (let t = 0; t < len; t++) {
      positions[start + t] = t;
      segments[start + t] = doc;
      if (t >= prompt && t + 1 < len) targets[start + t] = tokens[start + t + 1];
    }
    start += len;
  }
  return { tokens, targets, positions, segments };
}

interface SideResult {
  rates: number[];
  peakRssMiB: number;
  threads?: number;
  torch?: string;
  transformers?: string;
}

/** Child mode: train klear on the shape's batch and print rates and this process's peak RSS. */
function klearChild(shape: string): void {
  const cfg = SHAPES[shape]();
  const batch = packedBatch(cfg.vocabSize);
  const model = Qwen3Model.create(cfg, { seed: 0 });
  const opt = new AdamW(model.parameters(), { lr: 1e-5, weightDecay: 0.01 });
  const input = {
    tokens: batch.tokens,
    targets: batch.targets,
    batchSize: 1,
    seqLen: SEQ,
    segments: batch.segments,
  };
  const step = () => {
    model.zeroGrad();
    model.lossAndBackward(input);
    opt.step();
  };
  for (let w = 0; w < WARMUP; w++) step();
  const rates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    let steps = 0;
    const t0 = performance.now();
    let dt = 0;
    do {
      step();
      steps++;
      dt = (performance.now() - t0) / 1000;
    } while (dt < MIN_SECONDS);
    rates.push((SEQ * steps) / dt);
  }
  const result: SideResult = { rates, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  console.log(JSON.stringify(result));
}

function runKlear(shape: string): SideResult {
  const r = spawnSync(process.execPath, ["--import", "tsx", import.meta.filename, "--klear", shape], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0)
    throw new Error(`klear child for ${shape} failed (status ${r.status}, signal ${r.signal})`);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as SideResult;
}

function runPeer(shape: string, threads: number): SideResult {
  const cfg = SHAPES[shape]();
  const batch = packedBatch(cfg.vocabSize);
  const dir = join(import.meta.dirname, "..", ".cache", "bench-sft");
  mkdirSync(dir, { recursive: true });
  const batchFile = join(dir, `batch-${shape}.bin`);
  const raw = new Int32Array(3 * SEQ);
  raw.set(batch.tokens, 0);
  raw.set(batch.targets, SEQ);
  raw.set(batch.positions, 2 * SEQ);
  writeFileSync(batchFile, raw);
  return runTorchPeer<SideResult>("sft_torch.py", {
    batchFile,
    seqLen: SEQ,
    threads,
    runs: RUNS,
    warmup: WARMUP,
    minSeconds: MIN_SECONDS,
    vocab: cfg.vocabSize,
    hidden: cfg.hiddenSize,
    ffn: cfg.intermediateSize,
    layers: cfg.numHiddenLayers,
    heads: cfg.numAttentionHeads,
    kvHeads: cfg.numKeyValueHeads,
    headDim: cfg.headDim,
    tie: cfg.tieWordEmbeddings,
  });
}

function main(): void {
  const info = nativeInfo();
  const version = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")).version;
  console.log(
    `sft bench (klear ${version}): OpenBLAS core ${info.blasCore}, ${info.blasThreads} BLAS / ${info.kernelThreads} kernel threads, gemm ${info.gemmKernel}; packed ${SEQ}-token sequences, ${RUNS} runs of >= ${MIN_SECONDS} s`,
  );
  const shapes = (process.env.KLEAR_BENCH_SFT_SHAPES ?? "demo,0.6b-width")
    .split(",")
    .filter((s) => s in SHAPES);
  const threadList = (process.env.KLEAR_BENCH_SFT_THREADS ?? "1,2").split(",").map(Number);
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(", ");
  for (const shape of shapes) {
    console.log(`[${shape}] klear, ${loadLine()}`);
    const k = runKlear(shape);
    console.log(`[${shape}] klear tokens/s: ${fmt(k.rates)}; peak RSS ${k.peakRssMiB.toFixed(0)} MiB`);
    let best: SideResult | null = null;
    for (const threads of threadList) {
      console.log(`[${shape}] torch at ${threads} thread(s), ${loadLine()}`);
      const p = runPeer(shape, threads);
      console.log(
        `[${shape}] torch ${p.torch} / transformers ${p.transformers}, ${threads} thread(s) tokens/s: ${fmt(p.rates)}; peak RSS ${p.peakRssMiB.toFixed(0)} MiB`,
      );
      if (!best || median(p.rates) > median(best.rates)) best = p;
    }
    if (!best) continue;
    console.log(`[${shape}] done, ${loadLine()}`);
    const kr = median(k.rates);
    const pr = median(best.rates);
    console.log(
      `RESULT sft-${shape} klear=${kr.toFixed(1)} peer=${pr.toFixed(1)} unit=tokens/s ratio=${(kr / pr).toFixed(3)}`,
    );
    console.log(
      `RESULT sft-${shape}-peak-rss klear=${k.peakRssMiB.toFixed(0)} peer=${best.peakRssMiB.toFixed(0)} unit=MiB ratio=${(best.peakRssMiB / k.peakRssMiB).toFixed(3)}`,
    );
  }
}

if (process.argv[2] === "--klear") klearChild(process.argv[3]);
else main();
