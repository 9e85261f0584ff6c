import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  AGGREGATION_MODES,
  aggregate,
  lossMaskCounts,
  POLICY_LOSS_NAMES,
  policyLoss,
} from "../../../src/rl/objectives/index.js";
import { close, randomBatch } from "../helpers.js";

describe("aggregate", () => {
  // Two rows: [1, 2, 3] fully active, [10, 20] with the second token masked.
  const values = [
    [1, 2, 3],
    [10, 20],
  ];
  const mask = [
    [1, 1, 1],
    [1, 0],
  ];
  test("the four modes by hand", () => {
    assert.equal(aggregate("token-mean", values, mask), 16 / 4);
    assert.equal(aggregate("seq-mean-token-sum", values, mask), (6 + 10) / 2);
    assert.equal(aggregate("seq-mean-token-mean", values, mask), (2 + 10) / 2);
    assert.equal(aggregate("seq-mean-token-sum-norm", values, mask, { lengthDivisor: 8 }), 16 / 8);
  });
  test("flat values with lengths equal rows; masked NaN padding is never read", () => {
    const flat = new Float32Array([1, 2, 3, 10, Number.NaN]);
    assert.equal(aggregate("seq-mean-token-mean", flat, [1, 1, 1, 1, 0], { lengths: [3, 2] }), 6);
  });
  test("global counts divide by the whole mini-batch", () => {
    assert.equal(aggregate("token-mean", values, mask, { globalTokenCount: 8 }), 2);
    assert.equal(aggregate("seq-mean-token-sum", values, mask, { globalSeqCount: 4 }), 4);
  });
  test("an empty mask gives 0, not NaN; a fully masked row does not count as a sequence", () => {
    assert.equal(
      aggregate("token-mean", values, [
        [0, 0, 0],
        [0, 0],
      ]),
      0,
    );
    assert.equal(
      aggregate("seq-mean-token-mean", values, [
        [1, 1, 1],
        [0, 0],
      ]),
      2,
    );
  });
  test("bad options", () => {
    assert.throws(
      () => aggregate("seq-mean", values, mask),
      /token-mean, seq-mean-token-sum, seq-mean-token-mean/,
    );
    assert.throws(() => aggregate("seq-mean-token-sum-norm", values, mask), /lengthDivisor/);
    assert.throws(
      () => aggregate("token-mean", values, mask, { globalTokenCount: 2 }),
      /smaller than this micro-batch/,
    );
  });
});

/** Groups row indices into micro-batches by an arbitrary assignment (not necessarily contiguous). */
function assignRows(rows: number, assignment: number[]): number[][] {
  const parts = new Map<number, number[]>();
  for (let i = 0; i < rows; i++) {
    const key = assignment[i];
    const part = parts.get(key) ?? [];
    part.push(i);
    parts.set(key, part);
  }
  return [...parts.values()];
}

describe("micro-batch invariance with global normalisation", () => {
  for (const mode of AGGREGATION_MODES) {
    test(`${mode}: any split into micro-batches sums to the whole batch's loss and gradient, for every loss`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 1000 }),
          fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 8, maxLength: 8 }),
          fc.constantFrom(...POLICY_LOSS_NAMES),
          (seed, assignment, name) => {
            const batch = randomBatch(seed, 8, 7, 0.5);
            const loss = policyLoss(name, {
              aggregation: mode,
              ...(mode === "seq-mean-token-sum-norm" ? { lengthDivisor: 7 } : {}),
            });
            const whole = loss(batch);
            const { tokens: activeTokens, sequences: activeSeqs } = lossMaskCounts(batch.mask);
            assert.equal(
              activeTokens,
              batch.mask.flat().reduce((a, b) => a + b, 0),
            );
            assert.equal(activeSeqs, batch.mask.filter((row) => row.includes(1)).length);
            let lossSum = 0;
            const grads = new Float64Array(whole.dLogp.length);
            const rowStart = batch.logp.map((_, i) =>
              batch.logp.slice(0, i).reduce((n, r) => n + r.length, 0),
            );
            for (const part of assignRows(batch.logp.length, assignment)) {
              const pick = <T>(rows: T[]) => part.map((i) => rows[i]);
              const micro = loss({
                logp: pick(batch.logp),
                oldLogp: pick(batch.oldLogp),
                mask: pick(batch.mask),
                advantages: pick(batch.advantages),
                globalTokenCount: activeTokens,
                globalSeqCount: activeSeqs,
              });
              lossSum += micro.loss;
              part.forEach((row, j) => {
                grads.set(micro.dLogpRows[j], rowStart[row]);
              });
            }
            close(lossSum, whole.loss, 1e-12, `${name} ${mode} loss`);
            // Per-token gradients do not depend on the split at all: bit-identical.
            assert.deepEqual(grads, whole.dLogp);
          },
        ),
        { numRuns: 40 },
      );
    });
  }

  test("without globalTokenCount, per-micro-batch token means differ from the whole (verl's deviation, spec §5.8)", () => {
    const batch = randomBatch(3, 4, 9, 0.3);
    const loss = policyLoss("gppo");
    const whole = loss(batch).loss;
    const half = (rows: number[]) => ({
      logp: rows.map((i) => batch.logp[i]),
      oldLogp: rows.map((i) => batch.oldLogp[i]),
      mask: rows.map((i) => batch.mask[i]),
      advantages: rows.map((i) => batch.advantages[i]),
    });
    const naive = (loss(half([0, 1])).loss + loss(half([2, 3])).loss) / 2;
    assert.ok(Math.abs(naive - whole) > 1e-6);
  });
});
