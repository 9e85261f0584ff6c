import { parentPort } from "node:worker_threads";
import { type VerifyMathOptions, verifyMath } from "./verify.js";

/** Worker-thread side of MathVerifierPool: one check per message, answered with the same id. */
interface Job {
  id: number;
  gold: string;
  response: string;
  opts?: VerifyMathOptions;
}

parentPort?.on("message", (job: Job) => {
  let result: ReturnType<typeof verifyMath>;
  try {
    result = verifyMath(job.gold, job.response, job.opts);
  } catch (e) {
    result = {
      correct: false,
      extractedGold: null,
      extractedPred: null,
      reason: "invalid options",
      error: (e as Error).message,
    };
  }
  parentPort?.postMessage({ id: job.id, result });
});

// Tell the pool this worker has loaded: jobs, and so watchdogs, start only then, never during startup.
parentPort?.postMessage({ ready: true });
