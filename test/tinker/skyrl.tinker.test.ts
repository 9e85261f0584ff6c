// klear's GPPO loop against a real SkyRL Tinker server (JAX backend, CPU, tiny Qwen3): the server's
// gradient equals klear's coefficients, small steps move log-probs as klear predicts, RL through the API
// raises reward, and a run survives the server being killed mid-run.
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TinkerModel } from "../../src/backend/tinker/client.js";
import { forwardDatum } from "../../src/backend/tinker/gradients.js";
import { tinkerBackend } from "../../src/backend/tinker/trainer.js";
import type { PolicyTrainer, TrainingSequence } from "../../src/backend/types.js";
import { policyLoss } from "../../src/rl/objectives/index.js";
import type { RlPrompt, RlTask } from "../../src/rl/task.js";
import { runRl } from "../../src/rl/trainer.js";
import { resolveRlConfig } from "../../src/rl/trainer-config.js";
import { type SkyrlUnderTest, skyrlSkipReason, startSkyrl } from "./skyrl-harness.js";

const skip = skyrlSkipReason();
if (skip) console.log(`# SKIP test:tinker (SkyRL Tinker server): ${skip}`);

const seqs: TrainingSequence[] = [
  { promptTokens: [257, 72, 105], responseTokens: [97, 98, 99, 100, 258] },
  { promptTokens: [257, 80], responseTokens: [101, 102, 103] },
  { promptTokens: [257, 81, 82], responseTokens: [104, 105, 106, 107] },
];

function backendFor(url: string, eps = 1e-8, beta1 = 0.9) {
  const backend = tinkerBackend({
    client: { baseUrl: url, backoffMs: 200, maxBackoffMs: 2000, maxRetries: 3 },
    lora: { rank: 8, seed: 11 },
    lossConvention: "skyrl-jax",
    samplingConcurrency: 8,
  });
  const optimizer = { lr: 0, beta1, beta2: 0.999, eps, weightDecay: 0 };
  return { backend, optimizer };
}

/**
 * A task a random tiny byte-level model can learn: one prompt, a one-token response, reward 1 when it is a
 * lowercase letter (about 26/261 at random). Its expected reward is exactly P(a–z | prompt), which a
 * forward over the 26 letters measures without sampling noise.
 */
function lettersTask(): RlTask {
  const prompt = (i: number): RlPrompt => ({ id: `p${i}`, text: "A", tokens: PROMPT, answer: "" });
  return {
    name: "letters",
    heldOut: Array.from({ length: 8 }, (_, i) => prompt(1000 + i)),
    prompts: (cursor, count) => Array.from({ length: count }, (_, k) => prompt(cursor + k)),
    score: (_p, response) => {
      const chars = [...response];
      const reward = chars.length === 0 ? 0 : chars.filter((c) => c >= "a" && c <= "z").length / chars.length;
      return { reward, correct: reward >= 0.5 };
    },
  };
}

function rlConfig(init: string, lossName: string, steps: number) {
  return resolveRlConfig({
    overrides: {
      init,
      steps: String(steps),
      checkpointEvery: "2",
      "rollout.genBatchPrompts": "8",
      "rollout.trainBatchPrompts": "8",
      "rollout.n": "8",
      "rollout.maxNewTokens": "1",
      "loss.name": lossName,
      "groupFilter.metric": "reward",
      "update.miniBatchPrompts": "4",
      "update.microBatchSize": "64",
      "optimizer.lr": "0.03",
      "optimizer.warmupSteps": "0",
      "optimizer.weightDecay": "0",
      "eval.temperature": "1",
      "eval.topP": "1",
      "eval.maxNewTokens": "1",
    },
  });
}

function stepRewards(runDir: string): { step: number; rewardMean: number }[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((m) => m.phase === undefined && typeof m.rewardMean === "number");
}

const RL_STEPS = 6;
const PROMPT = [257, 65];
const LETTERS = Array.from({ length: 26 }, (_, k) => ({ promptTokens: PROMPT, responseTokens: [97 + k] }));

/** The task's expected reward under the policy saved in `checkpoint`: P(first token ∈ a–z). */
async function expectedReward(url: string, checkpoint: string): Promise<number> {
  const { backend, optimizer } = backendFor(url);
  const policy = await backend.openPolicy(checkpoint, { optimizer });
  const lp = await policy.logprobs(LETTERS, { temperature: 1 });
  backend.client.close();
  return lp.reduce((a, l) => a + Math.exp(l.logp[0]), 0);
}

