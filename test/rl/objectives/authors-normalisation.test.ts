/**
 * seq-group-token-mean reproduces the normalisation the authors' verl runs apply (spec §5.8, §17.16):
 * one token-mean per data-parallel rank's micro-batch, weighted by its share of the sequences, gradients
 * averaged over ranks; against the paper's Eq. 7 token-mean over the whole mini-batch.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { aggregate, policyLoss } from "../../../src/rl/objectives/index.js";
import { close, randomBatch } from "../helpers.js";

/** verl by hand: rank r holds rows [r·g, (r+1)·g), its loss is their token-mean, FSDP averages over ranks. */
function verlByHand(values: number[][], g: number): number {
  const ranks = values.length / g;
  let total = 0;
  for (let r = 0; r < ranks; r++) {
    const mine = values.slice(r * g, (r + 1) * g).flat();
    total += mine.reduce((a, b) => a + b, 0) / mine.length / ranks;
  }
  return total;
}

describe("seq-group-token-mean (the authors' effective normalisation)", () => {
  const values = [[1, 2, 3, 4], [10], [5, 5], [0, 0, 0, 0, 0, 9]];
  test("equals a hand-written per-rank token mean averaged over ranks", () => {
    for (const g of [1, 2, 4]) {
      close(
        aggregate("seq-group-token-mean", values, undefined, { groupSequences: g }),
        verlByHand(values, g),
        1e-12,
        `g=${g}`,
      );
    }
    // By hand, g = 2: ranks hold (1+2+3+4+10)/5 = 4 and (5+5+9)/8 = 2.375.
    close(
      aggregate("seq-group-token-mean", values, undefined, { groupSequences: 2 }),
      (4 + 2.375) / 2,
      1e-12,
      "g=2",
    );
  });
  test("one response per group is seq-mean-token-mean; one group for all is the paper's token-mean", () => {
    const batch = randomBatch(7, 8);
    const seqMean = aggregate("seq-mean-token-mean", batch.logp, batch.mask);
    const tokenMean = aggregate("token-mean", batch.logp, batch.mask);
    close(aggregate("seq-group-token-mean", batch.logp, batch.mask), seqMean, 1e-12, "default g = 1");
    close(
      aggregate("seq-group-token-mean", batch.logp, batch.mask, { groupSequences: 100 }),
      tokenMean,
      1e-12,
      "g ≥ B",
    );
    // The three differ on ragged rows: that difference is what docs/objectives.md describes.
    assert.ok(Math.abs(seqMean - tokenMean) > 1e-6);
  });
  test("empty rows are not sequences; micro-batches that are whole groups sum to the mini-batch", () => {
    const loss = policyLoss("gppo", { aggregation: "seq-group-token-mean", groupSequences: 2 });
    const batch = randomBatch(11, 8);
    const whole = loss(batch);
    const seqs = whole.metrics.sequences;
    let sum = 0;
    const grads: number[] = [];
    for (const [from, to] of [
      [0, 4],
      [4, 8],
    ]) {
      const part = loss({
        logp: batch.logp.slice(from, to),
        oldLogp: batch.oldLogp.slice(from, to),
        advantages: batch.advantages.slice(from, to),
        mask: batch.mask.slice(from, to),
        globalSeqCount: seqs,
      });
      sum += part.loss;
      grads.push(...part.dLogp);
    }
    close(sum, whole.loss, 1e-12, "loss");
    for (const [k, g] of grads.entries()) close(g, whole.dLogp[k], 1e-12, `dLogp[${k}]`);
    assert.throws(
      () => aggregate("seq-group-token-mean", values, undefined, { groupSequences: 0 }),
      /groupSequences = 0/,
    );
    assert.throws(
      () => policyLoss("gppo", { aggregation: "seq-group-token-mean", groupSequences: 1.5 }),
      /groupSequences/,
    );
  });
});
