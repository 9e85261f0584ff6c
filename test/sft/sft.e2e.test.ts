import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { SftConfigSchema } from "../../src/sft/config.js";
import { chatRows, tempDir, tinyCheckpoint, writeJsonl } from "./helpers.js";

// The CLI entry from source (tsx), so the test never runs a stale dist/ build.
const CLI = ["--import", "tsx", "src/cli/main.ts"];
const RESULT_RE = /^RESULT sft klear=(\d+\.\d{4}) peer=(\d+\.\d{4}) unit=heldout-nll ratio=(\d+\.\d{4})$/;

function klear(args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: "utf8", timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lastLine(s: string): string {
  return s.trim().split("\n").pop() ?? "";
}

function metricLines(runDir: string): Record<string, unknown>[] {
  const path = join(runDir, "metrics.jsonl");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return []; // a line being written
      }
    });
}

const withoutTimings = (ms: Record<string, unknown>[]) =>
  ms.map(({ tokensPerSecond: _t, stepSeconds: _s, ...rest }) => rest);

describe("klear sft (end to end)", () => {
  it("--help lists every config field", () => {
    const r = klear(["sft", "--help"]);
    assert.equal(r.code, 0, r.stderr);
    const walk = (shape: Record<string, unknown>, prefix: string): string[] =>
      Object.entries(shape).flatMap(([k, v]) => {
        const inner = v as {
          def?: { innerType?: { shape?: Record<string, unknown> } };
          shape?: Record<string, unknown>;
        };
        const s = inner.shape ?? inner.def?.innerType?.shape;
        return s ? walk(s, `${prefix}${k}.`) : [`--${prefix}${k}=`];
      });
    for (const flag of walk(SftConfigSchema.shape, ""))
      assert.ok(r.stdout.includes(flag), `--help lacks ${flag}`);
    assert.match(r.stdout, /klear-sft/);
    assert.match(r.stdout, /data\.sources entries/);
  });

  it("trains from --init on --data, and klear eval and klear rl start from its checkpoint", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir);
    const data = writeJsonl(join(dir, "train.jsonl"), chatRows("conversations", 40));
    const out = join(dir, "run");
    const r = klear([
      "sft",
      "--init",
      init,
      "--data",
      data,
      "--out",
      out,
      "--quiet",
      "--train.epochs=2",
      "--optimizer.lr=3e-3",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = RESULT_RE.exec(lastLine(r.stdout));
    assert.ok(m, r.stdout);
    assert.ok(Number(m[1]) < Number(m[2]), "held-out loss went down");
    const ckpts = join(out, "checkpoints");
    const step = Math.max(...metricLines(out).map((x) => x.step as number));
    const ckpt = join(ckpts, `step-${step}`);
    assert.ok(existsSync(join(ckpt, "model.safetensors")));

    const ev = klear([
      "eval",
      "--bench",
      "gsm8k",
      "--model-dir",
      ckpt,
      "--data",
      join(import.meta.dirname, "fixtures", "gsm8k-2.jsonl"),
      "--out",
      join(dir, "eval"),
      "--quiet",
      "--max-tokens",
      "8",
      "--n",
      "1",
      "--bootstrap",
      "10",
    ]);
    assert.equal(ev.code, 0, ev.stderr + ev.stdout);
    assert.ok(existsSync(join(dir, "eval", "results.json")));

    const rl = klear([
      "rl",
      "--init",
      ckpt,
      "--out",
      join(dir, "rl"),
      "--quiet",
      "--steps=1",
      "--rollout.genBatchPrompts=2",
      "--rollout.trainBatchPrompts=2",
      "--rollout.n=2",
      "--rollout.maxNewTokens=8",
      "--update.miniBatchPrompts=2",
      "--task.testSize=2",
      "--eval.maxNewTokens=8",
    ]);
    assert.equal(rl.code, 0, rl.stderr + rl.stdout);
    assert.match(lastLine(rl.stdout), /^RESULT rl /);
  });

  it("kill -9 during a step, then --resume: final weights and metrics equal an uninterrupted run's", async (t) => {
    const dir = tempDir(t);
    // Wide enough that a step takes a while, so the kill lands inside one.
    const init = await tinyCheckpoint(dir, { hiddenSize: 128, layers: 2 });
    const data = writeJsonl(join(dir, "train.jsonl"), chatRows("messages", 64));
    const args = (out: string) => [
      "sft",
      "--init",
      init,
      "--data",
      data,
      "--out",
      out,
      "--quiet",
      "--train.epochs=3",
      "--train.sequencesPerStep=2",
      "--train.microSequences=1",
      "--checkpointEvery=3",
      "--evalEvery=4",
    ];
    const whole = join(dir, "whole");
    const w = klear(args(whole));
    assert.equal(w.code, 0, w.stderr);

    const killed = join(dir, "killed");
    const child = spawn(process.execPath, [...CLI, ...args(killed)], { stdio: "ignore" });
    const exited = new Promise<NodeJS.Signals | null>((res) => child.on("exit", (_c, sig) => res(sig)));
    let steps = 0;
    for (let i = 0; i < 3000 && steps < 5; i++) {
      steps = metricLines(killed).filter((x) => x.phase === undefined).length;
      await sleep(10);
    }
    child.kill("SIGKILL");
    const signal = await exited;
    if (signal !== "SIGKILL") {
      t.diagnostic("the run finished before the kill arrived; resume not exercised");
      return;
    }
    const totalSteps = metricLines(whole).filter((x) => x.phase === undefined).length;
    assert.ok(steps < totalSteps, `killed after ${steps} of ${totalSteps} steps`);
    t.diagnostic(`killed after step ${steps} of ${totalSteps}`);

    const r = klear(["sft", "--out", killed, "--resume", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /resuming .* from step \d+/);
    assert.equal(lastLine(r.stdout), lastLine(w.stdout));
    const a = readFileSync(join(whole, "checkpoints", `step-${totalSteps}`, "model.safetensors"));
    const b = readFileSync(join(killed, "checkpoints", `step-${totalSteps}`, "model.safetensors"));
    assert.ok(a.equals(b), "final weights differ");
    const oa = readFileSync(join(whole, "checkpoints", `step-${totalSteps}`, "optimizer.safetensors"));
    const ob = readFileSync(join(killed, "checkpoints", `step-${totalSteps}`, "optimizer.safetensors"));
    assert.ok(oa.equals(ob), "final optimizer state differs");
    assert.deepEqual(withoutTimings(metricLines(killed)), withoutTimings(metricLines(whole)));
  });

  it("Ctrl-C stops at a step boundary with a checkpoint; --resume finishes the run", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir, { hiddenSize: 128, layers: 2 });
    const data = writeJsonl(join(dir, "train.jsonl"), chatRows("messages", 64));
    const out = join(dir, "run");
    const args = [
      "sft",
      "--init",
      init,
      "--data",
      data,
      "--out",
      out,
      "--quiet",
      "--train.epochs=3",
      "--train.sequencesPerStep=2",
      "--checkpointEvery=100",
    ];
    const child = spawn(process.execPath, [...CLI, ...args], { stdio: "pipe" });
    let stdout = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    for (let i = 0; i < 3000 && metricLines(out).filter((x) => x.phase === undefined).length < 2; i++)
      await sleep(10);
    child.kill("SIGINT");
    const code = await exited;
    if (code === 0) {
      t.diagnostic("the run finished before SIGINT arrived; resume not exercised");
      return;
    }
    assert.equal(code, 130, stdout);
    assert.match(stdout, /continue with: klear sft --out .* --resume/);
    const stoppedAt = Math.max(...metricLines(out).map((x) => x.step as number));
    assert.ok(existsSync(join(out, "checkpoints", `step-${stoppedAt}`)), "no checkpoint at the interruption");
    const r = klear(["sft", "--out", out, "--resume", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`resuming .* from step ${stoppedAt}`));
    assert.match(lastLine(r.stdout), RESULT_RE);
    const steps = metricLines(out)
      .filter((x) => x.phase === undefined)
      .map((x) => x.step);
    assert.deepEqual(
      steps,
      Array.from({ length: steps.length }, (_, i) => i + 1),
    );
  });

  it("names what is missing: no --init, no --data, --resume with --data", async (t) => {
    const dir = tempDir(t);
    const noInit = klear(["sft", "--out", join(dir, "a"), "--quiet", "--data", "x.jsonl"]);
    assert.equal(noInit.code, 1);
    assert.match(noInit.stderr, /--init CHECKPOINT_DIR/);
    const init = await tinyCheckpoint(dir);
    const noData = klear(["sft", "--init", init, "--out", join(dir, "b"), "--quiet"]);
    assert.equal(noData.code, 1);
    assert.match(noData.stderr, /--data FILE/);
    const both = klear(["sft", "--out", join(dir, "b"), "--resume", "--data", "x.jsonl"]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /--data would be ignored/);
  });
});
