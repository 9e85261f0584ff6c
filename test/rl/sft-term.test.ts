import assert from "node:assert/strict";
import { test } from "node:test";
import { klearObjective, policyLoss } from "../../src/rl/objectives/index.js";
import { positiveSftTerm } from "../../src/rl/sft-term.js";

test("NLL over fully correct responses only, token-mean over their tokens, weight α = 0.1", () => {
  const logp = [[-1, -2], [-3], [-4, -5, -6]];
  const out = positiveSftTerm({ logp, rewards: [1, 0.5, 1], mask: [[1, 1], [1], [1, 0, 1]] });
  // Positive tokens: −1, −2, −4, −6 → NLL mean 13/4; partial code reward 0.5 is not positive.
  assert.equal(out.nll, 13 / 4);
  assert.equal(out.loss, 0.1 * (13 / 4));
  assert.equal(out.positiveTokens, 4);
  assert.equal(out.positiveSequences, 2);
  assert.deepEqual(Array.from(out.dLogp), [-0.025, -0.025, 0, -0.025, 0, -0.025]);
});

test("no positive response: zero loss and zero gradient, not NaN", () => {
  const out = positiveSftTerm({ logp: [[-1, -2]], positive: [false] });
  assert.equal(out.loss, 0);
  assert.deepEqual(Array.from(out.dLogp), [0, 0]);
});

test("globalTokenCount makes micro-batches add up", () => {
  const whole = positiveSftTerm({ logp: [[-1, -2], [-3]], positive: [true, true] }, { alpha: 0.2 });
  const a = positiveSftTerm({ logp: [[-1, -2]], positive: [true], globalTokenCount: 3 }, { alpha: 0.2 });
  const b = positiveSftTerm({ logp: [[-3]], positive: [true], globalTokenCount: 3 }, { alpha: 0.2 });
  assert.ok(Math.abs(a.loss + b.loss - whole.loss) < 1e-15);
  assert.deepEqual([...a.dLogp, ...b.dLogp], Array.from(whole.dLogp));
});

test("bad config", () => {
  assert.throws(() => positiveSftTerm({ logp: [[-1]], positive: [true] }, { alpha: -1 }), /alpha/);
  assert.throws(() => positiveSftTerm({ logp: [[-1]] }), /positive or rewards/);
  assert.throws(() => positiveSftTerm({ logp: [[-1]], positive: [true, false] }), /2 flags for 1 responses/);
});

test("klearObjective = GPPO + α·SFT with one combined gradient", () => {
  const input = {
    logp: [[-1, -2], [-0.5]],
    oldLogp: [[-1, -2], [-0.5]],
    advantages: [1, -1],
    rewards: [1, -1],
  };
  const out = klearObjective()(input);
  const gppo = policyLoss("gppo")(input);
  const sft = positiveSftTerm({ logp: input.logp, rewards: input.rewards }, { alpha: 0.1 });
  assert.equal(out.loss, gppo.loss + sft.loss);
  assert.deepEqual(
    Array.from(out.dLogp),
    Array.from(gppo.dLogp, (g, k) => g + sft.dLogp[k]),
  );
  assert.equal(out.metrics.positiveTokens, 2);
  assert.equal(out.metrics.sftNll, 1.5);
});
