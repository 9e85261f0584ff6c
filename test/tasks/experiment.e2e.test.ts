import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { main } from "../../src/cli/main.js";

const dir = mkdtempSync(join(tmpdir(), "klear-experiment-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("klear experiment losses --preset ci: 3 losses × 2 seeds from one SFT checkpoint, a table, a report, resumable", async () => {
  const out = join(dir, "exp");
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    assert.equal(await main(["experiment", "losses", "--preset", "ci", "--out", out, "--quiet"]), 0);
  } finally {
    console.log = log;
  }
  const saved = JSON.parse(readFileSync(join(out, "experiment.json"), "utf8"));
  assert.deepEqual(
    saved.runs.map((r: { loss: string; seed: number }) => `${r.loss}/${r.seed}`),
    ["gppo/1", "gppo/2", "clip-higher/1", "clip-higher/2", "cispo/1", "cispo/2"],
  );
  assert.deepEqual(
    saved.summary.map((s: { loss: string; runs: number }) => [s.loss, s.runs]),
    [
      ["gppo", 2],
      ["clip-higher", 2],
      ["cispo", 2],
    ],
  );
  // Every run started from the one SFT checkpoint, with its own loss; clip-higher as the paper ran it.
  for (const r of saved.runs) {
    const cfg = JSON.parse(readFileSync(join(out, r.loss, `seed-${r.seed}`, "config.json"), "utf8"));
    assert.equal(cfg.init, saved.sftCheckpoint);
    assert.equal(cfg.loss.name, r.loss);
    assert.equal(cfg.seed, r.seed);
    if (r.loss === "clip-higher") assert.deepEqual([cfg.loss.epsHigh, cfg.loss.clipRatioC], [0.28, 10]);
  }
  const report = readFileSync(join(out, "report.html"), "utf8");
  assert.match(report, /Loss ablation/);
  assert.match(report, /gppo \(mean of 2\)/);
  assert.match(
    lines.at(-1) ?? "",
    /^RESULT experiment-losses klear=\S+ peer=\S+ unit=accuracy ratio=\S+ peer_loss=\S+$/,
  );

  // Resuming a finished experiment trains nothing again: every run's checkpoints stay as they were.
  const ckpt = join(out, "cispo", "seed-2", "checkpoints");
  const before = statSync(ckpt).mtimeMs;
  assert.equal(await main(["experiment", "losses", "--out", out, "--resume", "--quiet"]), 0);
  assert.equal(statSync(ckpt).mtimeMs, before);
  assert.ok(existsSync(join(out, "sft", "result.json")));
});
