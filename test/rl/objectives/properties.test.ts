/** Property tests over random inputs: finite outputs for extreme values, exact zeros on masked tokens. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  AGGREGATION_MODES,
  KL_ESTIMATORS,
  POLICY_LOSS_NAMES,
  policyLoss,
} from "../../../src/rl/objectives/index.js";
import { positiveSftTerm } from "../../../src/rl/sft-term.js";

const token = fc.record({
  logp: fc.double({ min: -1e4, max: 0, noNaN: true }),
  oldLogp: fc.double({ min: -1e4, max: 0, noNaN: true }),
  refLogp: fc.double({ min: -1e4, max: 0, noNaN: true }),
  entropy: fc.double({ min: 0, max: 20, noNaN: true }),
  active: fc.boolean(),
});
const row = fc.record({
  tokens: fc.array(token, { minLength: 0, maxLength: 6 }),
  advantage: fc.oneof(
    fc.double({ min: -1e6, max: 1e6, noNaN: true }),
    fc.constantFrom(0, -0, 1e-300, -1e-300, 1e6, -1e6),
  ),
});
const batch = fc.array(row, { minLength: 1, maxLength: 5 });

test("no NaN or Inf for extreme ratios and advantages; masked tokens get exactly +0 gradient", () => {
  fc.assert(
    fc.property(
      batch,
      fc.constantFrom(...POLICY_LOSS_NAMES),
      fc.constantFrom(...AGGREGATION_MODES),
      fc.constantFrom(...KL_ESTIMATORS),
      fc.boolean(),
      (rows, name, aggregation, klEstimator, garbageInMaskedTokens) => {
        const loss = policyLoss(name, {
          aggregation,
          lengthDivisor: 5,
          klEstimator,
          klCoeff: 0.1,
          entropyCoeff: 0.01,
          tisCap: 2,
          entropyRatioClip: [0.95, 1.05],
        });
        // Masked positions may hold anything (padding); use NaN and −Infinity to prove they are never read.
        const pad = (v: number, active: boolean) => (active || !garbageInMaskedTokens ? v : Number.NaN);
        const out = loss({
          logp: rows.map((r) => r.tokens.map((t) => pad(t.logp, t.active))),
          oldLogp: rows.map((r) =>
            r.tokens.map((t) => (t.active || !garbageInMaskedTokens ? t.oldLogp : -Infinity)),
          ),
          refLogp: rows.map((r) => r.tokens.map((t) => pad(t.refLogp, t.active))),
          rolloutLogp: rows.map((r) => r.tokens.map((t) => pad(t.refLogp, t.active))),
          entropy: rows.map((r) => r.tokens.map((t) => pad(t.entropy, t.active))),
          oldEntropy: rows.map((r) =>
            r.tokens.map((t) => pad(t.refLogp < -5e3 ? 0 : t.entropy * 1.02, t.active)),
          ),
          mask: rows.map((r) => r.tokens.map((t) => t.active)),
          advantages: rows.map((r) => r.advantage),
        });
        assert.ok(Number.isFinite(out.loss), `loss ${out.loss}`);
        for (const [key, value] of Object.entries(out.metrics)) {
          assert.ok(Number.isFinite(value), `metric ${key} = ${value}`);
        }
        const flags = rows.flatMap((r) => r.tokens.map((t) => t.active));
        flags.forEach((active, k) => {
          assert.ok(Number.isFinite(out.dLogp[k]), `dLogp[${k}] = ${out.dLogp[k]}`);
          if (!active) assert.ok(Object.is(out.dLogp[k], 0), `masked dLogp[${k}] = ${out.dLogp[k]}`);
          if (!active && out.dEntropy) assert.ok(Object.is(out.dEntropy[k], 0));
        });
      },
    ),
    { numRuns: 300 },
  );
});

test("positive SFT term: finite, and zero gradient on masked and on non-positive responses", () => {
  fc.assert(
    fc.property(batch, (rows) => {
      const positive = rows.map((r) => r.advantage > 0);
      const out = positiveSftTerm({
        logp: rows.map((r) => r.tokens.map((t) => t.logp)),
        mask: rows.map((r) => r.tokens.map((t) => t.active)),
        positive,
      });
      assert.ok(Number.isFinite(out.loss));
      let k = 0;
      rows.forEach((r, i) => {
        for (const t of r.tokens) {
          if (!t.active || !positive[i]) assert.ok(Object.is(out.dLogp[k], 0));
          k++;
        }
      });
    }),
    { numRuns: 200 },
  );
});
