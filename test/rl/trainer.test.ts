import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeParquetFromJsonl } from "../../src/data/io.js";
import { loadModel, saveCheckpoint } from "../../src/model/checkpoint.js";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer } from "../../src/model/tokenizer.js";
import { BWRAP_PATH, PYTHON_PATH } from "../../src/rewards/code/local.js";
import { rlPolicyLossConfig, rlResolvedLossConfig } from "../../src/rl/loss-options.js";
import { POLICY_LOSS_NAMES } from "../../src/rl/objectives/config.js";
import { codeRlTask, mathRlTask } from "../../src/rl/row-tasks.js";
import type { RlScorer } from "../../src/rl/task.js";
import { runRl } from "../../src/rl/trainer.js";
import { parseRlConfig, type RlConfig, resolveRlConfig } from "../../src/rl/trainer-config.js";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { RunDatabase } from "../../src/store/samples.js";
import { rlTaskFromConfig } from "../../src/tasks/rl-tasks.js";

const root = mkdtempSync(join(tmpdir(), "klear-rl-trainer-"));
after(() => rmSync(root, { recursive: true, force: true }));
let initDir = "";
let runCount = 0;

// A random tiny policy: its responses are noise, so the reward below decides everything.
before(async () => {
  const tokenizer = new ByteTokenizer({
    addedTokens: [{ content: "<|endoftext|>", special: true }],
    eosToken: "<|endoftext|>",
  });
  const config = tinyQwen3Config({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 16,
    numHiddenLayers: 1,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    headDim: 8,
    intermediateSize: 32,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 64,
  });
  initDir = join(root, "init");
  await saveCheckpoint(initDir, Qwen3Model.create(config, { seed: 3 }), tokenizer);
});

/** About half the responses "correct", decided by a hash of the text, so every group has variance. */
const hashScorer: RlScorer = (_prompt, response) => {
  let h = 2166136261;
  for (let i = 0; i < response.length; i++) h = Math.imul(h ^ response.charCodeAt(i), 16777619) >>> 0;
  const correct = (h & 1) === 1;
  return { reward: correct ? 1 : -1, correct };
};

function smallConfig(overrides: Record<string, string> = {}): RlConfig {
  return resolveRlConfig({
    overrides: {
      steps: "2",
      "task.testSize": "4",
      "rollout.genBatchPrompts": "4",
      "rollout.trainBatchPrompts": "4",
      "rollout.n": "4",
      "rollout.maxNewTokens": "6",
      "update.miniBatchPrompts": "2",
      "update.microBatchSize": "5",
      "eval.maxNewTokens": "4",
      "optimizer.lr": "0.01",
      "optimizer.weightDecay": "0",
      "optimizer.warmupSteps": "1",
      checkpointEvery: "1",
      ...overrides,
    },
  });
}

function newOut(name: string): string {
  return join(root, `${name}-${runCount++}`);
}

async function weights(dir: string): Promise<Map<string, Float32Array>> {
  const { model } = await loadModel(dir);
  return new Map([...model.parameters()].map(([k, p]) => [k, p.data.slice()]));
}

describe("runRl: every loss updates every parameter", () => {
  for (const name of POLICY_LOSS_NAMES) {
    it(`${name}: two steps change every trainable tensor`, async () => {
      const out = newOut(name);
      const result = await runRl({
        task: rlTaskFromConfig,
        config: smallConfig({ "loss.name": name }),
        out,
        init: initDir,
        quiet: true,
        log: () => {},
        scorer: hashScorer,
      });
      assert.equal(result.steps, 2);
      const beforeW = await weights(initDir);
      const afterW = await weights(result.checkpoint);
      for (const [k, w0] of beforeW) {
        const w1 = afterW.get(k);
        assert.ok(w1, `${k} missing after RL`);
        assert.ok(
          w1.some((v, i) => v !== w0[i]),
          `${name}: parameter ${k} did not change`,
        );
      }
      const steps = readMetrics(runPaths(out)).filter((m) => m.phase === undefined);
      assert.equal(steps.length, 2);
      for (const m of steps) {
        // Mini-batches of 2 prompts × 4 responses: one optimizer step per 8 surviving responses.
        assert.equal(m.optimizerSteps, Math.ceil((m.trajectories as number) / 8));
        for (const key of [
          "rewardMean",
          "accuracy",
          "clipFracHigh",
          "clipFracLow",
          "boundedGradFrac",
          "approxKlK3",
          "entropy",
          "responseLengthMean",
          "gradNorm",
          "lr",
          "logprobDiffMax",
        ]) {
          assert.equal(typeof m[key], "number", `${name}: metric ${key}`);
          assert.ok(Number.isFinite(m[key] as number), `${name}: metric ${key} = ${m[key]}`);
        }
        // The trainer recomputes what the sampler saw with the same weights: only float noise apart.
        assert.ok((m.logprobDiffMax as number) < 1e-3, `logprobDiffMax ${m.logprobDiffMax}`);
      }
    });
  }
});

