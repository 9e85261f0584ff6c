/**
 * Per-region gradient coefficient tables, computed by hand from the paper's formulas (spec §5.3–§5.7):
 * dLoss/dlogp = −A·w where w is the region's detached importance weight. One token per call with
 * token-mean aggregation, so the aggregation scale is 1 and the table value is the coefficient itself.
 * GPPO's gradient is not the derivative of its forward value, so these tables (not finite differences)
 * are its oracle.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type PolicyLossConfig, policyLoss } from "../../../src/rl/objectives/index.js";

/** [δ, A, expected loss value, expected dLoss/dlogp] */
type Row = readonly [number, number, number, number];

function checkTable(name: string, cfg: PolicyLossConfig, rows: readonly Row[]): void {
  const loss = policyLoss(name, cfg);
  for (const [delta, adv, value, grad] of rows) {
    const out = loss({ logp: [Math.log(delta)], oldLogp: [0], advantages: [adv] });
    const where = `${name} δ=${delta} A=${adv}`;
    assert.ok(Math.abs(out.loss - value) < 1e-9, `${where}: loss ${out.loss} ≠ ${value}`);
    assert.ok(Math.abs(out.dLogp[0] - grad) < 1e-9, `${where}: dLogp ${out.dLogp[0]} ≠ ${grad}`);
  }
}

