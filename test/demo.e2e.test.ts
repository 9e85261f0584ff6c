import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { RunDatabase } from "../src/store/samples.js";

// The CLI entry from source (tsx), so the test never runs a stale dist/ build.
const CLI = ["--import", "tsx", "src/cli/main.ts"];
const RESULT_RE = /^RESULT demo klear=(\d\.\d{4}) peer=(\d\.\d{4}) unit=accuracy ratio=(\d+\.\d{3})$/;
const RL_RESULT_RE = /^RESULT demo-rl klear=(\d\.\d{4}) peer=(\d\.\d{4}) unit=accuracy ratio=(\d+\.\d{3})$/;
const root = mkdtempSync(join(tmpdir(), "klear-demo-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));

function klear(args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function metricSteps(runDir: string): number[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((m) => typeof m.loss === "number")
    .map((m) => m.step);
}

describe("klear demo (end to end)", () => {
  it("runs SFT then RL, writes both run directories, and ends with the two RESULT lines", () => {
    const out = join(root, "smoke");
    const r = klear(["demo", "--preset", "smoke", "--out", out, "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[lines.length - 2], RL_RESULT_RE);
    assert.match(lines[lines.length - 1], RESULT_RE);
    assert.equal(lines.filter((l) => l.startsWith("RESULT")).length, 2);
    // demo-rl's peer (after SFT) and demo's klear (after RL) are the accuracies the summary reports.
    const rlLine = RL_RESULT_RE.exec(lines[lines.length - 2])!;
    const demoLine = RESULT_RE.exec(lines[lines.length - 1])!;
    assert.equal(rlLine[1], demoLine[1]);
    assert.match(r.stdout, /loss: first \d+\.\d+ → last \d+\.\d+ over 6 steps/);
    assert.match(r.stdout, /held-out accuracy after SFT: \d\.\d{4}/);
    assert.match(r.stdout, /held-out accuracy after RL: \d\.\d{4}/);
    assert.match(r.stdout, /samples from .*rl[/\\]checkpoints[/\\]step-2/);

    for (const f of ["config.json", "metrics.jsonl", "samples.sqlite", "result.json", "sft_result.json"]) {
      assert.ok(existsSync(join(out, f)), `missing ${f}`);
    }
    assert.deepEqual(readdirSync(join(out, "checkpoints")).sort(), ["step-3", "step-6"]);
    const ckpt = readdirSync(join(out, "checkpoints", "step-6")).sort();
    for (const f of [
      "config.json",
      "model.safetensors",
      "tokenizer.json",
      "optimizer.safetensors",
      "trainer_state.json",
    ]) {
      assert.ok(ckpt.includes(f), `checkpoint lacks ${f}`);
    }
    assert.deepEqual(metricSteps(out), [1, 2, 3, 4, 5, 6]);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(config.train.steps, 6);
    assert.equal(config.rl.steps, 2);
    const db = RunDatabase.open(join(out, "samples.sqlite"));
    try {
      assert.equal(db.samples({ kind: "eval", step: 0 }).length, 8);
      assert.equal(db.samples({ kind: "eval", step: 6 }).length, 8);
      assert.equal(db.samples({ kind: "sample" }).length, 2);
    } finally {
      db.close();
    }

    // Phase 2: a `klear rl` run directory of its own, started from the SFT checkpoint.
    const rlDir = join(out, "rl");
    for (const f of ["config.json", "metrics.jsonl", "samples.sqlite", "result.json"]) {
      assert.ok(existsSync(join(rlDir, f)), `missing rl/${f}`);
    }
    assert.deepEqual(readdirSync(join(rlDir, "checkpoints")).sort(), ["step-1", "step-2"]);
    const rlConfig = JSON.parse(readFileSync(join(rlDir, "config.json"), "utf8"));
    assert.equal(rlConfig.init, join(out, "checkpoints", "step-6"));
    assert.equal(rlConfig.task.testSize, 8);
    const result = JSON.parse(readFileSync(join(out, "result.json"), "utf8"));
    assert.equal(result.rl.steps, 2);
    assert.equal(result.checkpoint, join(rlDir, "checkpoints", "step-2"));
  });

  it("--rl.steps=0 is the supervised demo alone", () => {
    const out = join(root, "sft-only");
    const r = klear(["demo", "--preset", "smoke", "--rl.steps=0", "--out", out, "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[lines.length - 1], RESULT_RE);
    assert.equal(lines.filter((l) => l.startsWith("RESULT")).length, 1);
    assert.match(r.stdout, /samples from .*checkpoints[/\\]step-6/);
    assert.ok(!existsSync(join(out, "rl")), "an RL run directory without RL");
  });

  it("an interrupted run resumes across the phase boundary to the same weights", async (t) => {
    // Reference: the same config, uninterrupted.
    const ref = join(root, "ref");
    const args = [
      "--preset",
      "smoke",
      "--train.steps=40",
      "--train.checkpointEvery=5",
      "--rl.steps=3",
      "--quiet",
    ];
    assert.equal(klear(["demo", ...args, "--out", ref]).code, 0);

    const out = join(root, "interrupted");
    const child = spawn(process.execPath, [...CLI, "demo", ...args, "--out", out], { stdio: "pipe" });
    let stdout = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    // Interrupt once a few steps are logged (the smoke model runs dozens of steps a second).
    for (let i = 0; i < 600; i++) {
      if (existsSync(join(out, "metrics.jsonl")) && metricSteps(out).length >= 3) break;
      await sleep(50);
    }
    child.kill("SIGINT");
    const code = await exited;
    if (code === 0) {
      // The run finished before the signal landed (a very fast machine): nothing to resume.
      assert.match(stdout, RESULT_RE);
      t.diagnostic("the run finished before SIGINT arrived; resume not exercised");
      return;
    }
    assert.equal(code, 130, stdout);
    assert.match(stdout, /continue with: klear demo --out .* --resume/);
    assert.ok(!existsSync(join(out, "rl")), "RL started before SFT finished");
    const stoppedAt = Math.max(...metricSteps(out));
    t.diagnostic(`interrupted at step ${stoppedAt} of 40`);
    assert.ok(existsSync(join(out, "checkpoints", `step-${stoppedAt}`)), "no checkpoint at the interruption");

    // Resuming finishes SFT, then runs the whole RL phase.
    const r = klear(["demo", "--out", out, "--resume", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`resuming .* from step ${stoppedAt}`));
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[lines.length - 2], RL_RESULT_RE);
    assert.match(lines[lines.length - 1], RESULT_RE);
    assert.deepEqual(
      metricSteps(out),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    const weights = (dir: string, step: number) =>
      readFileSync(join(dir, "checkpoints", `step-${step}`, "model.safetensors"));
    assert.ok(
      weights(out, 40).equals(weights(ref, 40)),
      "resumed SFT weights differ from an uninterrupted run",
    );
    assert.ok(
      weights(join(out, "rl"), 3).equals(weights(join(ref, "rl"), 3)),
      "RL after a resumed SFT differs from an uninterrupted run",
    );
    assert.equal(
      lines[lines.length - 1],
      klear(["demo", "--out", ref, "--resume", "--quiet"]).stdout.trim().split("\n").pop(),
    );
  });

  it("bad flags are clear errors", () => {
    const r = klear(["demo", "--train.stepz=3"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown config key "train\.stepz"/);
    const r2 = klear(["demo", "--resume"]);
    assert.match(r2.stderr, /--resume needs --out/);
    const r3 = klear(["demo", "--out", join(root, "smoke"), "--preset", "smoke"]);
    assert.match(r3.stderr, /already holds a run/);
  });
});