describe("runRl: gradient accumulation and optional terms", () => {
  it("the micro-batch size does not change the update (whole-mini-batch normalisers)", async () => {
    const run = async (micro: string) =>
      runRl({
        task: rlTaskFromConfig,
        config: smallConfig({ steps: "1", "update.microBatchSize": micro }),
        out: newOut(`micro-${micro}`),
        init: initDir,
        quiet: true,
        log: () => {},
        scorer: hashScorer,
      });
    const whole = await weights((await run("64")).checkpoint);
    const split = await weights((await run("3")).checkpoint);
    for (const [k, a] of whole) {
      const b = split.get(k) as Float32Array;
      for (let i = 0; i < a.length; i++) {
        // float32 sums in another order: rounding only.
        assert.ok(Math.abs(a[i] - b[i]) <= 1e-5, `${k}[${i}]: ${a[i]} vs ${b[i]}`);
      }
    }
  });

  for (const [what, overrides] of [
    ["entropy bonus", { "loss.entropyCoeff": "0.01" }],
    ["truncated IS", { "loss.tisCap": "2" }],
    ["ERC", { "loss.entropyRatioClip": "[0.95, 1.05]" }],
    ["KL to the initial policy", { "loss.klCoeff": "0.1" }],
    ["soft overlong punishment", { "overlong.softPunishment": "true", "overlong.bufferTokens": "3" }],
    ["two ppo epochs", { "update.ppoEpochs": "2" }],
  ] as const) {
    it(`${what}: a step runs and logs finite metrics`, async () => {
      const out = newOut(what.replace(/\W+/g, "-"));
      await runRl({
        task: rlTaskFromConfig,
        config: smallConfig({ steps: "1", ...overrides }),
        out,
        init: initDir,
        quiet: true,
        log: () => {},
        scorer: hashScorer,
      });
      const [m] = readMetrics(runPaths(out)).filter((r) => r.phase === undefined);
      for (const key of ["pgLoss", "gradNorm", "approxKlK3", "klLoss"]) {
        assert.ok(Number.isFinite(m[key] as number), `${what}: ${key} = ${m[key]}`);
      }
    });
  }
});

it("the overlong filter drops truncated responses before the group filter", async () => {
  const out = newOut("overlong");
  await runRl({
    task: rlTaskFromConfig,
    config: smallConfig({ steps: "1", "overlong.filter": "true" }),
    out,
    init: initDir,
    quiet: true,
    log: () => {},
    scorer: hashScorer,
  });
  const [m] = readMetrics(runPaths(out)).filter((r) => r.phase === undefined);
  // A random policy rarely samples EOS within 6 tokens: what was cut off is exactly what was dropped.
  assert.equal(m.overlongDropped, Math.round((m.truncatedFrac as number) * 16));
  assert.ok((m.overlongDropped as number) > 0);
});

