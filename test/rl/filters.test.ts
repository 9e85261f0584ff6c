import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DynamicSampler,
  filterGroups,
  overlongFilterMask,
  softOverlongPenalty,
  truncatedFromFinishReasons,
} from "../../src/rl/filters.js";
import { policyLoss } from "../../src/rl/objectives/index.js";

describe("group filtering", () => {
  // Group a: mixed; b: all wrong but different wrong rewards; c: all correct; d: singleton; e: equal partials.
  const groupIds = ["a", "a", "b", "b", "c", "c", "d", "e", "e"];
  const rewards = [1, -1, -1, -0.5, 1, 1, -1, 0.5, 0.5];
  test("Klear's rule: acc must vary (all-wrong groups go even when rewards differ); singletons stay", () => {
    const out = filterGroups({ groupIds, rewards });
    assert.deepEqual(out.keptIndices, [0, 1, 6]);
    assert.equal(out.keptGroups, 2);
    assert.equal(out.droppedAllWrong, 2); // b and e
    assert.equal(out.droppedAllCorrect, 1); // c
  });
  test("DAPO's reward-variance rule keeps b", () => {
    const out = filterGroups({ groupIds, rewards }, { metric: "reward" });
    assert.deepEqual(out.keptIndices, [0, 1, 2, 3, 6]);
    assert.equal(out.droppedAllCorrect, 1);
    assert.equal(out.droppedZeroVariance, 1);
  });
  test("singletons can be dropped; maxMeanMetric drops easy groups", () => {
    assert.deepEqual(filterGroups({ groupIds, rewards }, { keepSingletons: false }).keptIndices, [0, 1]);
    const easy = filterGroups(
      { groupIds: [1, 1, 1, 2, 2, 2], rewards: [1, 1, 0, 1, 0, 0] },
      { maxMeanMetric: 0.5 },
    );
    assert.deepEqual(easy.keptIndices, [3, 4, 5]);
    assert.equal(easy.droppedByMean, 1);
  });
});

describe("dynamic sampling refill", () => {
  const cfg = {
    trainBatchPrompts: 2,
    responsesPerPrompt: 2,
    genBatchPrompts: 4,
    maxGenBatches: 1,
    onShortfall: "truncate" as const,
  };
  test("enough survivors: train on the first target trajectories (prefix slice)", () => {
    const s = new DynamicSampler<number>(cfg);
    assert.equal(s.promptsPerGeneration, 4);
    assert.equal(s.targetTrajectories, 4);
    s.add([0, 1, 2, 3, 4, 5]);
    assert.deepEqual(s.next(), {
      action: "train",
      batch: [0, 1, 2, 3],
      genBatches: 1,
      overflow: 2,
      shortfall: 0,
    });
  });
  test("Klear: one generation batch, then truncate to a multiple of the world size", () => {
    const s = new DynamicSampler<number>({ ...cfg, truncateMultiple: 2 });
    s.add([0, 1, 2]);
    assert.deepEqual(s.next(), { action: "train", batch: [0, 1], genBatches: 1, overflow: 0, shortfall: 2 });
    s.add([]);
    assert.equal(s.next().action, "skip");
  });
  test("DAPO: keep generating until full (maxGenBatches 0)", () => {
    const s = new DynamicSampler<number>({ ...cfg, maxGenBatches: 0 });
    s.add([0, 1]);
    assert.equal(s.next().action, "generate");
    s.add([2, 3, 4]);
    const d = s.next();
    assert.equal(d.action, "train");
    assert.equal(d.action === "train" && d.genBatches, 2);
  });
  test("onShortfall error names the fix", () => {
    const s = new DynamicSampler<number>({ ...cfg, maxGenBatches: 2, onShortfall: "error" });
    s.add([0]);
    assert.equal(s.next().action, "generate");
    s.add([1]);
    assert.throws(() => s.next(), /only 2 of 4 trajectories[\s\S]*maxGenBatches/);
  });
});

describe("overlong handling", () => {
  test("the overlong filter masks every token of truncated responses, so they get no gradient", () => {
    const truncated = truncatedFromFinishReasons(["stop", "length", null]);
    assert.deepEqual(truncated, [false, true, false]);
    const mask = overlongFilterMask(
      [
        [1, 1],
        [1, 1, 1],
        [1, 0],
      ],
      truncated,
    );
    assert.deepEqual(Array.from(mask), [1, 1, 0, 0, 0, 1, 0]);
    const out = policyLoss("gppo")({
      logp: [0, 0, 0, 0, 0, 0, 0],
      oldLogp: [0, 0, 0, 0, 0, 0, 0],
      advantages: [1, 1, 1],
      lengths: [2, 3, 2],
      mask,
    });
    assert.deepEqual(Array.from(out.dLogp), [-1 / 3, -1 / 3, 0, 0, 0, -1 / 3, 0]);
  });
  test("soft overlong punishment (DAPO): 0, then linear down to −factor at the limit", () => {
    const cfg = { maxResponseTokens: 32768, bufferTokens: 4096, penaltyFactor: 1 };
    assert.equal(softOverlongPenalty(1000, cfg), 0);
    assert.equal(softOverlongPenalty(28672, cfg), 0);
    assert.equal(softOverlongPenalty(30720, cfg), -0.5);
    assert.equal(softOverlongPenalty(32768, cfg), -1);
    assert.equal(softOverlongPenalty(32768, { ...cfg, penaltyFactor: 0.5 }), -0.5);
    assert.throws(() => softOverlongPenalty(10, { ...cfg, bufferTokens: 0 }), /bufferTokens/);
  });
});
