// `klear sft` through the training-backend seam: the coefficients it hands the seam are the SFT loss's
// gradient (checked on the local engine against the fast path, and through each Tinker server's loss formula
// against the fake server), the lr schedule reaches optim_step, and a resumed run trains no step twice.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalPolicyTrainer, localBackend } from "../../src/backend/local.js";
import { serverCoefficients, type TinkerLossConvention } from "../../src/backend/tinker/gradients.js";
import type { ForwardBackwardRequestMessage } from "../../src/backend/tinker/proto.js";
import { TINKER_STATE_FILE } from "../../src/backend/tinker/trainer.js";
import { lrAt } from "../../src/engine/optim.js";
import { resolveSftConfig } from "../../src/sft/config.js";
import { sftStepGradients } from "../../src/sft/loss.js";
import { runSft } from "../../src/sft/trainer.js";
import { backendSftUpdater } from "../../src/sft/updater.js";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { FakeTinkerServer } from "../backend/fake-tinker-server.js";
import {
  byteTokenizer,
  gradients,
  maxRelDiff,
  multiTurnExamples,
  multiTurnRows,
  tempDir,
  tinyCheckpoint,
  tinyModel,
  writeJsonl,
} from "./helpers.js";

const quiet = { quiet: true, log: () => {} };
const optimizer = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 };

/** The per-step lines of a run's metrics (the store's reader). */
const stepMetrics = (runDir: string) =>
  readMetrics(runPaths(runDir)).filter((m) => m.phase === undefined) as Record<string, number>[];

describe("sft through the backend seam", () => {
  it("on the local engine: the same loss and gradient as the fast path (mask, token mean over micro-batches)", () => {
    const tok = byteTokenizer();
    const ex = multiTurnExamples(tok, 7);
    // Packed sequences of several rows, multi-turn rows (an untrained turn between trained ones), 3 micro-batches.
    const seqs = [[ex[0], ex[1]], [ex[2]], [ex[3], ex[4], ex[5]], [ex[6]]];
    const config = resolveSftConfig({ overrides: { "train.microSequences": "2" } });
    const m = tinyModel(tok);
    const fast = sftStepGradients(m, seqs, 2, tok.padTokenId);
    const want = gradients(m);
    const policy = new LocalPolicyTrainer(m, tok, optimizer);
    return backendSftUpdater(policy, tok, config)
      .accumulate(seqs)
      .then((seam) => {
        assert.equal(seam.lossTokens, fast.lossTokens);
        assert.ok(Math.abs(seam.loss - fast.loss) < 1e-5, `${seam.loss} vs ${fast.loss}`);
        const d = maxRelDiff(want, gradients(m));
        assert.ok(d < 1e-4, `max relative gradient difference ${d}`);
      });
  });

  it("runSft with a backend handed in (the local engine through the seam) follows the fast path's run", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir);
    const data = writeJsonl(join(dir, "d.jsonl"), multiTurnRows(24));
    // No weight decay: the seam's AdamW decays every tensor, the fast path leaves norm gains undecayed.
    const config = resolveSftConfig({
      overrides: { "train.maxSteps": "3", "optimizer.weightDecay": "0", "data.heldOutRows": "4" },
    });
    const fast = await runSft({ config, out: join(dir, "fast"), init, data: [data], ...quiet });
    const seam = await runSft({
      config,
      out: join(dir, "seam"),
      init,
      data: [data],
      backend: localBackend,
      ...quiet,
    });
    const a = stepMetrics(fast.runDir);
    const b = stepMetrics(seam.runDir);
    assert.equal(b.length, 3);
    for (let k = 0; k < 3; k++) {
      assert.equal(b[k].lr, a[k].lr);
      assert.equal(b[k].lossTokens, a[k].lossTokens);
      assert.ok(
        Math.abs(b[k].loss - a[k].loss) < 1e-4 * a[k].loss,
        `step ${k + 1}: ${b[k].loss} vs ${a[k].loss}`,
      );
      assert.ok(Math.abs(b[k].gradNorm / a[k].gradNorm - 1) < 1e-3);
    }
    assert.ok(Math.abs((seam.heldOutLossAfter ?? 0) - (fast.heldOutLossAfter ?? 1)) < 1e-4);
  });
});

