/**
 * Harness throughput: requests/s that `evaluate()` sustains end to end (HTTP request to an
 * OpenAI-compatible server, SQLite store of the sample, math verification, SQLite store of the
 * verdict) against a local fake server running in its own process.
 *
 * The peer figure is a goal, not a measured program: 2,000 requests/s, so the harness never becomes
 * the bottleneck of a real inference cluster (a large vLLM/SGLang fleet answers long-CoT requests at
 * far less than that). ratio = klear / 2000.
 *
 *   npm run bench:eval   (EVAL_BENCH_REQUESTS, EVAL_BENCH_RUNS, EVAL_BENCH_CONCURRENCY override the sizes)
 *
 * The fake server answers every sample of a problem with one of two answer sections, so the default
 * scorer's verdict memo verifies each distinct (gold, answer) once, as it would for n samples that agree;
 * EVAL_BENCH_MATH_MEMO=0 verifies every sample (the worst case: no two answers alike).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import {
  BENCHMARKS,
  createDefaultScorer,
  type EvalScorer,
  evaluate,
  type LoadedBenchmark,
  OpenAIGenerator,
} from "../src/eval/index.js";
import { startFakeOpenAI } from "../test/helpers/fake-openai.js";

const PEER_REQUESTS_PER_S = 2000;

if (process.argv.includes("--serve")) {
  // Server mode: a fake OpenAI server answering with a short reasoning trace and a boxed answer.
  const fake = await startFakeOpenAI({
    respond: (r) => `<think>Adding up.</think>\nThe answer is \\boxed{${(r.seed ?? 0) % 4 === 0 ? 42 : 41}}.`,
  });
  console.log(`PORT ${fake.port}`);
} else {
  const requests = Number(process.env.EVAL_BENCH_REQUESTS ?? 6000);
  const runs = Number(process.env.EVAL_BENCH_RUNS ?? 5);
  const concurrency = Number(process.env.EVAL_BENCH_CONCURRENCY ?? 256);
  const n = 32;
  const problems = Math.ceil(requests / n);
  const bench: LoadedBenchmark = {
    spec: BENCHMARKS.aime24,
    source: ["synthetic"],
    problems: Array.from({ length: problems }, (_, i) => ({
      id: `p${i}`,
      kind: "math" as const,
      question: `What is 40 + 2? (variant ${i})`,
      answer: "42",
    })),
  };

  const server: ChildProcess = spawn(process.execPath, ["--import", "tsx", import.meta.filename, "--serve"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: server.stdout! });
    rl.on("line", (l) => {
      const m = /^PORT (\d+)$/.exec(l);
      if (m) resolve(Number(m[1]));
    });
    server.on("exit", (code) => reject(new Error(`fake server exited with ${code}`)));
  });

  // Diagnostics: EVAL_BENCH_NOSCORE=1 measures the HTTP + store path alone; EVAL_BENCH_MATH_WORKERS=0
  // verifies on the main thread; EVAL_BENCH_MATH_MEMO=0 verifies every sample afresh.
  const mathWorkers = process.env.EVAL_BENCH_MATH_WORKERS;
  const mathMemo = process.env.EVAL_BENCH_MATH_MEMO;
  const scorer: EvalScorer = process.env.EVAL_BENCH_NOSCORE
    ? { score: async () => ({ score: 1, correct: true, extracted: "42", reason: "" }) }
    : createDefaultScorer({
        mathWorkers: mathWorkers === undefined ? undefined : Number(mathWorkers),
        mathMemoEntries: mathMemo === undefined ? undefined : Number(mathMemo),
      });
  // The figure moves with the machine's load; print it next to the result.
  console.log(`load average ${loadavg()[0].toFixed(2)} at start`);
  const rates: number[] = [];
  try {
    for (let r = 0; r < runs + 1; r++) {
      const out = mkdtempSync(join(tmpdir(), "klear-bench-eval-"));
      const generator = new OpenAIGenerator({
        endpoints: [`http://127.0.0.1:${port}/v1`],
        model: "fake",
        concurrency,
      });
      try {
        const t0 = performance.now();
        const outcome = await evaluate({
          benchmarks: [bench],
          generator,
          scorer,
          outDir: out,
          n,
          model: "fake",
          bootstrap: 100,
          writeReport: false,
          progress: { silent: true },
        });
        const secs = (performance.now() - t0) / 1000;
        const total = outcome.generated;
        if (outcome.failed || total !== problems * n)
          throw new Error(`run ${r}: ${outcome.failed} failed, ${total} done`);
        // The first run warms up the JIT, the verifier and the sockets; it is not counted.
        if (r > 0) rates.push(total / secs);
        console.log(
          `run ${r}${r === 0 ? " (warm-up)" : ""}: ${total} requests in ${secs.toFixed(2)} s = ${(total / secs).toFixed(0)} req/s`,
        );
      } finally {
        generator.close();
        rmSync(out, { recursive: true, force: true });
      }
    }
  } finally {
    server.kill();
    await scorer.close?.();
  }
  console.log(`load average ${loadavg()[0].toFixed(2)} at end`);
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)];
  console.log(
    `RESULT eval klear=${median.toFixed(0)} peer=${PEER_REQUESTS_PER_S} unit=requests/s ratio=${(median / PEER_REQUESTS_PER_S).toFixed(2)}`,
  );
}
