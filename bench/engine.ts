/**
 * Engine benchmark: the reference Qwen3 (4 layers, d_model 256, 4 q / 2 kv heads of 64, SwiGLU 768,
 * vocab 512) trained on batch 16×128 (forward + backward + AdamW) and decoded greedily with a KV cache
 * (batch 16, 16-token prompts, 112 new tokens), for klear and for PyTorch CPU in the same run and
 * environment. The peer is PyPI PyTorch 2.15 (bench/peers/setup-torch.sh installs it into .cache/venv-torch) at
 * its best thread count. Medians over several timed windows. OPENBLAS_* variables are left as the environment has them.
 *
 *   npm run bench:engine            (KLEAR_BENCH_RUNS=5 KLEAR_BENCH_SECONDS=1 by default)
 */
import { nativeInfo } from "../src/engine/native.js";
import { AdamW } from "../src/engine/optim.js";
import { tinyQwen3Config } from "../src/model/config.js";
import { Qwen3Model } from "../src/model/qwen3.js";
import { Rng } from "../src/util/rng.js";
import { loadLine, median, runTorchPeer } from "./torch-peer.js";

const RUNS = Number(process.env.KLEAR_BENCH_RUNS ?? 5);
const MIN_SECONDS = Number(process.env.KLEAR_BENCH_SECONDS ?? 1);
const B = 16;
const T = 128;
const DECODE_BATCH = 16;
const DECODE_PROMPT = 16;
const DECODE_NEW = 112;

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

interface PeerResult {
  train: number[];
  decode: number[];
  torch: string;
  threads: number;
}

/** PyPI PyTorch (bench/peers/setup-torch.sh) at each thread count in KLEAR_BENCH_TORCH_THREADS; the best per metric counts. */
function torchPeer(): { train: PeerResult; decode: PeerResult } {
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
  const results = (process.env.KLEAR_BENCH_TORCH_THREADS ?? "1,2").split(",").map((t) => {
    console.log(`torch peer at ${t} thread(s), ${loadLine()}`);
    return runTorchPeer<PeerResult>("engine_torch.py", { ...cfg, torchThreads: Number(t) });
  });
  const best = (key: "train" | "decode") =>
    results.reduce((a, b) => (median(b[key]) > median(a[key]) ? b : a));
  return { train: best("train"), decode: best("decode") };
}

function main(): void {
  const info = nativeInfo();
  console.log(
    `engine bench: OpenBLAS core ${info.blasCore}, ${info.blasThreads} BLAS threads, ${info.kernelThreads} kernel threads, gemm ${info.gemmKernel}; OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? "(unset)"}`,
  );
  console.log(`klear, ${loadLine()}`);
  const train = klearTrain();
  const decode = klearDecode();
  const peer = torchPeer();
  console.log(`done, ${loadLine()}`);
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  console.log(`klear train tokens/s: ${fmt(train)}`);
  console.log(
    `torch ${peer.train.torch} (${peer.train.threads} threads) train tokens/s: ${fmt(peer.train.train)}`,
  );
  console.log(`klear decode tokens/s: ${fmt(decode)}`);
  console.log(`torch (${peer.decode.threads} threads) decode tokens/s: ${fmt(peer.decode.decode)}`);
  const line = (name: string, k: number, p: number) =>
    console.log(
      `RESULT ${name} klear=${k.toFixed(1)} peer=${p.toFixed(1)} unit=tokens/s ratio=${(k / p).toFixed(3)}`,
    );
  line("engine-train", median(train), median(peer.train.train));
  line("engine-decode", median(decode), median(peer.decode.decode));
}

main();
