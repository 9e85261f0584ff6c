// `klear sft` against a real SkyRL Tinker server (JAX backend, CPU, tiny Qwen3): the server's gradient is
// the token-mean SFT gradient (equal to SkyRL's own cross_entropy where the two must agree, and unequal to
// the per-sequence mean), one small step lowers the loss by what klear's coefficients predict, and a short
// `runSft` with `backend.kind = tinker` lowers the held-out loss, stopped and resumed from the server state.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TinkerModel } from "../../src/backend/tinker/client.js";
import { forwardDatum } from "../../src/backend/tinker/gradients.js";
import { tinkerBackend } from "../../src/backend/tinker/trainer.js";
import type { PolicyTrainer } from "../../src/backend/types.js";
import type { Tokenizer } from "../../src/model/tokenizer.js";
import { resolveSftConfig, SftConfigSchema } from "../../src/sft/config.js";
import { encodeConversation, rowConversation, type SftExample } from "../../src/sft/data.js";
import { sftTrainingRow } from "../../src/sft/loss.js";
import { runSft } from "../../src/sft/trainer.js";
import { backendSftUpdater } from "../../src/sft/updater.js";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { type SkyrlUnderTest, skyrlSkipReason, startSkyrl } from "./skyrl-harness.js";

const skip = skyrlSkipReason();
if (skip) console.log(`# SKIP test:tinker sft (SkyRL Tinker server): ${skip}`);

/**
 * Short chat rows (≤ 32 tokens rendered, so SkyRL's JIT compiles one sequence shape): "a+b=" → the sum. The
 * trained tokens are the answer and <|im_end|>.
 */
function additionRows(n: number): { messages: { role: string; content: string }[] }[] {
  return Array.from({ length: n }, (_, i) => {
    const a = (i * 7) % 10;
    const b = (i * 3 + 1) % 10;
    return {
      messages: [
        { role: "user", content: `${a}+${b}=` },
        { role: "assistant", content: String(a + b) },
      ],
    };
  });
}

function encode(tok: Tokenizer, row: unknown): SftExample {
  const fields = SftConfigSchema.parse({}).data.fields;
  const e = encodeConversation(tok, rowConversation(row as Record<string, unknown>, "auto", fields), {
    template: "chat",
    trainOn: "all-assistant",
    maxTokens: 256,
    overLong: "truncate",
  });
  return { ...e, source: "test", where: "test" };
}

const trainedTokens = (e: SftExample) => e.lossMask.slice(1).reduce((n, m) => n + m, 0);

