import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { FakeWandb, filesUnder } from "./wandb-fake.js";

// `klear demo --preset smoke` (about a second of training) as a user runs it, logging to a local fake W&B
// server (the hosted service is not reachable here): the demo, its SFT and its RL run each become a W&B run,
// flushed and completed when the process exits.
const KEY = "cli-secret-key-9876543210fedcba9876543210fedcba";
const root = mkdtempSync(join(tmpdir(), "klear-wandb-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("klear demo --wandb.project logs the demo, its SFT and its RL run to W&B", async () => {
  const fake = await new FakeWandb().start();
  try {
    const out = join(root, "demo");
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli/main.ts",
        "demo",
        "--preset",
        "smoke",
        "--quiet",
        "--out",
        out,
        "--wandb.project=klear-cli",
        `--wandb.baseUrl=${fake.url}`,
        '--wandb.tags=["smoke","ci"]',
      ],
      { env: { ...process.env, WANDB_API_KEY: KEY, WANDB_MODE: "" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (d) => {
      output += d;
    });
    child.stderr.on("data", (d) => {
      output += d;
    });
    const code = await new Promise<number | null>((done) => child.on("exit", done));
    assert.equal(code, 0, output);

    const byName = new Map([...fake.runs.values()].map((r) => [r.displayName, r]));
    assert.deepEqual([...byName.keys()].sort(), ["demo", "demo/rl", "demo/sft"]);
    for (const [name, dir] of [
      ["demo/sft", join(out, "sft")],
      ["demo/rl", join(out, "rl")],
    ]) {
      const run = byName.get(name);
      assert.ok(run);
      assert.equal(run.group, "demo");
      assert.deepEqual(run.tags, ["smoke", "ci"]);
      assert.equal(run.complete, true, `${name} completed at exit`);
      assert.equal(run.exitcode, 0);
      assert.deepEqual(
        fake.rows(run.id).map((r) => r._step),
        [...new Set(readMetrics(runPaths(dir)).map((m) => m.step))],
        name,
      );
    }
    assert.ok("loss" in (byName.get("demo/sft")?.summary ?? {}));
    assert.ok("rewardMean" in (byName.get("demo/rl")?.summary ?? {}));
    assert.match(output, /W&B: logging to http:\/\/127\.0\.0\.1:\d+\/fake-user\/klear-cli\/runs\//);
    assert.ok(!output.includes(KEY), "the key is never printed");
    for (const file of filesUnder(out)) assert.ok(!readFileSync(file).includes(KEY), `${file} holds the key`);
  } finally {
    await fake.stop();
  }
});