// Regions: below the clip range (δ=0.5), inside (δ=1.1), above (δ=1.5), far above / past c (δ=12).
// ε_l = 0.2, ε_h = 0.28, c = 10 unless stated; A = +2 and A = −3.
describe("per-region gradient tables (hand-computed, A ∈ {+2, −3})", () => {
  test("gppo (β1 = β2 = 1): clipped tokens keep a bounded gradient; A<0 past c gets 0", () => {
    checkTable("gppo", { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 }, [
      [0.5, 2, -1.0, -1.0], // A>0 below: unclipped, w = δ
      [1.1, 2, -2.2, -2.2], // inside: −A·δ
      [1.5, 2, -2.56, -2.56], // high-clipped positive: −(1+ε_h)·A, never 0
      [12, 2, -2.56, -2.56],
      [0.5, -3, 2.4, 2.4], // low-clipped negative: −(1−ε_l)·A = 0.8·3
      [1.1, -3, 3.3, 3.3],
      [1.5, -3, 4.5, 4.5], // A<0 above 1+ε_h: unclipped (pessimistic min)
      [12, -3, 30, 0], // dual-clip: value −A·c, gradient 0
    ]);
  });

  test("gppo general form β1 = 0.25, β2 = 0.5 scales value and gradient of the clipped regions", () => {
    checkTable("gppo", { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10, beta1: 0.25, beta2: 0.5 }, [
      [0.5, 2, -1.0, -1.0],
      [1.1, 2, -2.2, -2.2],
      [1.5, 2, -1.28, -1.28], // −β2·(1+ε_h)·A = −0.5·1.28·2
      [12, 2, -1.28, -1.28],
      [0.5, -3, 0.6, 0.6], // −β1·(1−ε_l)·A = 0.25·0.8·3
      [1.1, -3, 3.3, 3.3],
      [1.5, -3, 4.5, 4.5],
      [12, -3, 30, 0],
    ]);
  });

  test("gppo-only-high: GPPO's gradient above, PPO's hard clip below", () => {
    checkTable("gppo-only-high", { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 }, [
      [0.5, 2, -1.0, -1.0],
      [1.1, 2, -2.2, -2.2],
      [1.5, 2, -2.56, -2.56],
      [12, 2, -2.56, -2.56],
      [0.5, -3, 2.4, 0], // low-clipped negative: PPO value, zero gradient
      [1.1, -3, 3.3, 3.3],
      [1.5, -3, 4.5, 4.5],
      [12, -3, 30, 0],
    ]);
  });

  test("ppo-clip (symmetric ε = 0.2, no dual-clip): clipped tokens get zero gradient", () => {
    checkTable("ppo-clip", { epsLow: 0.2 }, [
      [0.5, 2, -1.0, -1.0],
      [1.1, 2, -2.2, -2.2],
      [1.5, 2, -2.4, 0], // −A·(1+ε) with ε_h = ε_l = 0.2
      [12, 2, -2.4, 0],
      [0.5, -3, 2.4, 0],
      [1.1, -3, 3.3, 3.3],
      [1.5, -3, 4.5, 4.5],
      [12, -3, 36, 36], // no cap: −A·δ
    ]);
  });

  test("dual-clip (ε = 0.2, c = 3): caps negative-advantage tokens with δ > c", () => {
    checkTable("dual-clip", { epsLow: 0.2, clipRatioC: 3 }, [
      [0.5, 2, -1.0, -1.0],
      [1.1, 2, -2.2, -2.2],
      [1.5, 2, -2.4, 0],
      [12, 2, -2.4, 0], // the cap never applies to A>0
      [0.5, -3, 2.4, 0],
      [1.1, -3, 3.3, 3.3],
      [2.5, -3, 7.5, 7.5], // below c: unclipped
      [12, -3, 9, 0], // −A·c = 3·3, gradient 0
    ]);
  });

  test("clip-higher (ε_l = 0.2, ε_h = 0.28, no dual-clip)", () => {
    checkTable("clip-higher", { epsLow: 0.2, epsHigh: 0.28 }, [
      [0.5, 2, -1.0, -1.0],
      [1.1, 2, -2.2, -2.2],
      [1.25, 2, -2.5, -2.5], // inside the wider upper range
      [1.5, 2, -2.56, 0],
      [0.5, -3, 2.4, 0],
      [1.1, -3, 3.3, 3.3],
      [1.5, -3, 4.5, 4.5],
      [12, -3, 36, 36],
    ]);
  });

  test("cispo: w = clip(δ, 1−ε_l, 1+ε_h) whatever the sign of A", () => {
    checkTable("cispo", { epsLow: 0.2, epsHigh: 0.28 }, [
      [0.5, 2, -1.6, -1.6], // GPPO would use δ = 0.5 here
      [1.1, 2, -2.2, -2.2],
      [1.5, 2, -2.56, -2.56],
      [12, 2, -2.56, -2.56],
      [0.5, -3, 2.4, 2.4],
      [1.1, -3, 3.3, 3.3],
      [1.5, -3, 3.84, 3.84], // GPPO would use δ = 1.5 here
      [12, -3, 3.84, 3.84],
    ]);
  });

  test("gspo on one-token sequences equals clip-higher on the (then equal) sequence ratio", () => {
    checkTable("gspo", { epsLow: 0.2, epsHigh: 0.28 }, [
      [0.5, 2, -1.0, -1.0],
      [1.1, 2, -2.2, -2.2],
      [1.5, 2, -2.56, 0],
      [12, 2, -2.56, 0],
      [0.5, -3, 2.4, 0],
      [1.1, -3, 3.3, 3.3],
      [1.5, -3, 4.5, 4.5],
      [12, -3, 36, 36],
    ]);
  });

  test("gspo clips on the sequence ratio exp(mean log δ), not on token ratios", () => {
    const loss = policyLoss("gspo", { epsLow: 0.2, epsHigh: 0.28, aggregation: "seq-mean-token-mean" });
    // Token ratios 2 and 0.5 are each outside the range, but their geometric mean is 1: inside.
    const inside = loss({ logp: [[Math.log(2), Math.log(0.5)]], oldLogp: [[0, 0]], advantages: [2] });
    assert.deepEqual(Array.from(inside.dLogp), [-1, -1]); // −A·s·scale = −2·1·(1/2)
    assert.equal(inside.metrics.clipFracHigh, 0);
    // Token ratios 1.2 and 1.875: sequence ratio sqrt(2.25) = 1.5 > 1.28, so A>0 is clipped for both.
    const clipped = loss({ logp: [[Math.log(1.2), Math.log(1.875)]], oldLogp: [[0, 0]], advantages: [2] });
    assert.deepEqual(Array.from(clipped.dLogp), [0, 0]);
    assert.equal(clipped.metrics.clipFracHigh, 1);
    assert.ok(Math.abs(clipped.metrics.ratioMean - 1.5) < 1e-12);
  });

  test("truncated IS multiplies value and gradient by min(π_old/π_rollout, cap)", () => {
    const input = { logp: [Math.log(1.1)], oldLogp: [0], rolloutLogp: [-Math.log(1.5)], advantages: [2] };
    const uncapped = policyLoss("gppo", { tisCap: 2 })(input);
    assert.ok(Math.abs(uncapped.dLogp[0] - -2.2 * 1.5) < 1e-9);
    assert.ok(Math.abs(uncapped.loss - -2.2 * 1.5) < 1e-9);
    assert.ok(Math.abs(uncapped.metrics.tisWeightMean - 1.5) < 1e-12);
    const capped = policyLoss("gppo", { tisCap: 1.2 })(input);
    assert.ok(Math.abs(capped.dLogp[0] - -2.2 * 1.2) < 1e-9);
    assert.equal(policyLoss("gppo")(input).metrics.tisWeightMean, 1);
    assert.throws(
      () => policyLoss("gppo", { tisCap: 2 })({ ...input, rolloutLogp: undefined }),
      /no rolloutLogp/,
    );
    assert.throws(() => policyLoss("gppo", { tisCap: 0 }), /tisCap = 0 must be > 0/);
  });

  test("ERC removes the policy gradient of tokens whose entropy ratio leaves (0.95, 1.05)", () => {
    const loss = policyLoss("gppo", { entropyRatioClip: [0.95, 1.05] });
    const out = loss({
      logp: [0, 0, 0],
      oldLogp: [0, 0, 0],
      advantages: [1, 1, 1],
      entropy: [1.0, 1.2, 0.9],
      oldEntropy: [1.0, 1.0, 1.0],
    });
    assert.deepEqual(Array.from(out.dLogp), [-1 / 3, 0, 0]);
    assert.ok(Math.abs(out.loss - -1) < 1e-12); // values are kept
    assert.ok(Math.abs(out.metrics.entropyRatioClipFrac - 2 / 3) < 1e-12);
    assert.throws(
      () => loss({ logp: [0], oldLogp: [0], advantages: [1] }),
      /entropy or oldEntropy is missing/,
    );
    assert.throws(() => policyLoss("gppo", { entropyRatioClip: [1.05, 0.95] }), /0 < low < 1 < high/);
  });

  test("boundaries are strict: δ exactly 1−ε_l or 1+ε_h is unclipped", () => {
    const loss = policyLoss("gppo", { epsLow: 0.25, epsHigh: 0.25, clipRatioC: 4 });
    // 0.75, 1.25 and 4 are exact in binary, so exp(log(x)) round-trips near enough: use oldLogp instead.
    const at = (delta: number, adv: number) =>
      loss({ logp: [0], oldLogp: [-Math.log(delta)], advantages: [adv] }).metrics;
    assert.equal(at(1.25 - 1e-12, 1).clipFracHigh, 0);
    assert.equal(at(1.25 + 1e-9, 1).clipFracHigh, 1);
    assert.equal(at(0.75 + 1e-9, -1).clipFracLow, 0);
    assert.equal(at(0.75 - 1e-9, -1).clipFracLow, 1);
    assert.equal(at(4 - 1e-9, -1).dualClipFrac, 0);
    assert.equal(at(4 + 1e-9, -1).dualClipFrac, 1);
  });
});

