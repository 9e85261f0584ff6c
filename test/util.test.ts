import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { atomicWriteFileSync } from "../src/util/atomic.js";
import { mapConcurrent } from "../src/util/concurrency.js";
import { ConfigError, checkChoice } from "../src/util/errors.js";
import { applyOverrides, splitOverrides } from "../src/util/overrides.js";
import { Rng } from "../src/util/rng.js";

test("rng: same seed, same stream; uniform in [0,1)", () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 1000; i++) {
    const x = a.uniform();
    assert.equal(x, b.uniform());
    assert.ok(x >= 0 && x < 1);
  }
  assert.notEqual(new Rng(1).uniform(), new Rng(2).uniform());
});

test("rng: normal has mean 0 and variance 1", () => {
  const r = new Rng(7);
  let s = 0;
  let s2 = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const x = r.normal();
    s += x;
    s2 += x * x;
  }
  assert.ok(Math.abs(s / n) < 0.03);
  assert.ok(Math.abs(s2 / n - 1) < 0.05);
});

test("atomic write leaves only the target", () => {
  const dir = mkdtempSync(join(tmpdir(), "klear-"));
  atomicWriteFileSync(join(dir, "a.json"), "hello");
  assert.equal(readFileSync(join(dir, "a.json"), "utf8"), "hello");
  assert.deepEqual(readdirSync(dir), ["a.json"]);
});

test("overrides: nested set, JSON values, unknown keys rejected with the valid ones", () => {
  const base = { train: { lr: 1e-3, steps: 10 }, name: "x" };
  const { overrides, rest } = splitOverrides(["--train.lr=0.01", "--out", "d"]);
  assert.deepEqual(rest, ["--out", "d"]);
  assert.equal(applyOverrides(base, overrides).train.lr, 0.01);
  assert.equal(base.train.lr, 1e-3);
  assert.throws(() => applyOverrides(base, { "train.lrr": "1" }), /valid keys here: lr, steps/);
  assert.throws(
    () => checkChoice("loss", "nope", ["gppo", "cispo"]),
    (e: unknown) => e instanceof ConfigError && /gppo, cispo/.test(String(e)),
  );
});

test("mapConcurrent keeps order and bounds concurrency", async () => {
  let inFlight = 0;
  let peak = 0;
  const out = await mapConcurrent([5, 1, 3, 2, 4], 2, async (x) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, x));
    inFlight--;
    return x * 2;
  });
  assert.deepEqual(out, [10, 2, 6, 4, 8]);
  assert.equal(peak, 2);
});
