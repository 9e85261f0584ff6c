// Synthetic run folders with the store's own writers, shaped like what klear sft / rl / demo write.
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { appendMetrics, createRun } from "../../src/store/run.js";
import { RunDatabase } from "../../src/store/samples.js";

export function makeRlRun(dir: string, opts: { steps: number; seed: number; finished?: boolean }): void {
  const paths = createRun(dir, { kind: "rl", seed: opts.seed, loss: { name: "gppo" } });
  appendMetrics(paths, { step: 0, phase: "eval-before", heldOutAccuracy: 0.3 });
  for (let s = 1; s <= opts.steps; s++) {
    const f = s / opts.steps;
    appendMetrics(paths, {
      step: s,
      rewardMean: -0.5 + f + 0.05 * opts.seed,
      accuracy: 0.3 + 0.5 * f,
      entropy: 0.9 - 0.4 * f,
      clipFracHigh: 0.02 * f,
      clipFracLow: 0.01,
      dualClipFrac: 0.001,
      boundedGradFrac: 0.03,
      approxKlK1: 1e-4 * s,
      approxKlK3: 2e-4 * s,
      responseLengthMean: 20 + s,
      truncatedFrac: 0.01,
      keptGroups: 30,
      droppedAllCorrect: 1,
      droppedAllWrong: 1,
      gradNorm: 1 + 0.1 * s,
      lr: 1e-5,
      tokensPerSecond: 500 + s,
      verifierCalls: 256,
    });
  }
  if (opts.finished !== false) {
    appendMetrics(paths, { step: opts.steps, phase: "eval-after", heldOutAccuracy: 0.8 });
    writeFileSync(join(dir, "result.json"), JSON.stringify({ steps: opts.steps }));
  }
  const db = RunDatabase.open(paths.database);
  db.addSamples(
    [0, 1, 2].map((i) => ({
      step: opts.steps,
      kind: "rollout" as const,
      problemId: `p${i}`,
      prompt: `What is ${i}+1? <script>alert(1)</script>`,
      completion: `<think>${i}+1=${i + 1}</think> \\boxed{${i + 1}}`,
      reward: i === 2 ? -1 : 1,
      correct: i !== 2,
      finishReason: "stop",
      numTokens: 12,
      meta: { reason: i === 2 ? "wrong answer" : "equal", extracted: String(i + 1) },
    })),
  );
  db.close();
}

export function makeSftRun(dir: string, steps: number): void {
  const paths = createRun(dir, { kind: "sft" });
  for (let s = 1; s <= steps; s++) {
    appendMetrics(paths, {
      step: s,
      loss: 3 / s,
      lr: 1e-4,
      gradNorm: 2 / s,
      tokensPerSecond: 900,
      paddingFraction: 0.04,
    });
    if (s % 2 === 0) appendMetrics(paths, { step: s, heldOutLoss: 3.2 / s });
  }
  // A torn last line, as a crash mid-append leaves it: the run reads as in progress, the line is ignored.
  appendFileSync(paths.metrics, '{"step": 99, "lo');
  mkdirSync(join(dir, "checkpoints"), { recursive: true });
}
