import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { advantages } from "../../src/rl/advantages.js";
import { close } from "./helpers.js";

function near(got: ArrayLike<number>, want: number[], tol: number): void {
  for (const [i, w] of want.entries()) close(got[i], w, tol, `advantage ${i}`);
}

describe("grpo (spec §6 examples)", () => {
  const grpo = advantages("grpo");
  test("unbiased std by default, as the authors' code", () => {
    near(
      grpo({ rewards: [1, 1, -1, -1, -1, -1, -1, -1], groupSize: 8 }),
      [1.6202, 1.6202, ...Array(6).fill(-0.5401)],
      1e-4,
    );
  });
  test("population std selectable, as the paper's Eq. 4", () => {
    const pop = advantages("grpo", { std: "population" });
    near(
      pop({ rewards: [1, 1, -1, -1, -1, -1, -1, -1], groupSize: 8 }),
      [1.732, 1.732, ...Array(6).fill(-0.5773)],
      1e-4,
    );
  });
  test("a truncated response at −0.5", () => {
    near(
      grpo({ rewards: [1, -0.5, -1, -1, -1, -1, -1, -1], groupSize: 8 }),
      [2.3972, 0.2664, ...Array(6).fill(-0.4439)],
      1e-4,
    );
  });
  test("the soft code reward's ±1 scale and the pass rate give the same advantages", () => {
    const pass = [1, 0.75, 0.25, 0, 0, 0, 0, 0];
    const a = grpo({ rewards: pass.map((p) => 2 * p - 1), groupSize: 8 });
    const b = grpo({ rewards: pass, groupSize: 8 });
    near(a, Array.from(b), 1e-5);
  });
  test("groups by uid need not be adjacent; singletons get the raw reward (verl) or 0", () => {
    const out = grpo({ rewards: [1, 5, -1, 0.5], groupIds: ["a", "b", "a", "c"] });
    close(out[0], 1 / (Math.SQRT2 + 1e-6), 1e-12, "a0");
    close(out[2], -1 / (Math.SQRT2 + 1e-6), 1e-12, "a1");
    assert.equal(out[1], 5);
    assert.equal(out[3], 0.5);
    assert.equal(advantages("grpo", { singleton: "zero" })({ rewards: [5], groupIds: ["b"] })[0], 0);
  });
  test("zero-variance groups give exactly 0, even with eps 0", () => {
    assert.deepEqual(
      Array.from(advantages("grpo", { eps: 0 })({ rewards: [1, 1, 1], groupSize: 3 })),
      [0, 0, 0],
    );
  });
});

describe("other estimators", () => {
  const rewards = [1, 0, 0, 1, 1, 1];
  test("dr-grpo: mean-centred, no std", () => {
    near(advantages("dr-grpo")({ rewards, groupSize: 3 }), [2 / 3, -1 / 3, -1 / 3, 0, 0, 0], 1e-12);
  });
  test("rloo: reward minus the mean of the others", () => {
    near(
      advantages("rloo")({ rewards: [1, 0, 0, 1], groupSize: 4 }),
      [1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3],
      1e-12,
    );
  });
  test("reinforce++: whitened over the batch (unbiased), optionally weighted by tokens", () => {
    const out = advantages("reinforce++")({ rewards: [1, 0, 0, 1] });
    const sd = Math.sqrt(1 / 3 + 1e-8);
    near(out, [0.5 / sd, -0.5 / sd, -0.5 / sd, 0.5 / sd], 1e-12);
    // Token weighting: [1] ×3 tokens and [0] ×1 token = the whitening of [1,1,1,0].
    const weighted = advantages("reinforce++")({ rewards: [1, 0], tokenCounts: [3, 1] });
    const mu = 0.75;
    const sd2 = Math.sqrt((3 * 0.25 ** 2 + 0.75 ** 2) / 3 + 1e-8);
    near(weighted, [(1 - mu) / sd2, (0 - mu) / sd2], 1e-12);
  });
  test("reinforce++-baseline: group mean removed, then batch-whitened", () => {
    const out = advantages("reinforce++-baseline")({ rewards: [1, 0, 3, 3], groupSize: 2 });
    const sd = Math.sqrt((0.25 * 2) / 3 + 1e-8);
    near(out, [0.5 / sd, -0.5 / sd, 0, 0], 1e-12);
  });
  test("bad inputs", () => {
    assert.throws(() => advantages("grpo")({ rewards: [1, 2, 3], groupSize: 2 }), /does not divide/);
    assert.throws(() => advantages("grpo")({ rewards: [1, 2] }), /groupIds/);
    assert.throws(() => advantages("grpo")({ rewards: [1, Number.NaN], groupSize: 2 }), /not finite/);
    assert.throws(() => advantages("grpo", { bogus: 1 } as never), /unknown option "bogus"/);
  });
});
