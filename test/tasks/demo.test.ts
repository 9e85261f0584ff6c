import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { arithmeticProblem } from "../../src/tasks/arithmetic.js";
import { demoBatch, demoResultLine, demoRlResultLine, demoTokenizer, runDemo } from "../../src/tasks/demo.js";
import { resolveDemoConfig } from "../../src/tasks/demo-config.js";

const root = mkdtempSync(join(tmpdir(), "klear-demo-unit-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("demo pieces", () => {
  it("a batch puts loss on the completion and EOS only", () => {
    const tok = demoTokenizer();
    const problems = [arithmeticProblem([1, 2]), arithmeticProblem([3, 4, 5])];
    const b = demoBatch(problems, tok);
    assert.equal(b.batchSize, 2);
    problems.forEach((p, row) => {
      const ids = [...tok.encode(p.prompt), ...tok.encode(p.completion), tok.eosTokenId];
      const promptLen = tok.encode(p.prompt).length;
      for (let t = 0; t < b.seqLen; t++) {
        const target = b.targets[row * b.seqLen + t];
        if (t + 1 < promptLen || t >= ids.length - 1) assert.equal(target, -1, `row ${row} pos ${t}`);
        else {
          assert.equal(target, ids[t + 1]);
          assert.equal(b.tokens[row * b.seqLen + t], ids[t]);
        }
      }
    });
    const expected = problems.reduce((n, p) => n + tok.encode(p.completion).length + 1, 0);
    assert.equal(b.lossTokens, expected);
  });

  it("runDemo (smoke preset) returns the measured numbers and a well-formed RESULT line", async () => {
    const lines: string[] = [];
    const r = await runDemo(resolveDemoConfig({ preset: "smoke" }), {
      out: join(root, "run"),
      quiet: true,
      log: (l) => lines.push(l),
    });
    assert.equal(r.steps, 6);
    assert.ok(
      r.firstLoss !== null && r.lastLoss !== null && r.lastLoss < r.firstLoss,
      `${r.firstLoss} → ${r.lastLoss}`,
    );
    assert.ok(r.accuracyAfter >= 0 && r.accuracyAfter <= 1);
    assert.equal(r.ratio, (r.accuracyAfter + 1 / 8) / (r.accuracyBefore + 1 / 8));
    assert.match(
      demoResultLine(r),
      /^RESULT demo klear=\d\.\d{4} peer=\d\.\d{4} unit=accuracy ratio=\d+\.\d{3}$/,
    );
    assert.ok(lines.some((l) => l.startsWith("held-out accuracy before training")));
    assert.ok(r.rl, "the smoke preset runs the RL phase");
    assert.equal(r.rl.steps, 2);
    assert.equal(r.accuracyAfter, r.rl.accuracyAfter);
    assert.equal(r.rl.ratio, (r.rl.accuracyAfter + 1 / 8) / (r.accuracyAfterSft + 1 / 8));
    assert.match(
      demoRlResultLine(r) ?? "",
      /^RESULT demo-rl klear=\d\.\d{4} peer=\d\.\d{4} unit=accuracy ratio=\d+\.\d{3}$/,
    );
  });

  it("a run stopped inside the RL phase resumes there, to the weights of an uninterrupted run", async () => {
    const config = resolveDemoConfig({ preset: "smoke", overrides: { "eval.showSamples": "0" } });
    const ref = await runDemo(config, { out: join(root, "rl-ref"), quiet: true, log: () => {} });
    const out = join(root, "rl-stopped");
    // shouldStop is asked once per step: 6 SFT steps, then RL step 1 runs and RL step 2 is refused.
    let asked = 0;
    const lines: string[] = [];
    const stopped = await runDemo(config, {
      out,
      quiet: true,
      log: (l) => lines.push(l),
      shouldStop: () => ++asked > 7,
    });
    assert.ok(stopped.interrupted);
    assert.ok(lines.includes(`continue with: klear demo --out ${out} --resume`), lines.join("\n"));
    assert.ok(!lines.some((l) => l.includes("klear rl --out")), "points the user at klear rl");
    const resumedLines: string[] = [];
    const r = await runDemo(config, { out, resume: true, quiet: true, log: (l) => resumedLines.push(l) });
    assert.ok(resumedLines.some((l) => l.startsWith("phase 1 (SFT) finished earlier")));
    assert.ok(
      resumedLines.some((l) => /resuming .*rl from step 1/.test(l)),
      resumedLines.join("\n"),
    );
    assert.equal(r.accuracyAfter, ref.accuracyAfter);
    const weights = (run: string) =>
      readFileSync(join(run, "rl", "checkpoints", "step-2", "model.safetensors"));
    assert.ok(weights(out).equals(weights(ref.runDir)), "resumed RL weights differ");
  });

  it("--rl.steps=0 and rl.enabled=false skip the RL phase", async () => {
    const variants: Record<string, string>[] = [{ "rl.steps": "0" }, { "rl.enabled": "false" }];
    for (const overrides of variants) {
      const config = resolveDemoConfig({
        preset: "smoke",
        overrides: { ...overrides, "eval.showSamples": "0" },
      });
      const r = await runDemo(config, {
        out: join(root, `no-rl-${Object.keys(overrides)[0]}`),
        quiet: true,
        log: () => {},
      });
      assert.equal(r.rl, null);
      assert.equal(r.accuracyAfter, r.accuracyAfterSft);
      assert.equal(demoRlResultLine(r), null);
    }
  });

  it("a run killed before its first checkpoint resumes from scratch without stale metrics", async () => {
    const out = join(root, "killed");
    const config = resolveDemoConfig({ preset: "smoke", overrides: { "eval.showSamples": "0" } });
    const stopped = await runDemo(config, { out, quiet: true, log: () => {}, shouldStop: () => true });
    assert.ok(stopped.interrupted);
    rmSync(join(out, "checkpoints"), { recursive: true });
    appendFileSync(join(out, "metrics.jsonl"), '{"step":1,"loss":9}\n{"step":2,"lo');
    const r = await runDemo(config, { out, resume: true, quiet: true, log: () => {} });
    assert.equal(r.steps, 6);
    const steps = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .map((m) => `${m.step}${m.phase ? `:${m.phase}` : ""}`);
    assert.deepEqual(steps, ["0:eval-before", "1", "2", "3", "4", "5", "6", "6:eval-after"]);
    assert.ok(r.rl, "the RL phase ran after the resumed SFT");
  });
});