describe("runRl: resume", () => {
  it("an interrupted and resumed run logs exactly what an uninterrupted one does", async () => {
    const config = smallConfig({ steps: "4", checkpointEvery: "2" });
    const straight = newOut("straight");
    const a = await runRl({
      task: rlTaskFromConfig,
      config,
      out: straight,
      init: initDir,
      quiet: true,
      log: () => {},
      scorer: hashScorer,
    });

    const split = newOut("split");
    let calls = 0;
    const first = await runRl({
      task: rlTaskFromConfig,
      config,
      out: split,
      init: initDir,
      quiet: true,
      log: () => {},
      scorer: hashScorer,
      // Checked before each step: stop before step 3, i.e. after 2 steps.
      shouldStop: () => ++calls > 2,
    });
    assert.equal(first.interrupted, true);
    assert.equal(first.steps, 2);
    // A torn metrics line beyond the checkpoint (a crash mid-step) must not survive the resume.
    writeFileSync(
      runPaths(split).metrics,
      `${readFileSync(runPaths(split).metrics, "utf8")}{"step": 3, "rewa`,
    );
    const b = await runRl({
      task: rlTaskFromConfig,
      config,
      out: split,
      resume: true,
      quiet: true,
      log: () => {},
      scorer: hashScorer,
    });
    assert.equal(b.interrupted, false);
    assert.equal(b.steps, 4);

    const strip = (dir: string) =>
      readMetrics(runPaths(dir)).map((m) => {
        const { stepSeconds: _drop, ...rest } = m;
        return rest;
      });
    assert.deepEqual(strip(split), strip(straight));
    assert.equal(b.accuracyAfter, a.accuracyAfter);
    const wa = await weights(a.checkpoint);
    const wb = await weights(b.checkpoint);
    for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, `weights of ${k} differ after resume`);

    const db = RunDatabase.open(runPaths(split).database);
    try {
      const rollouts = db.samples({ kind: "rollout" });
      assert.equal(rollouts.length, 4 * 4 * 4, "4 steps × 4 prompts × 4 responses, none duplicated");
    } finally {
      db.close();
    }
  });
});

describe("runRl: group filter", () => {
  it("drops groups whose responses are all correct: no update, a skipped step", async () => {
    const out = newOut("all-correct");
    const result = await runRl({
      task: rlTaskFromConfig,
      config: smallConfig({ steps: "1" }),
      out,
      init: initDir,
      quiet: true,
      log: () => {},
      scorer: () => ({ reward: 1, correct: true }),
    });
    const [m] = readMetrics(runPaths(out)).filter((r) => r.phase === undefined);
    assert.equal(m.skipped, true);
    assert.equal(m.droppedAllCorrect, 4);
    assert.equal(m.trajectories, 0);
    const w0 = await weights(initDir);
    const w1 = await weights(result.checkpoint);
    for (const [k, v] of w0) assert.deepEqual(w1.get(k), v, `${k} changed without an update`);
  });

  it("dynamic sampling generates again until the batch is full (maxGenBatches 0)", async () => {
    const out = newOut("refill");
    await runRl({
      task: rlTaskFromConfig,
      config: smallConfig({
        steps: "1",
        "rollout.genBatchPrompts": "2",
        "rollout.trainBatchPrompts": "4",
        "rollout.maxGenBatches": "0",
      }),
      out,
      init: initDir,
      quiet: true,
      log: () => {},
      scorer: hashScorer,
    });
    const [m] = readMetrics(runPaths(out)).filter((r) => r.phase === undefined);
    assert.ok((m.genBatches as number) >= 2, `genBatches ${m.genBatches}`);
    assert.equal(m.trajectories, 16, "4 prompts × 4 responses, the first survivors in order");
    assert.equal(m.promptsGenerated, 2 * (m.genBatches as number));
  });

  it("with the filter off, every group is trained on", async () => {
    const out = newOut("no-filter");
    await runRl({
      task: rlTaskFromConfig,
      config: smallConfig({ steps: "1", "groupFilter.enabled": "false" }),
      out,
      init: initDir,
      quiet: true,
      log: () => {},
      scorer: () => ({ reward: -1, correct: false }),
    });
    const [m] = readMetrics(runPaths(out)).filter((r) => r.phase === undefined);
    assert.equal(m.trajectories, 16);
    assert.equal(m.optimizerSteps, 2);
  });
});

