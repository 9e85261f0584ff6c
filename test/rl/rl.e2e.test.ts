import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { RunDatabase } from "../../src/store/samples.js";
import { arithmeticSftCheckpoint } from "../../src/tasks/arithmetic.js";

// The CLI entry from source (tsx), so the test never runs a stale dist/ build.
const CLI = ["--import", "tsx", "src/cli/main.ts"];
const RESULT_RE = /^RESULT rl klear=(\d\.\d{4}) peer=(\d\.\d{4}) unit=accuracy ratio=(\d+\.\d{4})$/;
const root = mkdtempSync(join(tmpdir(), "klear-rl-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));

function klear(args: string[]) {
  // Generous: the machine may be shared; the test measures learning, not speed.
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: "utf8", timeout: 900_000 });
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

describe("klear rl (end to end)", () => {
  let init = "";

  // A briefly supervised policy: the demo's model, untied embeddings, trained on a teacher that gets one
  // step wrong half the time, so its samples are right about half the time and RL has something to fix.
  before(async () => {
    // 300 steps × 32 rows, teacher noise 0.5, the d96 × 2 untied model (arithmeticSftCheckpoint's defaults).
    init = await arithmeticSftCheckpoint(join(root, "sft"), { heldOutSize: 50, quiet: true });
    assert.ok(existsSync(join(init, "config.json")), `no checkpoint at ${init}`);
  });

  it("GPPO on the arithmetic task raises the mean reward and ends with one RESULT line", () => {
    const out = join(root, "rl");
    const r = klear(["rl", "--init", init, "--out", out, "--quiet", "--steps=30"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[lines.length - 1], RESULT_RE);
    assert.equal(lines.filter((l) => l.startsWith("RESULT")).length, 1);

    const steps = stepMetrics(out);
    assert.equal(steps.length, 30);
    const first = mean(steps.slice(0, 10).map((m) => m.rewardMean));
    const last = mean(steps.slice(-10).map((m) => m.rewardMean));
    assert.ok(last > first + 0.05, `mean reward did not rise: first 10 steps ${first}, last 10 ${last}`);
    for (const m of steps) {
      assert.ok(m.logprobDiffMax < 1e-3, `sampler and trainer log-probs differ by ${m.logprobDiffMax}`);
      assert.ok(m.optimizerSteps >= 1 || m.skipped, `step ${m.step} made no update`);
    }
    assert.ok(existsSync(join(out, "checkpoints", "step-30", "optimizer.safetensors")));
    const db = RunDatabase.open(join(out, "samples.sqlite"));
    try {
      assert.equal(db.samples({ kind: "rollout", step: 30 }).length, 32 * 8);
    } finally {
      db.close();
    }
  });

  it("Ctrl-C stops at a step boundary with a checkpoint, and --resume finishes the run", async (t) => {
    const out = join(root, "interrupted");
    const args = [
      "rl",
      "--init",
      init,
      "--out",
      out,
      "--quiet",
      "--steps=8",
      "--checkpointEvery=100",
      "--task.testSize=8",
    ];
    const child = spawn(process.execPath, [...CLI, ...args], { stdio: "pipe" });
    let stdout = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    for (let i = 0; i < 1200; i++) {
      if (existsSync(join(out, "metrics.jsonl")) && stepMetrics(out).length >= 2) break;
      await sleep(50);
    }
    child.kill("SIGINT");
    const code = await exited;
    if (code === 0) {
      assert.match(stdout.trim().split("\n").pop() ?? "", RESULT_RE);
      t.diagnostic("the run finished before SIGINT arrived; resume not exercised");
      return;
    }
    assert.equal(code, 130, stdout);
    assert.match(stdout, /continue with: klear rl --out .* --resume/);
    const stoppedAt = Math.max(...stepMetrics(out).map((m) => m.step));
    t.diagnostic(`interrupted at step ${stoppedAt} of 8`);
    assert.ok(existsSync(join(out, "checkpoints", `step-${stoppedAt}`)), "no checkpoint at the interruption");

    const r = klear(["rl", "--out", out, "--resume", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`resuming .* from step ${stoppedAt}`));
    assert.match(r.stdout.trim().split("\n").pop() ?? "", RESULT_RE);
    assert.deepEqual(
      stepMetrics(out).map((m) => m.step),
      Array.from({ length: 8 }, (_, i) => i + 1),
    );
  });

  it("names what is missing: no --init, and --resume without --out", () => {
    const noInit = klear(["rl", "--out", join(root, "no-init"), "--quiet"]);
    assert.equal(noInit.code, 1);
    assert.match(noInit.stderr, /needs the policy to start from/);
    assert.match(noInit.stderr, /--init CHECKPOINT_DIR/);
    const help = klear(["rl", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--loss\.name="gppo"/);
    assert.match(help.stdout, /klear-math/);
    const noOut = klear(["rl", "--resume"]);
    assert.equal(noOut.code, 1);
    assert.match(noOut.stderr, /--resume needs --out/);
  });
});