describe("sft on a Tinker server (fake)", () => {
  const server = new FakeTinkerServer();
  let url = "";
  before(async () => {
    url = await server.start();
  });
  after(() => server.stop());

  const tok = byteTokenizer();
  const rows = multiTurnRows(32);
  /** Every row's ids and mask, keyed by its tokens (a datum holds a prefix of one of them). */
  const encoded = multiTurnExamples(tok, 32);
  const exampleOf = (tokens: readonly number[]) => {
    const e = encoded.find((x) => tokens.every((id, i) => x.ids[i] === id));
    assert.ok(e, `no row starts with ${tokens.slice(0, 12).join(",")}…`);
    return e;
  };

  function tinkerConfig(convention: TinkerLossConvention, extra: Record<string, string> = {}) {
    return resolveSftConfig({
      overrides: {
        "backend.kind": "tinker",
        "backend.tinker.baseUrl": url,
        "backend.tinker.lossConvention": convention,
        "train.epochs": "1",
        "train.maxSteps": "4",
        "train.sequencesPerStep": "2",
        "pack.maxTokens": "128",
        "train.microSequences": "1",
        "optimizer.warmupSteps": "1",
        "optimizer.lr": "1e-3",
        "data.heldOutRows": "4",
        checkpointEvery: "2",
        ...extra,
      },
    });
  }

  /** The server requests of each optimizer step: the training forward_backward calls, then its optim_step. */
  function requestsPerStep(from: number) {
    const steps: { fb: ForwardBackwardRequestMessage[]; forwards: number; optim: Record<string, unknown> }[] =
      [];
    let fb: ForwardBackwardRequestMessage[] = [];
    let forwards = 0;
    for (const l of server.log.slice(from)) {
      if (l.route === "/api/v1/forward_backward" && l.fb?.forwardOnly) forwards++;
      else if (l.route === "/api/v1/forward_backward" && l.fb) fb.push(l.fb);
      if (l.route === "/api/v1/optim_step") {
        steps.push({ fb, forwards, optim: l.json as Record<string, unknown> });
        fb = [];
        forwards = 0;
      }
    }
    return steps;
  }

  for (const convention of ["skyrl-jax", "sum"] as const) {
    it(`${convention}: the server's loss formula gives back −mask/N per token, N the step's loss tokens`, async (t) => {
      const dir = tempDir(t);
      const init = await tinyCheckpoint(dir);
      const data = writeJsonl(join(dir, "d.jsonl"), rows);
      const from = server.log.length;
      const lines: string[] = [];
      const log = (l: string) => lines.push(l);
      const r = await runSft({
        config: tinkerConfig(convention),
        out: join(dir, "run"),
        init,
        data: [data],
        log,
        quiet: true,
      });
      assert.ok(
        lines.some((l) => /LoRA rank 8/.test(l)),
        "the run says it trains a LoRA adapter",
      );
      const metrics = stepMetrics(r.runDir);
      const steps = requestsPerStep(from);
      assert.equal(steps.length, 4);
      const datumsPerStep = steps.map((st) => st.fb.flatMap((f) => f.data));
      assert.ok(
        steps.some((st, k) => datumsPerStep[k].length > st.fb.length),
        "a packed sequence of several rows is several datums",
      );
      // SkyRL: a forward per micro-batch for the current log-probs, then importance_sampling (ratio 1). A sum
      // server: cross_entropy weighted by −c, whose answer carries the log-probs: no extra forward.
      for (const st of steps.slice(1)) {
        assert.equal(st.fb[0].lossFn, convention === "sum" ? "cross_entropy" : "importance_sampling");
        assert.equal(st.forwards, convention === "sum" ? 0 : st.fb.length);
      }
      let untrainedGaps = 0;
      const schedule = { kind: "cosine" as const, warmupSteps: 1, totalSteps: 4, minLrRatio: 0.5 };
      steps.forEach(({ fb, optim }, k) => {
        const N = metrics[k].lossTokens;
        assert.ok(fb.length >= 2, "one forward_backward per micro-batch");
        const datums = fb.flatMap((f) => f.data);
        // The fake's log-probs after k steps are what the forward gave: the ratio is 1.
        const current = datums.map((d) =>
          Array.from(d.lossFnInputs.target_tokens.data, (y) => Math.fround(server.logprob(Number(y), k))),
        );
        const coefficients = serverCoefficients(
          datums,
          fb[0].lossFn as "importance_sampling" | "cross_entropy",
          convention,
          current,
          datums.map(() => 0),
        );
        let trained = 0;
        let nll = 0;
        datums.forEach((d, i) => {
          const targets = Array.from(d.lossFnInputs.target_tokens.data, Number);
          const e = exampleOf([...Array.from(d.tokens, Number), targets[targets.length - 1]]);
          if (
            e.lossMask
              .slice(1, targets.length + 1)
              .join("")
              .match(/10+1/)
          )
            untrainedGaps++;
          targets.forEach((_, p) => {
            const want = e.lossMask[p + 1] ? -1 / N : 0;
            assert.ok(
              Math.abs(coefficients[i][p] - want) < 1e-6 / N,
              `step ${k + 1} datum ${i} position ${p}`,
            );
            if (e.lossMask[p + 1]) {
              trained++;
              nll -= current[i][p];
            }
          });
        });
        assert.equal(trained, N, "every loss token of the step, once");
        assert.ok(Math.abs(metrics[k].loss - nll / N) < 1e-6, "the loss is the server's forward NLL");
        const adam = optim.adam_params as Record<string, number>;
        assert.equal(adam.learning_rate, metrics[k].lr);
        assert.equal(adam.learning_rate, lrAt(schedule, 1e-3, k + 1));
        assert.deepEqual(
          [adam.beta1, adam.beta2, adam.eps, adam.weight_decay, adam.grad_clip_norm],
          [0.9, 0.95, 1e-8, 0.01, 1],
        );
      });
      assert.equal(metrics[0].gradNorm, 1.5, "the server's gradient norm");
      assert.ok(untrainedGaps > 0, "multi-turn rows: an untrained turn between trained ones stays at 0");
    });
  }

  it("a stopped run resumes from the server state it saved: no step trained twice; the sampler export is in result.json", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir);
    const data = writeJsonl(join(dir, "d.jsonl"), rows);
    const out = join(dir, "run");
    const from = server.log.length;
    let boundaries = 0;
    const first = await runSft({
      config: tinkerConfig("skyrl-jax"),
      out,
      init,
      data: [data],
      shouldStop: () => ++boundaries > 2,
      ...quiet,
    });
    assert.equal(first.interrupted, true);
    assert.equal(first.steps, 2);
    const saved = JSON.parse(readFileSync(join(out, "checkpoints/step-2", TINKER_STATE_FILE), "utf8"));
    const resumedFrom = server.log.length;
    const second = await runSft({ config: tinkerConfig("skyrl-jax"), out, resume: true, ...quiet });
    assert.equal(second.interrupted, false);
    assert.equal(second.steps, 4);
    const optimSteps = server.log.slice(from).filter((l) => l.route === "/api/v1/optim_step");
    assert.equal(optimSteps.length, 4, "4 planned steps, 4 optimizer steps on the server");
    const loads = server.log.slice(resumedFrom).filter((l) => l.route === "/api/v1/load_weights");
    assert.deepEqual(
      loads.map((l) => {
        const body = l.json as { path: string; optimizer: boolean };
        return [body.path, body.optimizer];
      }),
      [[saved.statePath, true]],
      "the resumed run loads the step-2 server state, with the optimizer's moments",
    );
    assert.deepEqual(
      stepMetrics(out).map((m) => m.step),
      [1, 2, 3, 4],
    );
    const result = JSON.parse(readFileSync(join(out, "result.json"), "utf8"));
    const final = JSON.parse(readFileSync(join(second.checkpoint, TINKER_STATE_FILE), "utf8"));
    assert.match(result.serverWeights.samplerPath, /\/sampler_weights\//);
    assert.equal(result.serverWeights.samplerPath, final.samplerPath);
    // The run's tokenizer (EOS = the template's end of turn) is the checkpoint's.
    const tokConfig = JSON.parse(readFileSync(join(second.checkpoint, "tokenizer_config.json"), "utf8"));
    assert.equal(tokConfig.eos_token, "<|im_end|>");
  });
});
