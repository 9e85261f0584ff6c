// Optimizer pieces: verl's learning-rate schedules, torch-style global-norm clipping, AdamW state.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import {
  AdamW,
  clipGradNorm,
  countLossTokens,
  gradNorm,
  lrAt,
  type Parameter,
} from "../../src/engine/optim.js";
import { ConfigError } from "../../src/util/errors.js";

const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";

test("schedules: warmup starts at 0, constant after; cosine decays to its floor", () => {
  const constant = { kind: "constant", warmupSteps: 10 } as const;
  assert.equal(lrAt(constant, 1e-6, 0), 0);
  assert.ok(Math.abs(lrAt(constant, 1e-6, 5) - 5e-7) < 1e-20);
  assert.equal(lrAt(constant, 1e-6, 10), 1e-6);
  assert.equal(lrAt(constant, 1e-6, 1000), 1e-6);
  // The paper's SFT: peak 8e-5, cosine to 4e-5 (min-lr ratio 0.5).
  const cosine = { kind: "cosine", warmupSteps: 0, totalSteps: 100, minLrRatio: 0.5 } as const;
  assert.ok(Math.abs(lrAt(cosine, 8e-5, 0) - 8e-5) < 1e-15);
  assert.ok(Math.abs(lrAt(cosine, 8e-5, 50) - 6e-5) < 1e-15);
  assert.ok(Math.abs(lrAt(cosine, 8e-5, 100) - 4e-5) < 1e-15);
  assert.ok(Math.abs(lrAt(cosine, 8e-5, 500) - 4e-5) < 1e-15);
  const linear = { kind: "linear", warmupSteps: 2, totalSteps: 12, minLrRatio: 0 } as const;
  assert.equal(lrAt(linear, 1, 1), 0.5);
  assert.equal(lrAt(linear, 1, 7), 0.5);
  assert.equal(lrAt(linear, 1, 12), 0);
});

function params(values: number[][]): Map<string, Parameter> {
  const m = new Map<string, Parameter>();
  values.forEach((g, i) => {
    m.set(`p${i}`, { data: new Float32Array(g.length), grad: Float32Array.from(g), shape: [g.length] });
  });
  return m;
}

test("clipGradNorm scales by maxNorm / (norm + 1e-6) only above the limit", { skip }, () => {
  const p = params([[3], [4]]);
  assert.ok(Math.abs(gradNorm(p) - 5) < 1e-6);
  const norm = clipGradNorm(p, 1);
  assert.ok(Math.abs(norm - 5) < 1e-6);
  assert.ok(Math.abs(p.get("p0")!.grad[0] - 3 / (5 + 1e-6)) < 1e-6);
  assert.ok(Math.abs(gradNorm(p) - 1) < 1e-5);
  const q = params([[0.3], [0.4]]);
  clipGradNorm(q, 1);
  assert.equal(q.get("p1")!.grad[0], Math.fround(0.4));
});

test("AdamW: decay filter, state round trip, bad hyper-parameters", { skip }, () => {
  const p = params([[1, -1], [2]]);
  for (const x of p.values()) x.data.fill(1);
  const opt = new AdamW(p, { lr: 0.1, weightDecay: 0.5, decay: (name) => name === "p0" });
  opt.step();
  // Adam's first step moves each weight by lr·sign(g); decay shrinks only p0.
  assert.ok(Math.abs(p.get("p0")!.data[0] - (0.95 - 0.1)) < 1e-6);
  assert.ok(Math.abs(p.get("p0")!.data[1] - (0.95 + 0.1)) < 1e-6);
  assert.ok(Math.abs(p.get("p1")!.data[0] - 0.9) < 1e-6);
  const saved = opt.state();
  const copy = {
    step: saved.step,
    m: new Map([...saved.m].map(([k, v]) => [k, v.slice()])),
    v: new Map([...saved.v].map(([k, v]) => [k, v.slice()])),
  };
  const p2 = params([[1, -1], [2]]);
  for (const [k, x] of p.entries()) p2.get(k)!.data.set(x.data);
  const opt2 = new AdamW(p2, { lr: 0.1, weightDecay: 0.5, decay: (name) => name === "p0" });
  opt2.loadState(copy);
  opt.step();
  opt2.step();
  for (const [k, x] of p.entries()) assert.deepEqual([...p2.get(k)!.data], [...x.data]);
  assert.throws(() => new AdamW(p, { lr: 0.1, beta1: 1 }), ConfigError);
});

test("countLossTokens skips masked targets and padding", () => {
  const targets = Int32Array.from([1, -1, 2, 3, 4, 5]);
  assert.equal(countLossTokens(targets, 2, 3), 5);
  assert.equal(countLossTokens(targets, 2, 3, Int32Array.from([3, 1])), 3);
});
