import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { AdamW, adamWStateFromTensors, adamWStateTensors } from "../../src/engine/optim.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer } from "../../src/model/tokenizer.js";
import {
  loadTrainingCheckpoint,
  OPTIMIZER_STATE_FILE,
  readTrainerState,
  requireInitCheckpoint,
  saveTrainingCheckpoint,
  TRAINER_STATE_FILE,
} from "../../src/store/checkpoint.js";
import { latestCheckpoint, listCheckpoints, resumeOrCreateRun, runPaths } from "../../src/store/run.js";
import { runTrainingSteps } from "../../src/store/steps.js";

const root = mkdtempSync(join(tmpdir(), "klear-store-ckpt-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => join(root, `${name}-${n++}`);

function tinyModel(seed: number): { model: Qwen3Model; tokenizer: ByteTokenizer } {
  const tokenizer = new ByteTokenizer({
    addedTokens: [{ content: "<|endoftext|>", special: true }],
    eosToken: "<|endoftext|>",
  });
  const config = tinyQwen3Config({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 16,
    numHiddenLayers: 1,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    headDim: 8,
    intermediateSize: 32,
    maxPositionEmbeddings: 32,
  });
  return { model: Qwen3Model.create(config, { seed }), tokenizer };
}

/** One AdamW step on a made-up gradient, so the moments are not all zero. */
function steppedOptimizer(model: Qwen3Model): AdamW {
  const opt = new AdamW(model.parameters(), { lr: 1e-2 });
  for (const p of model.parameters().values()) p.grad.fill(0.5);
  opt.step();
  return opt;
}

interface State {
  step: number;
  cursor: number;
  note: string;
}

describe("training checkpoints", () => {
  it("save then load restores the weights, the AdamW moments and step, and the trainer state", async () => {
    const run = resumeOrCreateRun({
      out: fresh("run"),
      log: () => {},
      parse: (v) => v,
      create: () => ({ lr: 1 }),
    }).paths;
    const { model, tokenizer } = tinyModel(1);
    const optimizer = steppedOptimizer(model);
    const trainerState: State = { step: 3, cursor: 17, note: "x" };
    const dir = await saveTrainingCheckpoint(run, 3, {
      payload: { model, tokenizer, optimizer },
      trainerState,
    });
    assert.deepEqual(latestCheckpoint(run.dir), { step: 3, path: dir });
    for (const f of ["config.json", "model.safetensors", OPTIMIZER_STATE_FILE, TRAINER_STATE_FILE]) {
      assert.ok(existsSync(join(dir, f)), `missing ${f}`);
    }

    const reloaded = (await loadModel(dir)).model;
    for (const [name, p] of model.parameters()) {
      assert.deepEqual(reloaded.parameters().get(name)?.data, p.data, `weights of ${name}`);
    }
    const restored = new AdamW(reloaded.parameters(), { lr: 1e-2 });
    const state = await loadTrainingCheckpoint<State>(dir, { who: "the test", optimizer: restored });
    assert.deepEqual(state, trainerState);
    assert.equal(restored.stepCount, 1);
    for (const [name, m] of optimizer.state().m) assert.deepEqual(restored.state().m.get(name), m);
    for (const [name, v] of optimizer.state().v) assert.deepEqual(restored.state().v.get(name), v);
  });

  it("a payload that writes itself (a training backend) fills the folder next to the trainer state", async () => {
    const run = runPaths(fresh("backend"));
    const dir = await saveTrainingCheckpoint(run, 1, {
      payload: { save: async (d) => writeFileSync(join(d, "remote.json"), "{}") },
      trainerState: { step: 1 },
    });
    assert.ok(existsSync(join(dir, "remote.json")));
    assert.deepEqual(readTrainerState(dir, "x"), { step: 1 });
  });

  it("a checkpoint without its trainer state or optimizer names what is missing", async () => {
    const run = runPaths(fresh("broken"));
    const { model, tokenizer } = tinyModel(2);
    const optimizer = steppedOptimizer(model);
    const dir = await saveTrainingCheckpoint(run, 2, {
      payload: { model, tokenizer, optimizer },
      trainerState: { step: 2 },
    });
    unlinkSync(join(dir, OPTIMIZER_STATE_FILE));
    await assert.rejects(
      loadTrainingCheckpoint(dir, { who: "the test", optimizer }),
      /has no optimizer\.safetensors/,
    );
    unlinkSync(join(dir, TRAINER_STATE_FILE));
    assert.throws(() => readTrainerState(dir, "the demo"), /so the demo cannot resume from it/);
  });

  it("AdamW state round-trips through named tensors", () => {
    const { model } = tinyModel(3);
    const opt = steppedOptimizer(model);
    const back = adamWStateFromTensors(adamWStateTensors(opt.state()), 7);
    assert.equal(back.step, 7);
    assert.deepEqual([...back.m.keys()].sort(), [...model.parameters().keys()].sort());
    assert.throws(
      () => adamWStateFromTensors(new Map([["x.y", { data: new Float32Array(1) }]]), 0),
      /m\.<param>/,
    );
  });

  it("requireInitCheckpoint names a missing --init and a folder that is no checkpoint", () => {
    assert.throws(
      () => requireInitCheckpoint("", "rl", "the policy"),
      /klear rl needs the policy to start from/,
    );
    assert.throws(() => requireInitCheckpoint(root, "sft"), /is not a checkpoint folder/);
  });
});

describe("resumeOrCreateRun and runTrainingSteps", () => {
  it("a stopped loop checkpoints its last step; the resumed one continues from it to the end", async () => {
    const out = fresh("loop");
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const saved: number[] = [];
    const loop = async (resume: boolean, stopAfter: number) => {
      const opened = resumeOrCreateRun({
        out,
        resume,
        log,
        parse: (v) => v as { total: number },
        create: () => ({ total: 5 }),
      });
      let step = opened.resumeFrom?.step ?? 0;
      let calls = 0;
      return runTrainingSteps({
        label: "test",
        runDir: opened.paths.dir,
        startStep: step,
        total: opened.config.total,
        checkpointEvery: 10,
        savedStep: opened.resumeFrom?.step ?? null,
        quiet: true,
        shouldStop: () => ++calls > stopAfter,
        log,
        runStep: async () => ({ step: ++step }),
        save: async (at) => {
          saved.push(at);
          await saveTrainingCheckpoint(opened.paths, at, {
            payload: { save: async () => {} },
            trainerState: { step: at },
          });
        },
      });
    };
    const first = await loop(false, 2);
    assert.equal(first.interrupted, true);
    assert.equal(first.step, 2);
    assert.match(lines.join("\n"), /interrupted at step 2\/5; checkpoint saved to .*step-2/);
    const second = await loop(true, Number.POSITIVE_INFINITY);
    assert.equal(second.interrupted, false);
    assert.equal(second.step, 5);
    assert.deepEqual(saved, [2, 5], "the last step of each process, never twice");
    assert.deepEqual(
      listCheckpoints(out).map((c) => c.step),
      [2, 5],
    );
    assert.match(lines.join("\n"), /resuming .* from step 2/);
  });
});