describe("klear sft on a real SkyRL Tinker server", { skip: skip ?? false, timeout: 1_800_000 }, () => {
  let skyrl: SkyrlUnderTest;
  // With β1 = 0 AdamW's step is g/(√v̂ + ε); with ε ≫ |g| that is gradient descent at rate lr/ε.
  const eps = 1e4;
  let policy: PolicyTrainer;
  let close: () => void;

  before(async () => {
    skyrl = await startSkyrl();
    const backend = tinkerBackend({
      client: { baseUrl: skyrl.url, backoffMs: 200, maxBackoffMs: 2000, maxRetries: 3 },
      lora: { rank: 8, seed: 11 },
      lossConvention: "skyrl-jax",
      samplingConcurrency: 2,
    });
    close = () => backend.client.close();
    policy = await backend.openPolicy(skyrl.modelDir, {
      optimizer: { lr: 0, beta1: 0, beta2: 0.999, eps, weightDecay: 0 },
    });
  });
  after(async () => {
    close?.();
    await skyrl?.stop();
    if (skyrl?.kill) rmSync(skyrl.dir, { recursive: true, force: true });
  });

  const config = resolveSftConfig({ overrides: { "backend.kind": "tinker", "train.microSequences": "1" } });

  test("the server's gradient is the token mean over the step: SkyRL's cross_entropy with rows weighted by their tokens", async () => {
    const tok = policy.tokenizer;
    // Row b trains twice as many tokens as row a, so the token mean weighs it twice: it equals SkyRL's
    // cross_entropy (a per-row mean, then a mean over datums) over [a, b, b], not over [a, b].
    const a = encode(tok, additionRows(1)[0]);
    const b = encode(tok, {
      messages: [
        { role: "user", content: "1+2=" },
        { role: "assistant", content: "003" },
      ],
    });
    assert.equal(trainedTokens(b), 2 * trainedTokens(a));
    const model = (policy as unknown as { model: TinkerModel }).model;
    const crossEntropyDatum = (e: SftExample) => {
      const row = sftTrainingRow(e);
      assert.ok(row);
      const d = forwardDatum(row.sequence.promptTokens, row.sequence.responseTokens);
      const w = d.lossFnInputs.weights.data as Float32Array;
      const start = row.sequence.promptTokens.length - 1;
      w.fill(0);
      row.mask.forEach((m, j) => {
        w[start + j] = m;
      });
      return d;
    };
    const norm = async (data: ReturnType<typeof crossEntropyDatum>[]) => {
      await model.forwardBackward(data, "cross_entropy");
      const m = await model.optimStep({
        learningRate: 0,
        beta1: 0,
        beta2: 0.999,
        eps,
        weightDecay: 0,
        gradClipNorm: 0,
      });
      return m["skyrl.ai/grad_norm"];
    };
    const tokenMean = await norm([crossEntropyDatum(a), crossEntropyDatum(b), crossEntropyDatum(b)]);
    const rowMean = await norm([crossEntropyDatum(a), crossEntropyDatum(b)]);
    const updater = backendSftUpdater(policy, tok, config);
    // Two micro-batches (one packed sequence each), so the divisor spans forward_backward calls.
    await updater.accumulate([[a], [b]]);
    const mine = await updater.step(0);
    console.log(
      `# grad norm: klear's SFT coefficients ${mine}; SkyRL cross_entropy token mean ${tokenMean}, row mean ${rowMean}`,
    );
    assert.ok(Math.abs(mine - tokenMean) <= 1e-4 * tokenMean, `${mine} vs ${tokenMean}`);
    assert.ok(Math.abs(rowMean - tokenMean) > 1e-2 * tokenMean, "the check tells the two means apart");
  });

  test("one small SFT step lowers the loss by η‖g‖², klear's first-order prediction", async () => {
    const tok = policy.tokenizer;
    const rows = additionRows(6).map((r) => encode(tok, r));
    const updater = backendSftUpdater(policy, tok, config);
    const eta = 1e-4;
    const before = await updater.heldOutLoss(rows);
    assert.ok(before !== null);
    const g = await updater.accumulate([rows.slice(0, 3), rows.slice(3)]);
    assert.ok(Math.abs(g.loss - before) < 1e-5, `the step's loss ${g.loss} is the forward's NLL ${before}`);
    const gradNorm = await updater.step(eta * eps);
    const afterStep = await updater.heldOutLoss(rows);
    assert.ok(afterStep !== null);
    const predicted = -eta * gradNorm * gradNorm;
    console.log(
      `# SFT step: Δloss ${(afterStep - before).toExponential(4)}, predicted −η‖g‖² ${predicted.toExponential(4)} (‖g‖ ${gradNorm})`,
    );
    assert.ok(afterStep < before);
    assert.ok(Math.abs((afterStep - before) / predicted - 1) < 0.03, `${afterStep - before} vs ${predicted}`);
  });

  test("runSft with backend.kind=tinker lowers the held-out loss; stopped and resumed, it repeats the uninterrupted run", async () => {
    const data = join(skyrl.dir, "sft-rows.jsonl");
    writeFileSync(
      data,
      `${additionRows(24)
        .map((r) => JSON.stringify(r))
        .join("\n")}\n`,
    );
    const runConfig = resolveSftConfig({
      overrides: {
        "backend.kind": "tinker",
        "backend.tinker.baseUrl": skyrl.url,
        "backend.tinker.loraSeed": "11",
        "train.epochs": "2",
        "train.sequencesPerStep": "1",
        "train.microSequences": "1",
        "optimizer.lr": "0.02",
        "optimizer.warmupSteps": "0",
        "data.heldOutRows": "4",
        checkpointEvery: "2",
        evalEvery: "0",
      },
    });
    const run = (out: string, extra: Partial<Parameters<typeof runSft>[0]> = {}) =>
      runSft({
        config: runConfig,
        out,
        init: skyrl.modelDir,
        data: [data],
        quiet: true,
        log: () => {},
        ...extra,
      });
    const straight = await run(join(skyrl.dir, "sft-straight"), { log: (l) => console.log(`# ${l}`) });
    const out = join(skyrl.dir, "sft-resumed");
    let boundaries = 0;
    const first = await run(out, { shouldStop: () => ++boundaries > 2 });
    assert.equal(first.interrupted, true);
    // A fresh client and model: the step-2 server state (LoRA weights + AdamW moments) is loaded into it.
    const resumed = await runSft({ config: runConfig, out, resume: true, quiet: true, log: () => {} });
    assert.equal(resumed.interrupted, false);
    const losses = (dir: string) =>
      readMetrics(runPaths(dir))
        .filter((m) => m.phase === undefined)
        .map((m) => ({ step: m.step, loss: Number(m.loss) }));
    const a = losses(straight.runDir);
    const b = losses(out);
    console.log(
      `# sft on SkyRL: loss per step ${a.map((m) => m.loss.toFixed(4)).join(" ")}; stopped after 2 and resumed: ${b.map((m) => m.loss.toFixed(4)).join(" ")}; held-out ${straight.heldOutLossBefore?.toFixed(4)} → ${straight.heldOutLossAfter?.toFixed(4)} (resumed run ${resumed.heldOutLossAfter?.toFixed(4)})`,
    );
    assert.deepEqual(
      b.map((m) => m.step),
      Array.from({ length: straight.totalSteps }, (_, i) => i + 1),
      "every step once",
    );
    b.forEach((m, k) => {
      assert.ok(Math.abs(m.loss - a[k].loss) < 1e-3 * a[k].loss, `step ${m.step}: ${m.loss} vs ${a[k].loss}`);
    });
    assert.ok(straight.heldOutLossBefore !== null && straight.heldOutLossAfter !== null);
    assert.ok(straight.heldOutLossAfter < straight.heldOutLossBefore - 0.05, "held-out loss fell");
    assert.ok(Math.abs((resumed.heldOutLossAfter ?? 0) - straight.heldOutLossAfter) < 1e-3);
    const saved = JSON.parse(readFileSync(join(out, "result.json"), "utf8"));
    assert.match(saved.serverWeights.samplerPath, /^tinker:\/\//);
  });
});
