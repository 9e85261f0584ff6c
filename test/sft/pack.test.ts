import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildBatch, epochRows, packRows } from "../../src/sft/pack.js";
import { sftStepGradients } from "../../src/sft/trainer.js";
import { byteTokenizer, gradients as grads, maxRelDiff, multiTurnExamples, tinyModel } from "./helpers.js";

const tok = byteTokenizer();
const examples = (n: number) => multiTurnExamples(tok, n);
const model = (seed = 5) => tinyModel(tok, seed);

describe("packing plan", () => {
  it("each epoch draws every row once (weight 1), a seeded half (0.5) or twice (2), in a seeded order", () => {
    const a = { indexes: [0, 1, 2, 3], weight: 1 };
    const b = { indexes: [4, 5, 6, 7, 8, 9], weight: 0.5 };
    const c = { indexes: [10], weight: 2 };
    const e0 = epochRows([a, b, c], 7, 0);
    assert.equal(e0.length, 4 + 3 + 2);
    assert.deepEqual(e0.filter((r) => r < 4).sort(), [0, 1, 2, 3]);
    assert.equal(e0.filter((r) => r === 10).length, 2);
    assert.deepEqual(epochRows([a, b, c], 7, 0), e0, "same seed and epoch, same rows and order");
    assert.notDeepEqual(epochRows([a, b, c], 7, 1), e0, "another epoch, another order");
    assert.deepEqual(
      epochRows([a, { ...b, weight: 0 }], 7, 0).sort(),
      [0, 1, 2, 3],
      "weight 0 drops a source",
    );
  });

  it("first-fit decreasing keeps every row once, within maxTokens, with little padding", () => {
    const lengths = Array.from({ length: 500 }, (_, i) => 20 + ((i * 37) % 200));
    const order = lengths.map((_, i) => i);
    const bins = packRows(order, (r) => lengths[r], {
      maxTokens: 512,
      packing: true,
      window: 500,
      seed: 1,
      epoch: 0,
    });
    assert.deepEqual(
      bins.flat().sort((x, y) => x - y),
      order,
    );
    for (const b of bins) assert.ok(b.reduce((n, r) => n + lengths[r], 0) <= 512);
    const used = lengths.reduce((x, y) => x + y, 0);
    const padding = 1 - used / (bins.length * 512);
    assert.ok(padding < 0.03, `padding ${padding}`);
    const single = packRows(order, (r) => lengths[r], {
      maxTokens: 512,
      packing: false,
      window: 500,
      seed: 1,
      epoch: 0,
    });
    assert.equal(single.length, 500);
  });
});

describe("packed batches", () => {
  it("give the same per-token log-probs as each conversation alone", () => {
    const m = model();
    const ex = examples(6);
    const seqs = [[ex[0], ex[1], ex[2]], [ex[3], ex[4]], [ex[5]]];
    const packed = buildBatch(seqs, tok.padTokenId);
    assert.ok(packed.batch.segments);
    const lp = Float32Array.from(m.logprobs(packed.batch).logp);
    let compared = 0;
    seqs.forEach((rows, b) => {
      let at = b * packed.batch.seqLen;
      for (const e of rows) {
        const alone = buildBatch([[e]], tok.padTokenId);
        const single = m.logprobs(alone.batch).logp;
        for (let p = 0; p < e.ids.length; p++) {
          assert.equal(packed.batch.targets[at + p], alone.batch.targets[p]);
          if (alone.batch.targets[p] < 0) continue;
          assert.ok(Math.abs(lp[at + p] - single[p]) < 1e-5, `${lp[at + p]} vs ${single[p]}`);
          compared++;
        }
        at += e.ids.length;
      }
    });
    assert.ok(compared > 50);
  });

  it("give the same gradient as the conversations one by one (token mean over the whole step)", () => {
    const m = model();
    const ex = examples(6);
    const packedStep = sftStepGradients(
      m,
      [[ex[0], ex[1], ex[2]], [ex[3], ex[4]], [ex[5]]],
      3,
      tok.padTokenId,
    );
    const packed = grads(m);
    const oneByOne = sftStepGradients(
      m,
      ex.map((e) => [e]),
      1,
      tok.padTokenId,
    );
    const alone = grads(m);
    assert.equal(packedStep.lossTokens, oneByOne.lossTokens);
    assert.ok(Math.abs(packedStep.loss - oneByOne.loss) < 1e-5);
    const d = maxRelDiff(packed, alone);
    assert.ok(d < 1e-4, `max relative gradient difference ${d}`);
  });

  it("the gradient does not depend on the micro-batch split (1, 2, 4 sequences per micro-batch)", () => {
    const m = model();
    const ex = examples(8);
    const seqs = [[ex[0], ex[1]], [ex[2]], [ex[3], ex[4], ex[5]], [ex[6], ex[7]]];
    const results = [1, 2, 4].map((micro) => {
      const r = sftStepGradients(m, seqs, micro, tok.padTokenId);
      return { r, g: grads(m) };
    });
    for (const other of results.slice(1)) {
      assert.equal(other.r.lossTokens, results[0].r.lossTokens);
      assert.ok(Math.abs(other.r.loss - results[0].r.loss) < 1e-6);
      const d = maxRelDiff(results[0].g, other.g);
      assert.ok(d < 1e-5, `max relative gradient difference ${d}`);
    }
  });

  it("recomputing layer activations in backward gives the same gradient", () => {
    const m = model();
    const ex = examples(5);
    const seqs = [
      [ex[0], ex[1]],
      [ex[2], ex[3], ex[4]],
    ];
    const kept = sftStepGradients(m, seqs, 2, tok.padTokenId);
    const a = grads(m);
    const recomputed = sftStepGradients(m, seqs, 2, tok.padTokenId, { recompute: true });
    assert.equal(recomputed.loss, kept.loss);
    assert.equal(maxRelDiff(a, grads(m)), 0);
  });
});
