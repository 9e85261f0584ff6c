// Rows vs flat-with-lengths vs typed arrays, per-sequence vs per-token advantages: all the same answer.
import assert from "node:assert/strict";
import { test } from "node:test";
import { policyLoss } from "../../../src/rl/objectives/index.js";
import { randomBatch } from "../helpers.js";

test("rows, flat number[] with lengths, and Float32Array inputs agree", () => {
  const b = randomBatch(21);
  const loss = policyLoss("gppo", { aggregation: "seq-mean-token-mean" });
  const rows = loss(b);
  const lengths = b.logp.map((r) => r.length);
  const flat = loss({
    logp: b.logp.flat(),
    oldLogp: b.oldLogp.flat(),
    mask: b.mask.flat(),
    advantages: b.advantages,
    lengths,
  });
  assert.equal(flat.loss, rows.loss);
  assert.deepEqual(flat.dLogp, rows.dLogp);
  assert.deepEqual(
    flat.dLogpRows.map((r) => r.length),
    lengths,
  );
  const f32 = (rs: number[][]) => rs.map((r) => Float32Array.from(r));
  const typed = loss({
    logp: f32(b.logp),
    oldLogp: f32(b.oldLogp),
    mask: f32(b.mask),
    advantages: Float32Array.from(b.advantages),
  });
  assert.ok(Math.abs(typed.loss - rows.loss) < 1e-5);
});

test("per-token advantages equal to the broadcast per-sequence ones give identical results", () => {
  const b = randomBatch(22);
  const loss = policyLoss("clip-higher");
  const perToken = b.logp.map((r, i) => r.map(() => b.advantages[i]));
  assert.deepEqual(loss({ ...b, advantages: perToken }).dLogp, loss(b).dLogp);
});

test("boolean masks and an absent mask", () => {
  const b = randomBatch(23);
  const loss = policyLoss("gppo");
  const asBool = b.mask.map((r) => r.map((m) => m === 1));
  assert.deepEqual(loss({ ...b, mask: asBool }).dLogp, loss(b).dLogp);
  const all = loss({ logp: b.logp, oldLogp: b.oldLogp, advantages: b.advantages });
  assert.equal(all.metrics.tokens, b.logp.flat().length);
});