// Spec §5.4: ε_l=0.2, ε_h=0.28, c=10; each cell (per-token loss value, ∂loss/∂logπ), A = ±1.
const DELTAS = [0.5, 0.9, 1.0, 1.2, 1.5, 12] as const;
const SPEC_5_4: Record<string, { cfg: PolicyLossConfig; pos: number[][]; neg: number[][] }> = {
  "clip-higher": {
    cfg: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 },
    pos: [
      [-0.5, -0.5],
      [-0.9, -0.9],
      [-1, -1],
      [-1.2, -1.2],
      [-1.28, 0],
      [-1.28, 0],
    ],
    neg: [
      [0.8, 0],
      [0.9, 0.9],
      [1, 1],
      [1.2, 1.2],
      [1.5, 1.5],
      [10, 0],
    ],
  },
  gppo: {
    cfg: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 },
    pos: [
      [-0.5, -0.5],
      [-0.9, -0.9],
      [-1, -1],
      [-1.2, -1.2],
      [-1.28, -1.28],
      [-1.28, -1.28],
    ],
    neg: [
      [0.8, 0.8],
      [0.9, 0.9],
      [1, 1],
      [1.2, 1.2],
      [1.5, 1.5],
      [10, 0],
    ],
  },
  "gppo β1=0.25": {
    cfg: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10, beta1: 0.25, beta2: 1 },
    pos: [
      [-0.5, -0.5],
      [-0.9, -0.9],
      [-1, -1],
      [-1.2, -1.2],
      [-1.28, -1.28],
      [-1.28, -1.28],
    ],
    neg: [
      [0.2, 0.2],
      [0.9, 0.9],
      [1, 1],
      [1.2, 1.2],
      [1.5, 1.5],
      [10, 0],
    ],
  },
  "gppo-only-high": {
    cfg: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 },
    pos: [
      [-0.5, -0.5],
      [-0.9, -0.9],
      [-1, -1],
      [-1.2, -1.2],
      [-1.28, -1.28],
      [-1.28, -1.28],
    ],
    neg: [
      [0.8, 0],
      [0.9, 0.9],
      [1, 1],
      [1.2, 1.2],
      [1.5, 1.5],
      [10, 0],
    ],
  },
};
// CISPO's column gives gradients only.
const CISPO_GRADS = { pos: [-0.8, -0.9, -1, -1.2, -1.28, -1.28], neg: [0.8, 0.9, 1, 1.2, 1.28, 1.28] };

