import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { localBackend } from "../../src/backend/local.js";
import type { PolicyTrainer, TrainingBackend } from "../../src/backend/types.js";
import { saveCheckpoint } from "../../src/model/checkpoint.js";
import type { RlScorer } from "../../src/rl/task.js";
import { type RlTrainerState, runRl } from "../../src/rl/trainer.js";
import { type RlConfig, resolveRlConfig } from "../../src/rl/trainer-config.js";
import { OpenAIClient } from "../../src/rollout/openai.js";
import { RolloutServerConfigSchema } from "../../src/rollout/server-config.js";
import { ServerSession } from "../../src/rollout/server-session.js";
import { readTrainerState } from "../../src/store/checkpoint.js";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { RunDatabase } from "../../src/store/samples.js";
import { rlTaskFromConfig } from "../../src/tasks/rl-tasks.js";
import { eosByteTokenizer, tinyTestModel } from "../helpers/tiny-model.js";
import { type FakeServer, startFakeServer } from "../rollout/fake-inference-server.js";

/**
 * `rollout.server.overlap` against the fake inference server: off, every step samples after the previous
 * update; on, step k+1's requests reach the server while step k's update computes, each sample records
 * the version it came from, and a stop or a crash with the next step still sampling loses and repeats
 * nothing on --resume. The fake cannot serve the policy's log-probs, so the version probe is off here
 * (test/server/rl-resume.server.test.ts checks it against vLLM).
 */

const tokenizer = eosByteTokenizer();
const root = mkdtempSync(join(tmpdir(), "klear-rl-overlap-"));
const initDir = join(root, "init");
let fake: FakeServer;
let runs = 0;

before(async () => {
  await saveCheckpoint(initDir, tinyTestModel(tokenizer, 3), tokenizer);
  fake = await startFakeServer({ vocab: tokenizer.vocabSize, tokenize: (t) => tokenizer.encode(t) });
});
after(async () => {
  await fake.close();
  rmSync(root, { recursive: true, force: true });
});

const PROMPTS = 4;
const STEPS = 4;
/** Optimizer steps per training step: 4 prompts × 4 responses in mini-batches of 2 prompts. */
const UPDATES_PER_STEP = 2;

// The fake answers every sample of a prompt alike: the per-response seed makes the groups vary.
const seededScorer: RlScorer = (_prompt, _response, { seed }) => {
  const correct = (seed & 1) === 1;
  return { reward: correct ? 1 : -1, correct };
};

function config(overrides: Record<string, string> = {}): RlConfig {
  return resolveRlConfig({
    overrides: {
      steps: String(STEPS),
      "task.testSize": "2",
      "rollout.genBatchPrompts": String(PROMPTS),
      "rollout.trainBatchPrompts": String(PROMPTS),
      "rollout.n": "4",
      "rollout.maxNewTokens": "6",
      "rollout.backend": "server",
      "rollout.server.endpoints": fake.url,
      "rollout.server.model": "fake",
      "rollout.server.maxRetries": "1",
      "rollout.server.versionTolerance": "null",
      "groupFilter.enabled": "false",
      "update.miniBatchPrompts": "2",
      "update.microBatchSize": "4",
      "eval.maxNewTokens": "2",
      "optimizer.lr": "0.01",
      "optimizer.warmupSteps": "0",
      checkpointEvery: "1",
      ...overrides,
    },
  });
}

const OVERLAP = { "rollout.server.overlap": "true", "rollout.server.maxOffPolicySteps": "1" };

interface UpdateLog {
  /** performance.now() at the end of each optimizer step, in order. */
  optimizerStepEnds: number[];
  /** Throw from this (1-based) optimizer step, as a crash mid-update. */
  crashAt?: number;
}

/**
 * The local backend with each optimizer step made 30 ms slower by blocking the thread, as the local
 * engine's compute does: the next step's requests can only go out if the trainer yields between calls.
 */
function recordingBackend(log: UpdateLog): TrainingBackend {
  return {
    ...localBackend,
    async openPolicy(checkpoint, opts) {
      const policy = await localBackend.openPolicy(checkpoint, opts);
      const optimizerStep: PolicyTrainer["optimizerStep"] = async (o) => {
        if (log.crashAt === log.optimizerStepEnds.length + 1) throw new Error("crash mid-update");
        const end = performance.now() + 30;
        while (performance.now() < end) {
          // busy: the event loop is blocked, as during a real forward/backward
        }
        const result = await policy.optimizerStep(o);
        log.optimizerStepEnds.push(performance.now());
        return result;
      };
      return Object.assign(Object.create(policy) as PolicyTrainer, { optimizerStep });
    },
  };
}

/** Arrival time of the first sampling request of each step (the fake got `PROMPTS` per step). */
function stepRequestStarts(from: number): number[] {
  const sampling = fake.requests.slice(from).filter((r) => r.body.prompt_logprobs === undefined);
  return Array.from({ length: sampling.length / PROMPTS }, (_, k) => sampling[k * PROMPTS].at);
}

