import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import {
  acceptedFlags,
  deepMerge,
  describeConfig,
  type FlagAlias,
  kebabFlagAliases,
  parseConfigWith,
  parseRunCommandArgs,
  resolveConfig,
} from "../src/util/config.js";
import { ConfigError } from "../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "klear-util-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const Schema = z.strictObject({
  seed: z.number().int().default(0).describe("the seed"),
  train: z
    .strictObject({
      steps: z.number().int().positive().default(10).describe("optimizer steps"),
      inner: z
        .strictObject({ lr: z.number().default(0.1).describe("rate") })
        .prefault({})
        .describe("a nested section"),
    })
    .prefault({})
    .describe("training"),
});
type Config = z.infer<typeof Schema>;
const spec = {
  command: "toy",
  presets: { base: {}, fast: { train: { steps: 2 } } },
  parse: (value: unknown, source: string): Config => parseConfigWith(Schema, value, source, "toy"),
  exampleSection: "train",
};

describe("util/config", () => {
  it("layers preset → file → overrides, the first preset being the default", () => {
    assert.deepEqual(resolveConfig(spec, {}), Schema.parse({}));
    const file = join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ seed: 4, train: { inner: { lr: 0.5 } } }));
    const c = resolveConfig(spec, {
      preset: "fast",
      configFile: file,
      overrides: { "train.inner.lr": "0.25" },
    });
    assert.deepEqual(c, { seed: 4, train: { steps: 2, inner: { lr: 0.25 } } });
  });

  it("errors name the preset, file, field and command", () => {
    assert.throws(() => resolveConfig(spec, { preset: "huge" }), /base/);
    assert.throws(
      () => resolveConfig(spec, { overrides: { "train.stepz": "1" } }),
      /unknown config key "train\.stepz"/,
    );
    assert.throws(
      () => resolveConfig(spec, { overrides: { "train.steps": "0" } }),
      (e: ConfigError) =>
        e instanceof ConfigError &&
        /--overrides: toy config field "train\.steps"/.test(e.message) &&
        /klear toy --help/.test(e.fix),
    );
    assert.throws(
      () => resolveConfig(spec, { configFile: join(dir, "missing.json") }),
      /cannot read toy config/,
    );
    const arr = join(dir, "arr.json");
    writeFileSync(arr, "[1]");
    assert.throws(() => resolveConfig(spec, { configFile: arr }), /expected a JSON object/);
  });

  it("deepMerge merges sections and replaces everything else", () => {
    assert.deepEqual(deepMerge({ a: { b: 1, c: [1] }, d: 1 }, { a: { c: [2] } }), {
      a: { b: 1, c: [2] },
      d: 1,
    });
  });

  it("describeConfig lists every leaf, nested sections included, with its default", () => {
    const help = describeConfig(Schema);
    assert.match(help, /--seed=0\s+the seed/);
    assert.match(help, /train: training/);
    assert.match(help, /--train\.steps=10\s+optimizer steps/);
    assert.match(help, /--train\.inner\.lr=0\.1\s+rate/);
  });

  it("parseRunCommandArgs: flags, overrides, undotted top-level fields and the --resume rules", () => {
    const args = parseRunCommandArgs("toy", ["--out", "d", "--a.b=1", "--seed=3", "--quiet"], {
      help: () => "",
      topLevelFields: ["seed"],
    });
    assert.deepEqual(args?.overrides, { "a.b": "1", seed: "3" });
    assert.equal(args?.values.out, "d");
    assert.equal(args?.values.quiet, true);
    assert.throws(() => parseRunCommandArgs("toy", ["--bogus"], { help: () => "" }), /klear toy: .*bogus/);
    assert.throws(() => parseRunCommandArgs("toy", ["--resume"], { help: () => "" }), /--resume needs --out/);
    assert.throws(
      () =>
        parseRunCommandArgs("toy", ["--resume", "--out", "d", "--init", "x"], {
          help: () => "",
          extraStringFlags: ["init"],
          configFlags: ["init"],
        }),
      /--init, --preset, --config and overrides would be ignored/,
    );
    assert.throws(
      () => parseRunCommandArgs("toy", ["--resume", "--out", "d", "--a.b=1"], { help: () => "" }),
      /--preset, --config and overrides would be ignored/,
    );
  });

  it("short flags are aliases of fields: typed values, lists, negations, contradictions, dotted overrides last", () => {
    const aliases: FlagAlias[] = [
      { flag: "steps", path: "train.steps", kind: "int" },
      { flag: "lr", path: "train.inner.lr", kind: "number" },
      { flag: "tag", path: "tags", kind: "list" },
      { flag: "fast", path: "fast", kind: "boolean" },
      { flag: "no-fast", path: "fast", kind: "false" },
    ];
    const args = parseRunCommandArgs(
      "toy",
      ["--steps", "4", "--lr=0.5", "--tag", "a,b", "--tag", "c", "--no-fast", "--train.steps=9", "in.jsonl"],
      { help: () => "", aliases, positionals: true, resume: false },
    );
    assert.deepEqual(args?.overrides, {
      "train.steps": "9",
      "train.inner.lr": "0.5",
      tags: '["a","b","c"]',
      fast: "false",
    });
    assert.deepEqual(args?.positionals, ["in.jsonl"]);
    assert.throws(
      () => parseRunCommandArgs("toy", ["--steps", "4.5"], { help: () => "", aliases }),
      (e: ConfigError) => /--steps "4\.5" is not an integer/.test(e.message) && /--steps/.test(e.fix),
    );
    assert.throws(
      () => parseRunCommandArgs("toy", ["--fast", "--no-fast"], { help: () => "", aliases }),
      /--fast and --no-fast contradict each other/,
    );
    assert.throws(
      () => parseRunCommandArgs("toy", ["--resume"], { help: () => "", resume: false }),
      /--resume/,
    );
    const flags = acceptedFlags(Schema, { aliases, resume: false });
    for (const f of ["--steps", "--no-fast", "--train.steps", "--train.inner.lr", "--config", "--out"])
      assert.ok(flags.has(f), f);
    assert.ok(!flags.has("--resume"));
    assert.match(describeConfig(Schema, { aliases }), /--train\.steps=10 \(--steps\)\s+optimizer steps/);
  });

  it("kebabFlagAliases names each top-level field's flag after it, with its kind", () => {
    const Flat = z.strictObject({
      numPerm: z.number().int().default(1),
      near: z.boolean().default(true),
      benches: z.array(z.string()).default([]),
      textField: z.string().nullable().default(null),
    });
    assert.deepEqual(kebabFlagAliases(Flat, { near: [{ flag: "no-near", kind: "false" }] }), [
      { flag: "num-perm", path: "numPerm", kind: "number" },
      { flag: "no-near", path: "near", kind: "false" },
      { flag: "benches", path: "benches", kind: "list" },
      { flag: "text-field", path: "textField", kind: "string" },
    ]);
  });
});