describe("SkyRL Tinker server", { skip: skip ?? false, timeout: 2_400_000 }, () => {
  let skyrl: SkyrlUnderTest;
  // One policy for the gradient checks (each new model costs the server an optimizer compile). With β1 = 0
  // AdamW's step is g/(√v̂ + ε), and with ε ≫ |g| that is plain gradient descent with rate η = lr/ε.
  const eps = 1e4;
  let policy: PolicyTrainer;

  before(async () => {
    skyrl = await startSkyrl();
    const { backend, optimizer } = backendFor(skyrl.url, eps, 0);
    policy = await backend.openPolicy(skyrl.modelDir, { optimizer });
  });
  after(async () => {
    await skyrl?.stop();
    if (skyrl?.kill) rmSync(skyrl.dir, { recursive: true, force: true });
  });

  test("the server's gradient is klear's coefficients: same norm as the cross_entropy it must equal", async () => {
    // SkyRL's cross_entropy over these rows, split over two forward_backward calls, has coefficients
    // −1/(B·R_i); send exactly those through klear's path and compare gradient norms at lr 0.
    const model = (policy as unknown as { model: TinkerModel }).model;
    const crossEntropyDatum = (sq: TrainingSequence) => {
      const d = forwardDatum(sq.promptTokens, sq.responseTokens);
      (d.lossFnInputs.weights.data as Float32Array).fill(0, 0, sq.promptTokens.length - 1);
      return d;
    };
    await model.forwardBackward([crossEntropyDatum(seqs[0])], "cross_entropy");
    await model.forwardBackward(seqs.slice(1).map(crossEntropyDatum), "cross_entropy");
    const reference = await model.optimStep({
      learningRate: 0,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      gradClipNorm: 0,
    });
    const refNorm = reference["skyrl.ai/grad_norm"];
    const coeff = (s: TrainingSequence) =>
      new Float64Array(s.responseTokens.length).fill(-1 / (seqs.length * s.responseTokens.length));
    await policy.forwardBackward(seqs.slice(0, 1), { temperature: 1 }, () => ({ dLogp: [coeff(seqs[0])] }));
    await policy.forwardBackward(seqs.slice(1), { temperature: 1 }, () => ({
      dLogp: seqs.slice(1).map(coeff),
    }));
    const mine = await policy.optimizerStep({ lr: 0, gradClip: 0 });
    console.log(
      `# grad norm: cross_entropy ${refNorm}, klear's coefficients via importance_sampling ${mine.gradNorm}`,
    );
    assert.ok(Math.abs(mine.gradNorm - refNorm) <= 1e-4 * refNorm, `${mine.gradNorm} vs ${refNorm}`);
  });

  test("GPPO through the API: a small step changes the log-probs by what klear's coefficients predict", async () => {
    // To first order Δlog π_t = −η ∇log π_t·g and Σ_t c_t Δlog π_t = −η‖g‖², where g is the server's
    // gradient and ‖g‖ the norm it reports. Were g = α·Σ c∇log π, the two sides would differ by α.
    const eta = 1e-4;
    const batch = seqs.slice(0, 2);
    const before = await policy.logprobs(batch, { temperature: 1 });
    // Old log-probs placing the tokens in every GPPO region: row 0 (A > 0) inside, high-clipped, low
    // side unclipped; row 1 (A < 0) low-clipped, dual-clipped (> c = 10), high side unclipped.
    const ratios = [
      [1.1, 1.5, 0.5, 1.0, 1.2],
      [0.5, 12, 1.5],
    ];
    const oldLogp = before.map((b, r) => b.logp.map((l, j) => l - Math.log(ratios[r][j])));
    const gppo = policyLoss("gppo", { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 });
    let dLogp: Float64Array[] = [];
    await policy.forwardBackward(batch, { temperature: 1 }, (out) => {
      const res = gppo({ logp: out.map((o) => o.logp), oldLogp, advantages: [1, -1] });
      assert.equal(res.metrics.dualClipFrac, 1 / 8);
      assert.equal(res.metrics.clipFracHigh, 1 / 8);
      assert.equal(res.metrics.clipFracLow, 1 / 8);
      dLogp = res.dLogpRows.map((r) => Float64Array.from(r));
      return { dLogp };
    });
    const { gradNorm } = await policy.optimizerStep({ lr: eta * eps, gradClip: 0 });
    const afterStep = await policy.logprobs(batch, { temperature: 1 });
    let surrogate = 0;
    batch.forEach((_, r) => {
      for (let j = 0; j < dLogp[r].length; j++)
        surrogate += dLogp[r][j] * (afterStep[r].logp[j] - before[r].logp[j]);
    });
    const predicted = -eta * gradNorm * gradNorm;
    console.log(
      `# Σ c·Δlogp = ${surrogate.toExponential(4)}, predicted −η‖g‖² = ${predicted.toExponential(4)}`,
    );
    assert.ok(surrogate < 0, "the step lowers klear's loss");
    assert.ok(Math.abs(surrogate / predicted - 1) < 0.03, `${surrogate} vs ${predicted}`);

    // One token alone: its log-prob moves against its coefficient's sign, by η‖g‖²/|c|.
    for (const sign of [-1, 1]) {
      const p = policy;
      const one = [{ promptTokens: [257, 65], responseTokens: [120] }];
      const lp0 = (await p.logprobs(one, { temperature: 1 }))[0].logp[0];
      const c = 0.5 * sign;
      await p.forwardBackward(one, { temperature: 1 }, () => ({ dLogp: [Float64Array.of(c)] }));
      const g = (await p.optimizerStep({ lr: eta * eps, gradClip: 0 })).gradNorm;
      const lp1 = (await p.logprobs(one, { temperature: 1 }))[0].logp[0];
      const want = (-eta * g * g) / c;
      console.log(
        `# single token, c = ${c}: Δlogp ${(lp1 - lp0).toExponential(4)}, predicted ${want.toExponential(4)}`,
      );
      assert.equal(Math.sign(lp1 - lp0), -sign);
      assert.ok(Math.abs((lp1 - lp0) / want - 1) < 0.03, `${lp1 - lp0} vs ${want}`);
    }
  });

  async function rlRun(
    lossName: string,
    out: string,
    backend: ReturnType<typeof backendFor>["backend"],
    extra: Partial<Parameters<typeof runRl>[0]> = {},
  ) {
    return runRl({
      config: rlConfig(skyrl.modelDir, lossName, RL_STEPS),
      task: lettersTask(),
      out,
      backend,
      quiet: true,
      log: () => {},
      ...extra,
    });
  }

  async function checkRewardRose(lossName: string, out: string, finalCheckpoint: string) {
    const steps = stepRewards(out);
    const rewards = steps.map((m) => m.rewardMean);
    assert.deepEqual(
      steps.map((m) => m.step),
      Array.from({ length: RL_STEPS }, (_, i) => i + 1),
      "every step once",
    );
    const before = await expectedReward(skyrl.url, skyrl.modelDir);
    const after = await expectedReward(skyrl.url, finalCheckpoint);
    console.log(
      `# ${lossName}: sampled reward per step ${rewards.map((r) => r.toFixed(3)).join(" ")}; expected reward ${before.toFixed(4)} → ${after.toFixed(4)}`,
    );
    assert.ok(after > before * 1.03, `expected reward did not rise: ${before} → ${after}`);
  }

  test("RL with GPPO through the API raises reward, and survives the server killed mid-run", async () => {
    const out = join(skyrl.dir, "rl-gppo");
    const first = backendFor(skyrl.url);
    let finalCheckpoint: string;
    if (!skyrl.kill || !skyrl.restart) {
      console.log("# reusing an outside server (KLEAR_TEST_TINKER_URL): not killing it");
      finalCheckpoint = (await rlRun("gppo", out, first.backend)).checkpoint;
    } else {
      let killed = false;
      const kill = skyrl.kill;
      // Between steps: once step 4 is checkpointed, kill the server while step 5 runs.
      const shouldStop = () => {
        if (!killed && existsSync(join(out, "checkpoints", "step-4"))) {
          killed = true;
          setTimeout(() => void kill(), 300);
        }
        return false;
      };
      await assert.rejects(rlRun("gppo", out, first.backend, { shouldStop }));
      assert.ok(killed, "the server was killed");
      console.log(
        `# killed during step ${stepRewards(out).length + 1}; restarting (${JSON.stringify(first.backend.client.stats.retryCauses)})`,
      );
      first.backend.client.close();
      await skyrl.restart();
      const second = backendFor(skyrl.url);
      // The saved server state loads into a fresh model; steps after the checkpoint are redone, once.
      const result = await rlRun("gppo", out, second.backend, { resume: true });
      assert.equal(result.interrupted, false);
      finalCheckpoint = result.checkpoint;
      console.log(
        `# gppo: held-out ${result.accuracyBefore} → ${result.accuracyAfter}; requests ${JSON.stringify(second.backend.client.stats)}`,
      );
      second.backend.client.close();
    }
    await checkRewardRose("gppo", out, finalCheckpoint);
  });

  test("RL with clip-higher through the API raises reward", async () => {
    const out = join(skyrl.dir, "rl-clip-higher");
    const { backend } = backendFor(skyrl.url);
    const result = await rlRun("clip-higher", out, backend);
    console.log(
      `# clip-higher: held-out ${result.accuracyBefore} → ${result.accuracyAfter}; requests ${JSON.stringify(backend.client.stats)}`,
    );
    backend.client.close();
    await checkRewardRose("clip-higher", out, result.checkpoint);
  });
});