async function run(
  name: string,
  overrides: Record<string, string>,
  opts: { log?: UpdateLog; resume?: boolean; shouldStop?: () => boolean; out?: string } = {},
) {
  const out = opts.out ?? join(root, `${name}-${runs++}`);
  const result = await runRl({
    task: rlTaskFromConfig,
    config: config(overrides),
    out,
    init: initDir,
    resume: opts.resume,
    quiet: true,
    log: () => {},
    scorer: seededScorer,
    backend: recordingBackend(opts.log ?? { optimizerStepEnds: [] }),
    shouldStop: opts.shouldStop,
  });
  return { out, result };
}

function stepMetrics(out: string): Record<string, unknown>[] {
  return readMetrics(runPaths(out)).filter((m) => m.phase === undefined);
}

function rolloutSamples(out: string) {
  const db = RunDatabase.open(runPaths(out).database);
  try {
    return db.samples({ kind: "rollout" });
  } finally {
    db.close();
  }
}

describe("runRl with rollout.server.overlap", () => {
  it("off: each step samples after the previous update ended, on-policy", async () => {
    const log: UpdateLog = { optimizerStepEnds: [] };
    const first = fake.requests.length;
    const { out } = await run("off", {}, { log });
    const starts = stepRequestStarts(first);
    assert.equal(starts.length, STEPS);
    for (let k = 1; k < STEPS; k++) {
      const updateEnd = log.optimizerStepEnds[k * UPDATES_PER_STEP - 1];
      assert.ok(starts[k] > updateEnd, `step ${k + 1} sampled before step ${k}'s update ended`);
    }
    const ms = stepMetrics(out);
    assert.deepEqual(
      ms.map((m) => [m.step, m.servedVersion, m.staleness]),
      [1, 2, 3, 4].map((s) => [s, s - 1, 0]),
    );
  });

  it("on: step k+1 samples while step k's update runs; one step stale, recorded per step and per sample", async () => {
    const log: UpdateLog = { optimizerStepEnds: [] };
    const first = fake.requests.length;
    const { out, result } = await run("on", OVERLAP, { log });
    assert.equal(result.interrupted, false);
    const starts = stepRequestStarts(first);
    assert.equal(starts.length, STEPS, "one batch of requests per step, none repeated");
    for (let k = 1; k < STEPS; k++) {
      const updateEnd = log.optimizerStepEnds[k * UPDATES_PER_STEP - 1];
      assert.ok(starts[k] < updateEnd, `step ${k + 1}'s requests waited for step ${k}'s update`);
    }
    const ms = stepMetrics(out);
    // Step 1 has nothing to overlap with; then each step trains on rollouts one update old.
    assert.deepEqual(
      ms.map((m) => [m.step, m.servedVersion, m.staleness]),
      [
        [1, 0, 0],
        [2, 0, 1],
        [3, 1, 1],
        [4, 2, 1],
      ],
    );
    for (const m of ms) assert.equal(m.skipped, undefined, `step ${m.step} did not train`);
    const samples = rolloutSamples(out);
    assert.equal(samples.length, STEPS * PROMPTS * 4);
    for (const s of samples) {
      const meta = s.meta as { policyVersion: number; staleness: number };
      assert.equal(meta.staleness, s.step === 1 ? 0 : 1);
      assert.equal(meta.policyVersion, Math.max(0, s.step - 2));
    }
    assert.equal(
      readTrainerState<RlTrainerState>(result.checkpoint, "test").optimizerSteps,
      STEPS * UPDATES_PER_STEP,
    );
  });

  it("a crash mid-update with the next step sampling, then --resume: every step trained once, same prompts", async () => {
    const straight = await run("straight", OVERLAP);
    const log: UpdateLog = { optimizerStepEnds: [], crashAt: 2 * UPDATES_PER_STEP + 1 };
    const first = fake.requests.length;
    const out = join(root, `crash-${runs++}`);
    // Step 3's update throws after step 4's requests went out.
    await assert.rejects(run("crash", OVERLAP, { log, out }), /crash mid-update/);
    assert.equal(stepRequestStarts(first).length, 4, "steps 1–3 sampled, and step 4 prefetched");
    assert.deepEqual(
      stepMetrics(out).map((m) => m.step),
      [1, 2],
    );

    const { result } = await run("crash", OVERLAP, { out, resume: true });
    assert.equal(result.interrupted, false);
    const ms = stepMetrics(out);
    assert.deepEqual(
      ms.map((m) => m.step),
      [1, 2, 3, 4],
    );
    // The first step after the resume samples from the checkpoint's weights, as a run's first step does.
    assert.deepEqual(
      ms.map((m) => m.staleness),
      [0, 1, 0, 1],
    );
    assert.equal(
      readTrainerState<RlTrainerState>(result.checkpoint, "test").optimizerSteps,
      STEPS * UPDATES_PER_STEP,
      "nothing trained twice",
    );
    // Every step's prompts are the uninterrupted run's, each sampled once.
    const prompts = (dir: string) =>
      rolloutSamples(dir)
        .map(
          (s) =>
            `${s.step}:${(s.meta as { uid: string }).uid}:${(s.meta as { sampleIndex: number }).sampleIndex}`,
        )
        .sort();
    assert.deepEqual(prompts(out), prompts(straight.out));
  });

  it("a stop while the next step samples cancels it at once; --resume samples that step again", async () => {
    const first = fake.requests.length;
    // Step 3's prompts are answered after 2 s: they are still sampling when the stop comes before step 3.
    const task = await rlTaskFromConfig({ config: config(OVERLAP), tokenizer });
    const step3 = new Set(task.prompts(2 * PROMPTS, PROMPTS).map((p) => JSON.stringify(p.tokens)));
    fake.faultFor = (body) => (step3.has(JSON.stringify(body.prompt)) ? "slow" : null);
    let boundaries = 0;
    const out = join(root, `stop-${runs++}`);
    const t0 = performance.now();
    const { result } = await run("stop", OVERLAP, { out, shouldStop: () => ++boundaries === 3 });
    const seconds = (performance.now() - t0) / 1000;
    fake.faultFor = null;
    assert.equal(result.interrupted, true);
    assert.equal(result.steps, 2);
    assert.equal(stepRequestStarts(first).length, 3, "step 3 was sampling when the stop came");
    assert.ok(seconds < 1.8, `the stop waited ${seconds.toFixed(1)} s for the slow prefetch (2 s)`);

    const resumed = await run("stop", OVERLAP, { out, resume: true });
    assert.equal(resumed.result.interrupted, false);
    assert.deepEqual(
      stepMetrics(out).map((m) => m.step),
      [1, 2, 3, 4],
    );
    assert.equal(rolloutSamples(out).length, STEPS * PROMPTS * 4, "no step's samples twice");
  });
});

