import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultKs, estimateMean, majAtK, majorityVote, passAtK } from "../../src/eval/metrics.js";

function binom(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

test("pass@k equals the closed form 1 - C(n-c,k)/C(n,k) on all small cases", () => {
  for (let n = 1; n <= 12; n++) {
    for (let c = 0; c <= n; c++) {
      for (let k = 1; k <= n; k++) {
        const closed = 1 - binom(n - c, k) / binom(n, k);
        assert.ok(Math.abs(passAtK(n, c, k) - closed) < 1e-12, `n=${n} c=${c} k=${k}`);
      }
    }
  }
});

test("pass@k edge cases and hand-computed values", () => {
  assert.equal(passAtK(10, 0, 5), 0);
  assert.equal(passAtK(10, 10, 1), 1);
  assert.equal(passAtK(4, 1, 1), 0.25);
  // n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
  assert.ok(Math.abs(passAtK(4, 1, 2) - 0.5) < 1e-15);
  // n - c < k: every k-subset contains a correct sample
  assert.equal(passAtK(5, 3, 3), 1);
  // large n never overflows
  const v = passAtK(1024, 3, 512);
  assert.ok(v > 0.87 && v < 0.88, String(v));
  assert.throws(() => passAtK(4, 5, 1), /0 <= c <= n/);
  assert.throws(() => passAtK(4, 1, 5), /1 <= k <= n/);
});

test("pass@1 is the fraction correct", () => {
  for (let n = 1; n <= 20; n++)
    for (let c = 0; c <= n; c++) assert.ok(Math.abs(passAtK(n, c, 1) - c / n) < 1e-12);
});

test("majority vote: most frequent extracted answer, ties to the first seen, null never votes", () => {
  assert.equal(majorityVote(["1", "2", "2"], [true, false, false]), false);
  assert.equal(majorityVote(["1", "2", "1"], [true, false, true]), true);
  assert.equal(majorityVote(["2", "1"], [false, true]), false);
  assert.equal(majorityVote([null, null, "5"], [false, false, true]), true);
  assert.equal(majorityVote([null, null], [false, false]), false);
  // maj@2 over 4 samples: groups [a,b] (tie → a, wrong) and [c,c] (right) → 0.5
  assert.equal(majAtK(["a", "b", "c", "c"], [false, true, true, true], 2), 0.5);
  assert.equal(majAtK(["x", "x", "y", "y", "y"], [false, false, true, true, true], 5), 1);
});

test("avg and its bootstrap CI on known inputs", () => {
  const xs = [1, 0, 0.5, 0.5];
  const e = estimateMean(xs, 2000, 7);
  assert.equal(e.value, 0.5);
  // sample std = sqrt(((0.5^2)*2)/3) = sqrt(1/6); stderr = that / 2
  assert.ok(Math.abs(e.stderr - Math.sqrt(1 / 6) / 2) < 1e-12);
  assert.ok(e.ci95[0] >= 0 && e.ci95[0] < 0.5 && e.ci95[1] > 0.5 && e.ci95[1] <= 1);
  // the same seed gives the same interval, a different one (generally) another
  assert.deepEqual(estimateMean(xs, 2000, 7), e);
  // constant scores have a zero-width interval
  assert.deepEqual(estimateMean([0.25, 0.25, 0.25], 500, 1).ci95, [0.25, 0.25]);
  // a large sample: the percentile interval approaches mean ± 1.96 stderr
  const many = Array.from({ length: 400 }, (_, i) => (i % 4 === 0 ? 1 : 0));
  const big = estimateMean(many, 4000, 3);
  assert.ok(Math.abs(big.ci95[0] - (0.25 - 1.96 * big.stderr)) < 0.01, JSON.stringify(big));
  assert.ok(Math.abs(big.ci95[1] - (0.25 + 1.96 * big.stderr)) < 0.01, JSON.stringify(big));
});

test("default k values are powers of two up to n, plus n", () => {
  assert.deepEqual(defaultKs(64), [1, 2, 4, 8, 16, 32, 64]);
  assert.deepEqual(defaultKs(6), [1, 2, 4, 6]);
  assert.deepEqual(defaultKs(1), [1]);
});
