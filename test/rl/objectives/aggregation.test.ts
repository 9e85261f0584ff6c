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

/** Splits rows 0..n-1 into consecutive micro-batches at the given cut points. */
function splitRows<T>(rows: T[], cuts: number[]): T[][] {
  const out: T[][] = [];
  let start = 0;
  for (const cut of [...cuts, rows.length]) {
    out.push(rows.slice(start, cut));
    start = cut;
  }
  return out;
}

describe("micro-batch invariance with global normalisation", () => {
  for (const mode of AGGREGATION_MODES) {
    test(`${mode}: summed micro-batch losses and concatenated gradients equal the whole batch, for every loss`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 1000 }),
          fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { maxLength: 6 }),
          fc.constantFrom(...POLICY_LOSS_NAMES),
          (seed, rawCuts, name) => {
            const batch = randomBatch(seed, 8, 7, 0.5);
            const cuts = rawCuts.sort((a, b) => a - b);
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
            const ids = batch.logp.map((_, i) => i);
            let lossSum = 0;
            const grads: number[] = [];
            for (const part of splitRows(ids, cuts)) {
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
              grads.push(...micro.dLogp);
            }
            close(lossSum, whole.loss, 1e-12, `${name} ${mode} loss`);
            // Per-token gradients do not depend on the split at all: bit-identical.
            assert.deepEqual(grads, Array.from(whole.dLogp));
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
