import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { describeSftConfig, resolveSftConfig, SFT_PRESET_NAMES } from "../../src/sft/config.js";
import { ConfigError } from "../../src/util/errors.js";
import { tempDir } from "./helpers.js";

describe("klear sft config", () => {
  it("klear-sft carries the paper's values (spec §3)", () => {
    const c = resolveSftConfig({ preset: "klear-sft" });
    assert.equal(c.pack.maxTokens, 32_768);
    assert.equal(c.optimizer.lr, 8e-5);
    assert.equal(c.optimizer.lr * c.optimizer.minLrRatio, 4e-5);
    assert.equal(c.train.epochs, 4);
    assert.equal(c.pack.packing, true);
    assert.equal(c.train.recompute, true);
    assert.deepEqual(SFT_PRESET_NAMES, ["tiny-cpu", "klear-sft"]);
  });

  it("layers preset → file → overrides, and names an unknown or bad field", (t) => {
    const dir = tempDir(t);
    const file = join(dir, "c.json");
    writeFileSync(
      file,
      JSON.stringify({
        data: { sources: [{ path: "a.jsonl", weight: 0.5, format: "conversations" }] },
        train: { epochs: 2 },
      }),
    );
    const c = resolveSftConfig({ preset: "klear-sft", configFile: file, overrides: { "train.epochs": "3" } });
    assert.equal(c.train.epochs, 3);
    assert.equal(c.pack.maxTokens, 32_768);
    assert.deepEqual(c.data.sources, [{ path: "a.jsonl", weight: 0.5, format: "conversations", name: "" }]);
    assert.throws(() => resolveSftConfig({ overrides: { "train.epoch": "3" } }), ConfigError);
    assert.throws(
      () => resolveSftConfig({ overrides: { "data.onBadRow": "ignore" } }),
      (e: unknown) =>
        e instanceof ConfigError && /data\.onBadRow/.test(e.message) && /klear sft --help/.test(e.fix),
    );
  });

  it("--help text describes every section and a data.sources entry", () => {
    const text = describeSftConfig();
    for (const f of [
      "--pack.maxTokens=256",
      "--train.recompute=false",
      "--render.trainOn=",
      "--data.fields.reasoning=",
    ]) {
      assert.ok(text.includes(f), f);
    }
    assert.match(text, /data\.sources entries/);
    assert.match(text, /weight\s+rows drawn per epoch/);
  });
});
