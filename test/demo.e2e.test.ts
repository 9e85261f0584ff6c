import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

// `klear demo` (the recipe demo) through the CLI on its smoke preset: the plumbing, fast. The learning is
// test/recipe-demo.e2e.test.ts's (the ci preset).
const CLI = ["--import", "tsx", "src/cli/main.ts"];
const N = "(\\d\\.\\d{4}|n/a)";
const RESULT_RE = new RegExp(
  `^RESULT demo klear=${N} peer=${N} unit=accuracy ratio=(\\d+\\.\\d{3}|n/a) math_sft=${N} math_rl=${N} code_sft=${N} code_rl=${N} minutes=\\d+\\.\\d{2}$`,
);
const RL_RESULT_RE = new RegExp(
  `^RESULT demo-rl klear=${N} peer=${N} unit=accuracy ratio=(\\d+\\.\\d{3}|n/a)$`,
);
const root = mkdtempSync(join(tmpdir(), "klear-demo-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));

function klear(args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: "utf8", timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function sftSteps(runDir: string): number[] {
  const path = join(runDir, "sft", "metrics.jsonl");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((m) => typeof m.loss === "number")
    .map((m) => m.step);
}

describe("klear demo (end to end, smoke preset)", () => {
  it("runs every phase, writes the run folders and the report, and ends with the two RESULT lines", () => {
    const out = join(root, "smoke");
    const r = klear(["demo", "--preset", "smoke", "--out", out, "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[lines.length - 2], RL_RESULT_RE);
    assert.match(lines[lines.length - 1], RESULT_RE);
    assert.match(r.stdout, /report: .*report\.html/);
    for (const f of ["config.json", "result.json", "report.html", "data/sft.jsonl", "sft/config.json"]) {
      assert.ok(existsSync(join(out, f)), `missing ${f}`);
    }
    for (const f of ["eval-sft/results.json", "eval-rl/results.json", "rl/result.json", "checkpoints/init"]) {
      assert.ok(existsSync(join(out, f)), `missing ${f}`);
    }
    const init = JSON.parse(readFileSync(join(out, "checkpoints/init/tokenizer_config.json"), "utf8"));
    assert.match(init.chat_template, /reasoning_content/);
  });

  it("--rl.steps=0: SFT and its evaluation only, one RESULT line", () => {
    const out = join(root, "sft-only");
    const r = klear(["demo", "--preset", "smoke", "--rl.steps=0", "--out", out, "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[lines.length - 1], RESULT_RE);
    assert.equal(lines.filter((l) => l.startsWith("RESULT")).length, 1);
    assert.ok(!existsSync(join(out, "rl")));
  });

  it("an interrupted run resumes to the same weights and accuracies", async (t) => {
    const args = ["--preset", "smoke", "--sft.steps=40", "--sft.checkpointEvery=5", "--quiet"];
    const ref = join(root, "ref");
    const refRun = klear(["demo", ...args, "--out", ref]);
    assert.equal(refRun.code, 0, refRun.stderr);

    const out = join(root, "interrupted");
    const child = spawn(process.execPath, [...CLI, "demo", ...args, "--out", out], { stdio: "pipe" });
    let stdout = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    for (let i = 0; i < 1200; i++) {
      if (sftSteps(out).length >= 6) break;
      await sleep(50);
    }
    child.kill("SIGINT");
    const code = await exited;
    if (code === 0) {
      t.diagnostic("the run finished before SIGINT arrived; resume not exercised");
      return;
    }
    assert.equal(code, 130, stdout);
    assert.match(stdout, /continue with: klear demo --out .* --resume/);
    const r = klear(["demo", "--out", out, "--resume", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    const weights = (dir: string) =>
      readFileSync(join(dir, "rl", "checkpoints", "step-2", "model.safetensors"));
    assert.ok(weights(out).equals(weights(ref)), "RL after a resumed run differs from an uninterrupted one");
    const accuracies = (s: string) =>
      s
        .trim()
        .split("\n")
        .pop()
        ?.replace(/ minutes=.*/, "");
    assert.equal(accuracies(r.stdout), accuracies(refRun.stdout));
  });

  it("bad flags are clear errors", () => {
    const r = klear(["demo", "--sft.stepz=3"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown config key "sft\.stepz"/);
    const r2 = klear(["demo", "--resume"]);
    assert.match(r2.stderr, /--resume needs --out/);
    const r3 = klear(["demo", "--out", join(root, "smoke"), "--preset", "smoke"]);
    assert.match(r3.stderr, /already holds a run/);
  });
});