describe("spec §5.4 test vectors", () => {
  for (const [label, { cfg, pos, neg }] of Object.entries(SPEC_5_4)) {
    test(label, () => {
      const name = label.split(" ")[0];
      const rows: Row[] = [];
      DELTAS.forEach((d, i) => {
        rows.push([d, 1, pos[i][0], pos[i][1]]);
        rows.push([d, -1, neg[i][0], neg[i][1]]);
      });
      checkTable(name, cfg, rows);
    });
  }
  test("cispo (gradients)", () => {
    const loss = policyLoss("cispo", { epsLow: 0.2, epsHigh: 0.28 });
    DELTAS.forEach((d, i) => {
      for (const [adv, want] of [
        [1, CISPO_GRADS.pos[i]],
        [-1, CISPO_GRADS.neg[i]],
      ] as const) {
        const got = loss({ logp: [Math.log(d)], oldLogp: [0], advantages: [adv] }).dLogp[0];
        assert.ok(Math.abs(got - want) < 1e-9, `cispo δ=${d} A=${adv}: ${got} ≠ ${want}`);
      }
    });
  });
  test("the whole table at once: token-mean divides each coefficient by the token count", () => {
    const loss = policyLoss("gppo", { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 });
    const logp = [...DELTAS, ...DELTAS].map(Math.log);
    const advantages = [...DELTAS.map(() => 1), ...DELTAS.map(() => -1)];
    const out = loss({ logp, oldLogp: logp.map(() => 0), advantages });
    const expected = [...SPEC_5_4.gppo.pos, ...SPEC_5_4.gppo.neg].map(([, g]) => g / 12);
    for (const [i, g] of out.dLogp.entries()) assert.ok(Math.abs(g - expected[i]) < 1e-12, `token ${i}`);
    // Clipped-high: δ=1.5,12 with A=+1; clipped-low: δ=0.5 with A=−1; dual: δ=12 with A=−1.
    assert.equal(out.metrics.clipFracHigh, 2 / 12);
    assert.equal(out.metrics.clipFracLow, 1 / 12);
    assert.equal(out.metrics.dualClipFrac, 1 / 12);
    assert.equal(out.metrics.boundedGradFrac, 3 / 12);
    assert.ok(Math.abs(out.metrics.ratioMax - 12) < 1e-9);
  });
});
