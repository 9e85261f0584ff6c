import { parentPort } from "node:worker_threads";
import { verifyMath } from "../rewards/math/index.js";

/** Worker-thread side of MathScorePool: one verification per message, answered with the same id. */
parentPort?.on("message", (job: { id: number; gold: string; response: string; timeoutMs: number }) => {
  let result: ReturnType<typeof verifyMath>;
  try {
    result = verifyMath(job.gold, job.response, { timeoutMs: job.timeoutMs });
  } catch (e) {
    result = {
      correct: false,
      extractedGold: null,
      extractedPred: null,
      reason: "verifier error",
      error: (e as Error).message,
    };
  }
  parentPort?.postMessage({ id: job.id, result });
});
