// The trainer's pieces called directly: batch packing, rollout collection, the policy update, held-out
// evaluation, each on a tiny real model through the local backend.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LocalPolicyTrainer } from "../../src/backend/local.js";
import { gatherResponse, packSequences, scatterResponses } from "../../src/backend/pack.js";
import { evaluateRlPolicy } from "../../src/rl/evaluate.js";
import { rlObjective } from "../../src/rl/loss-options.js";
import { collectRollouts, truncatePromptLeft } from "../../src/rl/rollout.js";
import type { RlPrompt, RlScoreContext, RlTask } from "../../src/rl/task.js";
import { type RlConfig, resolveRlConfig } from "../../src/rl/trainer-config.js";
import { oldLogprobs, policyUpdate } from "../../src/rl/update.js";
import { eosByteTokenizer, tinyTestModel } from "../helpers/tiny-model.js";

const tokenizer = eosByteTokenizer();

function tinyPolicy(seed = 3): LocalPolicyTrainer {
  const model = tinyTestModel(tokenizer, seed, { tieWordEmbeddings: true });
  return new LocalPolicyTrainer(model, tokenizer, {
    lr: 0.01,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
  });
}

function config(overrides: Record<string, string> = {}): RlConfig {
  return resolveRlConfig({
    overrides: {
      "rollout.genBatchPrompts": "4",
      "rollout.trainBatchPrompts": "4",
      "rollout.n": "4",
      "rollout.maxNewTokens": "6",
      "update.miniBatchPrompts": "2",
      "update.microBatchSize": "5",
      ...overrides,
    },
  });
}

const prompt = (i: number): RlPrompt => {
  const text = `question number ${i}:`;
  return { id: `q${i}`, text, tokens: tokenizer.encode(text), answer: "" };
};

/** Prompts q0, q1, …; "correct" decided by a hash of the response, so groups have variance. */
function hashTask(): RlTask & { seeds: number[] } {
  const seeds: number[] = [];
  return {
    name: "hash",
    heldOut: [0, 1, 2].map((i) => prompt(1000 + i)),
    prompts: (cursor, count) => Array.from({ length: count }, (_, i) => prompt(cursor + i)),
    seeds,
    score(_p, response, ctx: RlScoreContext) {
      seeds.push(ctx.seed);
      let h = 2166136261;
      for (let i = 0; i < response.length; i++) h = Math.imul(h ^ response.charCodeAt(i), 16777619) >>> 0;
      const correct = (h & 1) === 1;
      return { reward: correct ? 1 : -1, correct };
    },
  };
}

describe("packSequences", () => {
  it("targets exactly the response tokens, and scatter inverts gather", () => {
    const seqs = [
      { promptTokens: [1, 2, 3], responseTokens: [4, 5] },
      { promptTokens: [6], responseTokens: [7, 8, 9, 10] },
    ];
    const packed = packSequences(seqs, 0);
    assert.equal(packed.batch.seqLen, 4);
    assert.deepEqual([...packed.batch.targets], [-1, -1, 4, 5, 7, 8, 9, 10]);
    assert.deepEqual([...packed.batch.tokens], [1, 2, 3, 4, 6, 7, 8, 9]);
    assert.deepEqual(packed.lengths, [2, 4]);
    const flat = Float32Array.from({ length: 8 }, (_, i) => i + 0.5);
    const rows = [0, 1].map((r) => gatherResponse(flat, packed, r));
    assert.deepEqual([...rows[0]], [2.5, 3.5]);
    const back = scatterResponses(rows, packed);
    assert.deepEqual([...back], [0, 0, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]);
  });
});

describe("collectRollouts", () => {
  it("generates n responses per prompt, scores each with its own seed, advances the cursor", async () => {
    const policy = tinyPolicy();
    const task = hashTask();
    const r = await collectRollouts({
      config: config(),
      task,
      score: task.score,
      sampler: policy.sampler(),
      tokenizer,
      cursor: 8,
    });
    assert.equal(r.generated.length, 16);
    assert.equal(r.cursor, 12);
    assert.deepEqual([...new Set(r.generated.map((t) => t.uid))], ["8", "9", "10", "11"]);
    assert.equal(new Set(task.seeds).size, 16, "a distinct scoring seed per response");
    assert.equal(r.metrics.genBatches, 1);
    assert.equal(r.metrics.trajectories, r.batch.length);
    assert.equal(
      r.metrics.keptGroups + r.metrics.droppedAllCorrect + r.metrics.droppedAllWrong,
      4,
      "every group kept or dropped",
    );
    assert.equal(r.metrics.promptsTruncated, 0);
  });

  it("rollout.maxPromptTokens keeps the end of a long prompt and counts it", async () => {
    assert.deepEqual(truncatePromptLeft([1, 2, 3, 4], 2), [3, 4]);
    assert.deepEqual(truncatePromptLeft([1, 2], 0), [1, 2]);
    const policy = tinyPolicy();
    const task = hashTask();
    const r = await collectRollouts({
      config: config({ "rollout.maxPromptTokens": "5" }),
      task,
      score: task.score,
      sampler: policy.sampler(),
      tokenizer,
      cursor: 0,
    });
    assert.equal(r.metrics.promptsTruncated, 4);
    for (const t of r.generated) assert.deepEqual(t.promptTokens, t.prompt.tokens.slice(-5));
  });
});

describe("policyUpdate", () => {
  it("recomputes the sampler's log-probs, steps once per mini-batch and moves the weights", async () => {
    const policy = tinyPolicy();
    const task = hashTask();
    const cfg = config({ "groupFilter.enabled": "false" });
    const { batch } = await collectRollouts({
      config: cfg,
      task,
      score: task.score,
      sampler: policy.sampler(),
      tokenizer,
      cursor: 0,
    });
    const old = await oldLogprobs(policy, null, batch, { microBatchSize: 5, temperature: 1 });
    assert.ok(old.metrics.logprobDiffMax < 1e-3, `logprobDiffMax ${old.metrics.logprobDiffMax}`);

    const before = new Map([...policy.model.parameters()].map(([k, p]) => [k, p.data.slice()]));
    const m = await policyUpdate(policy, null, batch, {
      ...rlObjective(cfg),
      miniBatchSize: 8,
      microBatchSize: 5,
      ppoEpochs: 1,
      temperature: 1,
      lr: 0.01,
      gradClip: 1,
    });
    assert.equal(m.optimizerSteps, 2, "16 responses in mini-batches of 8");
    assert.equal(m.skippedUpdates, 0);
    assert.ok(Number.isFinite(m.pgLoss) && m.gradNorm > 0);
    assert.ok(
      batch.some((t) => t.advantage !== 0),
      "advantages assigned",
    );
    let moved = 0;
    for (const [k, p] of policy.model.parameters())
      if (p.data.some((v, i) => v !== before.get(k)?.[i])) moved++;
    assert.equal(moved, policy.model.parameters().size);
  });
});

describe("evaluateRlPolicy", () => {
  it("scores one response per held-out prompt into eval records", async () => {
    const policy = tinyPolicy();
    const task = hashTask();
    const r = await evaluateRlPolicy(policy.sampler(), tokenizer, task.heldOut, task.score, {
      maxNewTokens: 4,
      temperature: 0.6,
      topP: 0.95,
      seed: 1,
    });
    assert.equal(r.records.length, 3);
    assert.equal(r.accuracy, r.records.filter((x) => x.correct).length / 3);
    assert.ok(r.records.every((x) => x.kind === "eval"));
  });
});