describe("overlap's lag", () => {
  it("is refused unless maxOffPolicySteps allows it, and needs a server", () => {
    assert.throws(
      () => config({ "rollout.server.overlap": "true" }),
      /overlap samples each step while the previous one still trains.*maxOffPolicySteps is 0/s,
    );
    assert.throws(
      () => config({ ...OVERLAP, "rollout.backend": "local" }),
      /overlap needs rollout.backend server; the local engine/,
    );
    assert.throws(
      () => config({ ...OVERLAP, "rollout.server.syncEvery": "2" }),
      /up to 2 step\(s\) old.*maxOffPolicySteps=2/s,
    );
  });

  it("the session accepts exactly the allowed lag, and a retry reloads the version it wrote", async () => {
    const model = tinyTestModel(tokenizer, 5);
    let probes = 0;
    const policy = {
      model,
      logprobs: async (batch: readonly { responseTokens: readonly number[] }[]) => {
        probes++;
        return batch.map((b) => ({
          logp: new Float64Array(b.responseTokens.length).fill(-(1 + fake.version) / 10),
        }));
      },
    };
    const session = await ServerSession.forRun(
      RolloutServerConfigSchema.parse({
        endpoints: [fake.url],
        model: "fake",
        overlap: true,
        maxOffPolicySteps: 1,
      }),
      mkdtempSync(join(root, "session-")),
      policy,
      tokenizer,
    );
    try {
      const onPolicy = await session.sampleStep(0, async () => null);
      assert.equal(onPolicy.metrics.staleness, 0);
      const { sampled } = await session.startStep(0, async () => null, { trainedAt: 1 });
      assert.equal((await sampled).metrics.staleness, 1);
      await assert.rejects(
        session.sampleStep(0, async () => null, { trainedAt: 2 }),
        (e: Error & { code?: string }) => e.code === "STALE_ROLLOUTS",
      );
      // The server restarts on its start-up weights mid-sampling: the folder is loaded again, the
      // policy (possibly mid-update by now) is not read again.
      const reloads = fake.adminCalls.filter((c) => c === "/collective_rpc").length;
      const probesBefore = probes;
      let collects = 0;
      const { sampled: again } = await session.startStep(1, async () => {
        if (collects++ === 0) fake.version--; // restarted on the previous weights
        return collects;
      });
      const r = await again;
      assert.equal(r.result, 2);
      assert.equal(probes, probesBefore + 1, "only the hand-off of version 1 read the policy");
      assert.equal(fake.adminCalls.filter((c) => c === "/collective_rpc").length, reloads + 2);
    } finally {
      await session.close();
    }
  });

  it("a cancelled client fails its requests at once instead of retrying", async () => {
    const client = new OpenAIClient({ endpoints: [fake.url], maxRetries: 50, timeoutMs: 60_000 });
    fake.faults.push("slow", "500");
    const pending = client.completeTokens([1], { model: "fake", maxTokens: 1 });
    const t0 = performance.now();
    setTimeout(() => client.cancel(), 100);
    await assert.rejects(pending, (e: Error & { code?: string }) => e.code === "INFERENCE_CANCELLED");
    assert.ok(performance.now() - t0 < 1500);
    fake.faults.length = 0;
  });
});
