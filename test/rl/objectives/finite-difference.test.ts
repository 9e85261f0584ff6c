/**
 * For the losses whose reported value is a genuine function of log π (PPO clip, dual-clip, clip-higher,
 * GSPO under seq-mean-token-mean, the KL estimators, the entropy bonus and the SFT term), dLogp must
 * match central finite differences of the loss. GPPO and CISPO use stop-gradients, so their value is
 * flat where their gradient is not: finite differences are the wrong oracle, as the last test shows.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AGGREGATION_MODES, type PolicyLossConfig, policyLoss } from "../../../src/rl/objectives/index.js";
import { positiveSftTerm } from "../../../src/rl/sft-term.js";
import { close, type RandomBatch, randomBatch } from "../helpers.js";

const H = 1e-6;

/** Distance from a token's ratio to the nearest kink of a clipped loss (FD is meaningless across one). */
function nearKink(logRatio: number, cfg: PolicyLossConfig): boolean {
  const r = Math.exp(logRatio);
  const kinks = [1 - (cfg.epsLow ?? 0.2), 1 + (cfg.epsHigh ?? cfg.epsLow ?? 0.2), cfg.clipRatioC ?? Infinity];
  return kinks.some((k) => Math.abs(r - k) < 1e-4);
}

function checkFiniteDifferences(
  name: string,
  cfg: PolicyLossConfig,
  batch: RandomBatch,
  withRef = false,
): number {
  const loss = policyLoss(name, cfg);
  const run = (logp: number[][]) =>
    loss({
      logp,
      oldLogp: batch.oldLogp,
      advantages: batch.advantages,
      mask: batch.mask,
      ...(withRef ? { refLogp: batch.refLogp } : {}),
    });
  const base = run(batch.logp);
  let checked = 0;
  for (let i = 0; i < batch.logp.length; i++) {
    for (let t = 0; t < batch.logp[i].length; t++) {
      if (name !== "gspo" && nearKink(batch.logp[i][t] - batch.oldLogp[i][t], cfg)) continue;
      const plus = batch.logp.map((r) => r.slice());
      const minus = batch.logp.map((r) => r.slice());
      plus[i][t] += H;
      minus[i][t] -= H;
      const fd = (run(plus).loss - run(minus).loss) / (2 * H);
      close(base.dLogpRows[i][t], fd, 1e-6, `${name} row ${i} token ${t}`);
      checked++;
    }
  }
  return checked;
}

describe("finite differences agree with dLogp for the smooth losses", () => {
  const cases: [string, PolicyLossConfig][] = [
    ["ppo-clip", { epsLow: 0.2 }],
    ["dual-clip", { epsLow: 0.2, clipRatioC: 1.3 }],
    ["clip-higher", { epsLow: 0.2, epsHigh: 0.28 }],
  ];
  for (const [name, cfg] of cases) {
    for (const aggregation of AGGREGATION_MODES) {
      test(`${name} with ${aggregation}`, () => {
        const full = {
          ...cfg,
          aggregation,
          ...(aggregation === "seq-mean-token-sum-norm" ? { lengthDivisor: 16 } : {}),
        };
        let checked = 0;
        for (let seed = 1; seed <= 3; seed++)
          checked += checkFiniteDifferences(name, full, randomBatch(seed));
        assert.ok(checked > 40, `too few tokens checked (${checked})`);
      });
    }
  }

  test("gspo with seq-mean-token-mean (the sequence ratio couples a row's tokens)", () => {
    for (let seed = 1; seed <= 3; seed++) {
      // Spread kept small so some sequences stay inside GSPO's narrow range and some fall outside.
      const batch = randomBatch(seed, 6, 9, 0.002);
      checkFiniteDifferences(
        "gspo",
        { epsLow: 3e-4, epsHigh: 4e-4, aggregation: "seq-mean-token-mean" },
        batch,
      );
    }
  });

  for (const klEstimator of ["k1", "k2", "k3"] as const) {
    test(`KL penalty ${klEstimator} (klCoeff 0.3) adds its exact gradient`, () => {
      const cfg: PolicyLossConfig = { epsLow: 0.2, klEstimator, klCoeff: 0.3 };
      for (let seed = 4; seed <= 5; seed++) checkFiniteDifferences("ppo-clip", cfg, randomBatch(seed), true);
    });
  }

  test("entropy bonus: dEntropy is the derivative of the loss in each token's entropy", () => {
    const batch = randomBatch(9);
    const loss = policyLoss("clip-higher", { entropyCoeff: 0.01, aggregation: "seq-mean-token-mean" });
    const run = (entropy: number[][]) => loss({ ...batch, entropy });
    const base = run(batch.entropy);
    assert.ok(base.dEntropy);
    let k = 0;
    for (let i = 0; i < batch.entropy.length; i++) {
      for (let t = 0; t < batch.entropy[i].length; t++, k++) {
        const plus = batch.entropy.map((r) => r.slice());
        plus[i][t] += 1e-3;
        close((run(plus).loss - base.loss) / 1e-3, base.dEntropy[k], 1e-7, `entropy token ${k}`);
      }
    }
  });

  test("positive-sample SFT term", () => {
    const batch = randomBatch(11);
    const positive = batch.advantages.map((a) => a > 0);
    const run = (logp: number[][]) => positiveSftTerm({ logp, mask: batch.mask, positive }, { alpha: 0.1 });
    const base = run(batch.logp);
    for (let i = 0; i < batch.logp.length; i++) {
      for (let t = 0; t < batch.logp[i].length; t++) {
        const plus = batch.logp.map((r) => r.slice());
        const minus = batch.logp.map((r) => r.slice());
        plus[i][t] += H;
        minus[i][t] -= H;
        close(base.dLogpRows[i][t], (run(plus).loss - run(minus).loss) / (2 * H), 1e-6, `sft ${i},${t}`);
      }
    }
  });
});

describe("GPPO's gradient is not the derivative of its value", () => {
  test("high-clipped positive token: the value is flat, the gradient is −(1+ε_h)·A", () => {
    const gppo = policyLoss("gppo");
    const at = (logp: number) => gppo({ logp: [logp], oldLogp: [0], advantages: [1] });
    const logp = Math.log(1.5);
    const fd = (at(logp + H).loss - at(logp - H).loss) / (2 * H);
    assert.equal(fd, 0);
    assert.ok(Math.abs(at(logp).dLogp[0] - -1.28) < 1e-12);
  });
  test("CISPO likewise: flat value outside the range, non-zero gradient", () => {
    const cispo = policyLoss("cispo");
    const at = (logp: number) => cispo({ logp: [logp], oldLogp: [0], advantages: [-1] });
    const logp = Math.log(2);
    assert.equal((at(logp + H).loss - at(logp - H).loss) / (2 * H), 0);
    assert.ok(Math.abs(at(logp).dLogp[0] - 1.28) < 1e-12);
  });
});
