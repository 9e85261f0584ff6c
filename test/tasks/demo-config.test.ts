import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  DemoConfigSchema,
  demoRlConfig,
  demoRunsRl,
  describeDemoConfig,
  resolveDemoConfig,
} from "../../src/tasks/demo-config.js";
import { ConfigError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "klear-democfg-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("demo config", () => {
  it("defaults are the tiny-cpu preset and every field has a default and a description", () => {
    assert.deepEqual(resolveDemoConfig({}), DemoConfigSchema.parse({}));
    const help = describeDemoConfig();
    for (const line of help.split("\n").filter((l) => l.includes("--"))) {
      assert.match(line, /--[\w.]+=\S+\s+\S/, `undocumented: ${line}`);
    }
    assert.match(help, /--train\.steps=300/);
    assert.match(help, /--task\.teacherNoise=0\.5/);
    assert.match(help, /--rl\.steps=30/);
    assert.match(help, /--rl\.loss\.name="gppo"/);
  });

  it("layers preset → file → overrides", () => {
    const file = join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ train: { steps: 50, lr: 0.01 }, task: { maxTerms: 4 } }));
    const c = resolveDemoConfig({ preset: "smoke", configFile: file, overrides: { "train.lr": "0.02" } });
    assert.equal(c.train.steps, 50);
    assert.equal(c.train.lr, 0.02);
    assert.equal(c.task.maxTerms, 4);
    assert.equal(c.model.hiddenSize, 32); // from the preset
    assert.equal(c.train.gradClip, 1); // from the defaults
  });

  it("rejects unknown presets, unknown keys and bad values, naming them", () => {
    assert.throws(() => resolveDemoConfig({ preset: "huge" }), /tiny-cpu/);
    assert.throws(() => resolveDemoConfig({ overrides: { "train.stepz": "3" } }), /train\.stepz/);
    assert.throws(() => resolveDemoConfig({ overrides: { "train.steps": "-3" } }), /train\.steps/);
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ model: { layers: 3 } }));
    assert.throws(
      () => resolveDemoConfig({ configFile: file }),
      (e: ConfigError) => e.message.includes(file),
    );
    assert.throws(() => resolveDemoConfig({ configFile: join(dir, "missing.json") }), ConfigError);
    assert.throws(
      () => resolveDemoConfig({ configFile: join(dir, "missing.json") }),
      /cannot read demo config/,
    );
    assert.throws(() => resolveDemoConfig({ overrides: { "rl.loss.nam": "cispo" } }), /rl\.loss\.nam/);
    // The RL phase's own cross-field rules apply up front.
    assert.throws(
      () => resolveDemoConfig({ overrides: { "rl.rollout.trainBatchPrompts": "64" } }),
      /trainBatchPrompts/,
    );
  });

  it("the rl section passes through to the RL phase's config, with task and eval from the demo", () => {
    const c = resolveDemoConfig({
      preset: "smoke",
      overrides: { "rl.loss.name": "cispo", "rl.steps": "5", "task.testSize": "12", seed: "3" },
    });
    const rl = demoRlConfig(c, "/ckpt");
    assert.equal(rl.loss.name, "cispo");
    assert.equal(rl.steps, 5);
    assert.equal(rl.seed, 3);
    assert.equal(rl.init, "/ckpt");
    assert.equal(rl.task.kind, "arithmetic");
    assert.equal(rl.task.testSize, 12);
    assert.equal(rl.eval.maxNewTokens, c.eval.maxNewTokens);
    assert.equal(rl.eval.temperature, 0);
    assert.equal(demoRunsRl(c), true);
    assert.equal(demoRunsRl({ ...c, rl: { ...c.rl, steps: 0 } }), false);
  });
});