describe("rl config", () => {
  it("the klear-math and klear-code presets carry the recipe's numbers", () => {
    const math = resolveRlConfig({ preset: "klear-math" });
    assert.equal(math.loss.name, "gppo");
    assert.equal(math.optimizer.lr, 1e-6);
    assert.equal(math.optimizer.warmupSteps, 10);
    assert.equal(math.optimizer.weightDecay, 0.1);
    assert.equal(math.update.miniBatchPrompts, 16);
    assert.equal(math.rollout.trainBatchPrompts, 128);
    assert.equal(math.rollout.genBatchPrompts, 256);
    assert.equal(math.rollout.n, 8);
    assert.equal(math.rollout.maxNewTokens, 32768);
    assert.equal(math.loss.sftAlpha, 0.1);
    assert.equal(math.groupFilter.metric, "acc");
    const loss = rlResolvedLossConfig(math);
    assert.equal(loss.aggregation, "token-mean");
    assert.equal(loss.klCoeff, 0);
    assert.equal(loss.epsLow, 0.2);
    assert.equal(loss.epsHigh, 0.28);
    assert.equal(loss.clipRatioC, 10);
    assert.equal(loss.beta1, 1);
    assert.equal(loss.beta2, 1);
    const code = resolveRlConfig({ preset: "klear-code" });
    assert.equal(code.optimizer.lr, 5e-7);
    assert.equal(code.update.miniBatchPrompts, 32);
    assert.equal(code.task.kind, "code");
  });

  it("layers preset → config file → overrides, and names a bad file", () => {
    const file = join(root, "rl-config.json");
    writeFileSync(file, JSON.stringify({ loss: { name: "cispo" }, optimizer: { lr: 5e-5 }, steps: 7 }));
    const c = resolveRlConfig({
      preset: "klear-math",
      configFile: file,
      overrides: { "optimizer.lr": "2e-5" },
    });
    assert.equal(c.loss.name, "cispo");
    assert.equal(c.optimizer.lr, 2e-5, "overrides win over the file");
    assert.equal(c.steps, 7);
    assert.equal(c.update.miniBatchPrompts, 16, "the preset shows through");
    writeFileSync(file, "{ not json");
    assert.throws(() => resolveRlConfig({ configFile: file }), /cannot read rl config/);
    writeFileSync(file, JSON.stringify({ loss: { nmae: "gppo" } }));
    assert.throws(() => resolveRlConfig({ configFile: file }), /rl-config\.json: rl config field "loss"/);
  });

  it("names a mistyped key, a bad value and an unfillable batch", () => {
    assert.throws(
      () => resolveRlConfig({ overrides: { "loss.nmae": "gppo" } }),
      /unknown config key "loss.nmae"/,
    );
    assert.throws(() => resolveRlConfig({ overrides: { "loss.name": "grpo" } }), /loss\.name/);
    assert.throws(
      () => resolveRlConfig({ overrides: { "rollout.trainBatchPrompts": "64" } }),
      /trainBatchPrompts \(64\) exceeds/,
    );
    assert.throws(() => parseRlConfig({ steps: 0 }, "x.json"), /x\.json: rl config field "steps"/);
  });

  it("options a loss does not take are left out of its config", () => {
    const cispo = rlPolicyLossConfig(
      resolveRlConfig({ overrides: { "loss.name": "cispo", "loss.clipRatioC": "3" } }),
    );
    assert.equal(cispo.clipRatioC, undefined);
    assert.equal(cispo.beta1, undefined);
  });

  it("refuses to start without --init, and a math task without rows", async () => {
    await assert.rejects(
      runRl({
        config: smallConfig(),
        task: rlTaskFromConfig,
        out: newOut("no-init"),
        quiet: true,
        log: () => {},
      }),
      /needs the policy to start from/,
    );
    await assert.rejects(
      runRl({
        task: rlTaskFromConfig,
        config: smallConfig({ "task.kind": "math" }),
        out: newOut("no-rows"),
        init: initDir,
        quiet: true,
        log: () => {},
      }),
      /task\.trainFile is empty/,
    );
  });

  it("a code task reads verl rows and scores responses in the sandbox (soft reward, think gate)", async (t) => {
    if (!existsSync(BWRAP_PATH) || !existsSync(PYTHON_PATH)) {
      t.skip(`code sandbox not available (${BWRAP_PATH}, ${PYTHON_PATH})`);
      return;
    }
    const rows = join(root, "code-rows.jsonl");
    const gt = JSON.stringify({ inputs: ["1 2\n", "5 7\n"], outputs: ["3\n", "12\n"] });
    const lines = Array.from({ length: 3 }, (_, i) =>
      JSON.stringify({
        prompt: [{ role: "user", content: `Add two numbers (${i}).` }],
        reward_model: { ground_truth: gt },
      }),
    );
    writeFileSync(rows, `${lines.join("\n")}\n`);
    const config = smallConfig({ "task.kind": "code", "task.trainFile": rows, "task.testSize": "1" });
    const tokenizer = (await loadModel(initDir)).tokenizer;
    const task = await codeRlTask({ config, tokenizer });
    const [prompt] = task.prompts(0, 1);
    const program = "a, b = map(int, input().split())\nprint(a + b)";
    const ctx = { seed: 0 };
    const right = await task.score(prompt, `<think>sum</think>\n\`\`\`python\n${program}\n\`\`\``, ctx);
    assert.deepEqual(right, { reward: 1, correct: true });
    const half = await task.score(prompt, "<think>x</think>\n```python\nprint(3)\n```", ctx);
    assert.deepEqual(half, { reward: 0, correct: false }, "one of two tests: 2·0.5 − 1");
    const noThink = await task.score(prompt, `\`\`\`python\n${program}\n\`\`\``, ctx);
    assert.equal(noThink.reward, -0.5, "Klear's think gate: no </think> → −0.5");
  });

  it("a math task reads verl rows and scores them with scoreResponse", async () => {
    const rows = join(root, "rows.jsonl");
    const lines = Array.from({ length: 12 }, (_, i) =>
      JSON.stringify({
        prompt: [{ role: "user", content: `What is ${i}+1?` }],
        reward_model: { ground_truth: String(i + 1), style: "rule" },
      }),
    );
    writeFileSync(rows, `${lines.join("\n")}\n`);
    const out = newOut("math");
    const result = await runRl({
      task: rlTaskFromConfig,
      config: smallConfig({ steps: "1", "task.kind": "math", "task.trainFile": rows }),
      out,
      init: initDir,
      quiet: true,
      log: () => {},
    });
    assert.equal(result.steps, 1);
    const [m] = readMetrics(runPaths(out)).filter((r) => r.phase === undefined);
    // A random policy never closes </think>: Klear's reward is −0.5 for all, so every group is dropped.
    assert.equal(m.rewardMean, -0.5);
    assert.equal(m.droppedAllWrong, 4);
  });

  it("a row task reads verl parquet (as klear data convert writes it) exactly as its jsonl", async () => {
    const jsonl = join(root, "parquet-rows.jsonl");
    const lines = Array.from({ length: 6 }, (_, i) =>
      JSON.stringify({
        data_source: "test",
        prompt: [{ role: "user", content: `What is ${i}+2?` }],
        ability: "math",
        reward_model: { ground_truth: String(i + 2), style: "rule" },
      }),
    );
    writeFileSync(jsonl, `${lines.join("\n")}\n`);
    const parquet = join(root, "parquet-rows.parquet");
    await writeParquetFromJsonl(jsonl, parquet);
    const tokenizer = (await loadModel(initDir)).tokenizer;
    const taskOf = (file: string) =>
      mathRlTask({
        config: smallConfig({ "task.kind": "math", "task.trainFile": file, "task.testSize": "2" }),
        tokenizer,
      });
    const [a, b] = await Promise.all([taskOf(jsonl), taskOf(parquet)]);
    const view = (t: typeof a) => [...t.heldOut, ...t.prompts(0, 8)].map((p) => [p.text, p.answer]);
    assert.deepEqual(view(b), view(a));
    const [p] = b.heldOut;
    assert.equal((await b.score(p, `<think>x</think> \\boxed{${p.answer}}`, { seed: 0 })).correct, true);
  });
});
