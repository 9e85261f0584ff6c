import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { run } from "../../src/cli/commands/data.js";
import { resolveDataConfig } from "../../src/data/config.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("klear data subcommands take --config FILE, the old flags and --field=value, in that order", async () => {
  const input = join(dir, "in.jsonl");
  writeFileSync(
    input,
    ["a b c d e f g h", "a b c d e f g h", "a b c d e f g x"]
      .map((p) => JSON.stringify({ prompt: p }))
      .join("\n"),
  );
  const config = join(dir, "dedup.json");
  writeFileSync(config, JSON.stringify({ threshold: 0.5, numPerm: 64, near: false }));
  assert.deepEqual(
    (({ threshold, numPerm, near, exact }) => ({ threshold, numPerm, near, exact }))(
      resolveDataConfig("dedup", { configFile: config, overrides: { numPerm: "32" } }),
    ),
    { threshold: 0.5, numPerm: 32, near: false, exact: true },
  );
  const out = join(dir, "out.jsonl");
  const err = console.error;
  console.error = () => {};
  try {
    assert.equal(
      await run(["dedup", input, "--out", out, "--config", config, "--no-exact", "--seed=3", "-q"]),
      0,
    );
  } finally {
    console.error = err;
  }
  const manifest = JSON.parse(readFileSync(`${out}.manifest.json`, "utf8"));
  assert.deepEqual(manifest.parameters, { exact: false, near: false, textField: null });
  assert.equal(manifest.counts.kept, 3);
  await assert.rejects(
    run(["dedup", input, "--out", out, "--treshold=0.5"]),
    /Unknown option '--treshold'.*\n {2}fix: see `klear data dedup --help`/s,
  );
});
