/**
 * Engine benchmark: the reference Qwen3 (4 layers, d_model 256, 4 q / 2 kv heads of 64, SwiGLU 768,
 * vocab 512) trained on batch 16×128 (forward + backward + AdamW) and decoded greedily with a KV cache
 * (batch 16, 16-token prompts, 112 new tokens), for klear and for PyTorch CPU in the same run and
 * environment. Medians over several timed windows. OPENBLAS_* variables are left as the environment has them.
 *
 *   npm run bench:engine            (KLEAR_BENCH_RUNS=5 KLEAR_BENCH_SECONDS=1 by default)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { nativeInfo } from "../src/engine/native.js";
import { AdamW } from "../src/engine/optim.js";
import { tinyQwen3Config } from "../src/model/config.js";
import { Qwen3Model } from "../src/model/qwen3.js";
import { Rng } from "../src/util/rng.js";

const RUNS = Number(process.env.KLEAR_BENCH_RUNS ?? 5);
const MIN_SECONDS = Number(process.env.KLEAR_BENCH_SECONDS ?? 1);
const B = 16;
const T = 128;
const DECODE_BATCH = 16;
const DECODE_PROMPT = 16;
const DECODE_NEW = 112;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function klearTrain(): number[] {
  const model = Qwen3Model.create(tinyQwen3Config(), { seed: 0 });
  const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01 });
  const rng = new Rng(1);
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let i = 0; i < tokens.length; i++) {
    tokens[i] = rng.int(512);
    targets[i] = rng.int(512);
  }
  const step = () => {
    model.zeroGrad();
    model.lossAndBackward({ tokens, targets, batchSize: B, seqLen: T });
    opt.step();
  };
  step();
  step();
  const rates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    let steps = 0;
    const t0 = performance.now();
    let dt = 0;
    do {
      step();
      steps++;
      dt = (performance.now() - t0) / 1000;
    } while (dt < MIN_SECONDS || steps < 2);
    rates.push((B * T * steps) / dt);
  }
  return rates;
}

function klearDecode(): number[] {
  const cfg = tinyQwen3Config();
  const model = Qwen3Model.create(cfg, { seed: 0 });
  const rng = new Rng(2);
  const prompt = new Int32Array(DECODE_BATCH * DECODE_PROMPT);
  for (let i = 0; i < prompt.length; i++) prompt[i] = rng.int(cfg.vocabSize);
  const cache = model.createKVCache(DECODE_BATCH, DECODE_PROMPT + DECODE_NEW);
  const next = new Int32Array(DECODE_BATCH);
  const V = cfg.vocabSize;
  const run = (newTokens: number) => {
    cache.reset();
    let logits = model.forwardTokens(cache, prompt);
    const t0 = performance.now();
    for (let i = 0; i < newTokens; i++) {
      for (let b = 0; b < DECODE_BATCH; b++) {
        let best = 0;
        for (let j = 1; j < V; j++) if (logits[b * V + j] > logits[b * V + best]) best = j;
        next[b] = best;
      }
      logits = model.forwardTokens(cache, next);
    }
    return (performance.now() - t0) / 1000;
  };
  run(4);
  const rates: number[] = [];
  for (let r = 0; r < RUNS; r++) rates.push((DECODE_BATCH * DECODE_NEW) / run(DECODE_NEW));
  return rates;
}

function ensureTorch(): void {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" });
  if (probe.status === 0) return;
  console.error("bench: installing the PyTorch peer (Debian python3-torch)");
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  const apt = (...args: string[]) =>
    execFileSync(sudo.length ? "sudo" : "apt-get", [...(sudo.length ? ["apt-get"] : []), ...args], {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  apt("update", "-qq");
  apt("install", "-y", "-qq", "--no-install-recommends", "python3-torch");
}

function torchPeer(): { train: number[]; decode: number[]; torch: string } {
  ensureTorch();
  const cfg = {
    layers: 4,
    hidden: 256,
    heads: 4,
    kvHeads: 2,
    headDim: 64,
    ffn: 768,
    vocab: 512,
    batch: B,
    seq: T,
    runs: RUNS,
    minSeconds: MIN_SECONDS,
    decodeBatch: DECODE_BATCH,
    decodePrompt: DECODE_PROMPT,
    decodeNew: DECODE_NEW,
  };
  const out = execFileSync(
    "/usr/bin/python3",
    [join(import.meta.dirname, "peers", "engine_torch.py"), JSON.stringify(cfg)],
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  return JSON.parse(out.trim().split("\n").pop() as string);
}

function main(): void {
  const info = nativeInfo();
  console.log(
    `engine bench: OpenBLAS core ${info.blasCore}, ${info.blasThreads} BLAS threads, ${info.kernelThreads} kernel threads, gemm ${info.gemmKernel}; OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? "(unset)"}`,
  );
  const train = klearTrain();
  const decode = klearDecode();
  const peer = torchPeer();
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  console.log(`klear train tokens/s: ${fmt(train)}`);
  console.log(`torch ${peer.torch} train tokens/s: ${fmt(peer.train)}`);
  console.log(`klear decode tokens/s: ${fmt(decode)}`);
  console.log(`torch decode tokens/s: ${fmt(peer.decode)}`);
  const line = (name: string, k: number, p: number) =>
    console.log(
      `RESULT ${name} klear=${k.toFixed(1)} peer=${p.toFixed(1)} unit=tokens/s ratio=${(k / p).toFixed(3)}`,
    );
  line("engine-train", median(train), median(peer.train));
  line("engine-decode", median(decode), median(peer.decode));
}

main();
