import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadModel } from "../../src/model/checkpoint.js";
import { WeightVersions } from "../../src/rollout/handoff.js";
import { arithmeticSftCheckpoint } from "../../src/tasks/arithmetic.js";
import { SERVED_NAME, startVllm, type VllmUnderTest, vllmSkipReason } from "./vllm-harness.js";

/**
 * `klear rl` with its rollouts sampled on the real vLLM (CPU build): every step's weights handed over
 * and checked, reward raised as the local-engine run with the same seed raises it, and a server killed
 * mid-run and restarted on its old weights costs nothing but time (the step is sampled again).
 */

const CLI = ["--import", "tsx", "src/cli/main.ts"];
const ROOT = join(import.meta.dirname, "../..");
const skip = vllmSkipReason();
if (skip) console.log(`# SKIP test:server (klear rl on vLLM): ${skip}`);

function klear(args: string[], timeoutMs = 1_200_000) {
  const r = spawnSync(process.execPath, [...CLI, ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: timeoutMs,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function stepMetrics(runDir: string): Record<string, number>[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((m) => m.phase === undefined);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const gain = (ms: Record<string, number>[]) =>
  mean(ms.slice(-10).map((m) => m.rewardMean)) - mean(ms.slice(0, 10).map((m) => m.rewardMean));

describe("klear rl with rollouts from vLLM", { skip: skip ?? false, timeout: 1_500_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), "klear-rl-server-"));
  let init = "";
  let vllm: VllmUnderTest;
  const serverFlags = () => [
    "--rollout.backend=server",
    `--rollout.server.endpoints=${vllm.url}`,
    `--rollout.server.model=${SERVED_NAME}`,
  ];

  // The e2e suite's starting policy (arithmeticSftCheckpoint: a tiny model SFT'd on a noisy teacher), with head_dim 32 for vLLM's
  // CPU attention; the server starts on a weights-only copy (a training checkpoint also holds AdamW's state).
  before(async () => {
    init = await arithmeticSftCheckpoint(join(root, "sft"), {
      heldOutSize: 50,
      model: { headDim: 32 },
      quiet: true,
    });
    assert.ok(existsSync(join(init, "config.json")));
    const { model, tokenizer } = await loadModel(init);
    const served = await new WeightVersions({ dir: join(root, "serve") }).write(model, tokenizer, 0);
    vllm = process.env.KLEAR_TEST_RL_VLLM_URL
      ? {
          url: process.env.KLEAR_TEST_RL_VLLM_URL,
          modelDir: served,
          dir: root,
          kill: null,
          restart: null,
          stop: async () => {},
        }
      : await startVllm({ modelDir: served });
  });
  after(() => vllm?.stop());

  test("every step's weights reach the server, and reward rises as in the local run with the same seed", () => {
    const local = join(root, "rl-local");
    const served = join(root, "rl-server");
    const t0 = Date.now();
    const a = klear(["rl", "--init", init, "--out", local, "--quiet", "--steps=30", "--seed=2"]);
    assert.equal(a.code, 0, a.stderr);
    const t1 = Date.now();
    const b = klear([
      "rl",
      "--init",
      init,
      "--out",
      served,
      "--quiet",
      "--steps=30",
      "--seed=2",
      ...serverFlags(),
    ]);
    assert.equal(b.code, 0, b.stderr);
    const t2 = Date.now();
    assert.match(b.stdout, /^RESULT rl klear=/m);
    const ml = stepMetrics(local);
    const ms = stepMetrics(served);
    assert.equal(ms.length, 30);
    ms.forEach((m, i) => {
      assert.equal(m.servedVersion, i, `step ${i + 1} sampled from version ${m.servedVersion}`);
      assert.equal(m.staleness, 0);
      assert.ok(m.versionProbeMaxDiff <= 1e-3, `step ${i + 1}: probe differs by ${m.versionProbeMaxDiff}`);
      // Sampler (vLLM, fp32) and trainer (klear) log-probs of the same tokens.
      assert.ok(m.logprobDiffMax < 1e-3, `step ${i + 1}: logprobDiffMax ${m.logprobDiffMax}`);
    });
    const worst = Math.max(...ms.map((m) => m.logprobDiffMax));
    const reload = mean(ms.map((m) => m.handoffWriteMs + m.handoffReloadMs));
    console.log(
      `# local: reward gain ${gain(ml).toFixed(3)} in ${((t1 - t0) / 1000).toFixed(0)} s; vLLM: gain ${gain(ms).toFixed(3)} in ${((t2 - t1) / 1000).toFixed(0)} s, hand-off ${reload.toFixed(0)} ms/step, logprobDiffMax ≤ ${worst.toExponential(1)}`,
    );
    assert.ok(gain(ml) > 0.05, `the local run should learn (gain ${gain(ml)})`);
    assert.ok(gain(ms) > 0.05, `the server run should learn like the local one (gain ${gain(ms)})`);
  });

  test("killing the server mid-run and restarting it on old weights: the run finishes, no step trained twice", async (t) => {
    if (!vllm.kill || !vllm.restart) return t.skip("reusing an outside server");
    const out = join(root, "rl-kill");
    const steps = 8;
    const child = spawn(
      process.execPath,
      [
        ...CLI,
        "rl",
        "--init",
        init,
        "--out",
        out,
        "--quiet",
        `--steps=${steps}`,
        ...serverFlags(),
        "--rollout.server.maxRetries=2000",
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((done) => child.on("exit", done));
    const metricsFile = join(out, "metrics.jsonl");
    const deadline = Date.now() + 600_000;
    while (!(existsSync(metricsFile) && stepMetrics(out).length >= 2)) {
      assert.ok(Date.now() < deadline, "the run did not reach step 2");
      await new Promise((r) => setTimeout(r, 500));
    }
    await vllm.kill();
    await vllm.restart();
    assert.equal(await exited, 0, stderr);
    const ms = stepMetrics(out);
    assert.deepEqual(
      ms.map((m) => m.step),
      Array.from({ length: steps }, (_, i) => i + 1),
    );
    ms.forEach((m, i) => {
      assert.equal(m.servedVersion, i);
      assert.ok(
        m.logprobDiffMax < 1e-3,
        `step ${i + 1} trained on samples from other weights (${m.logprobDiffMax})`,
      );
    });
  });
});
