import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BENCHMARKS, evaluate, type LoadedBenchmark, LocalEngineGenerator } from "../../src/eval/index.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { readSafetensors } from "../../src/model/safetensors.js";
import { loadTokenizer } from "../../src/model/tokenizer.js";
import { resolveSftConfig } from "../../src/sft/config.js";
import { runSft, sftResultLine } from "../../src/sft/trainer.js";
import { KlearError } from "../../src/util/errors.js";
import { chatRows, type RowFormat, tempDir, tinyCheckpoint, writeJsonl } from "./helpers.js";

const quiet = { quiet: true, log: () => {} };

function config(extra: Record<string, string> = {}) {
  return resolveSftConfig({
    overrides: {
      "train.epochs": "3",
      "data.heldOutRows": "8",
      "optimizer.lr": "3e-3",
      evalEvery: "2",
      checkpointEvery: "2",
      ...extra,
    },
  });
}

function metrics(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

describe("runSft", () => {
  for (const format of ["messages", "conversations", "prompt-completion"] as RowFormat[]) {
    it(`a short run on ${format} rows lowers the held-out loss`, async (t) => {
      const dir = tempDir(t);
      const init = await tinyCheckpoint(dir);
      const data = writeJsonl(join(dir, `${format}.jsonl`), chatRows(format, 48));
      const r = await runSft({ config: config(), out: join(dir, "run"), init, data: [data], ...quiet });
      assert.equal(r.interrupted, false);
      assert.equal(r.steps, r.totalSteps);
      assert.ok(r.heldOutLossBefore !== null && r.heldOutLossAfter !== null);
      assert.ok(r.heldOutLossAfter < r.heldOutLossBefore - 0.3, sftResultLine(r));
      assert.match(
        sftResultLine(r),
        /^RESULT sft klear=\d+\.\d{4} peer=\d+\.\d{4} unit=heldout-nll ratio=\d+\.\d{4}$/,
      );
      // The checkpoint is an HF-style folder the model loader reads.
      const { model } = await loadModel(r.checkpoint);
      assert.ok(model.parameterCount() > 0);
    });
  }

  it("logs loss, lr, grad norm, tokens/s, padding fraction and held-out loss; the config is saved resolved", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir);
    const data = writeJsonl(join(dir, "d.jsonl"), chatRows("messages", 40));
    const out = join(dir, "run");
    const r = await runSft({ config: config(), out, init, data: [data], ...quiet });
    const m = metrics(out);
    assert.equal(m[0].phase, "eval-before");
    const steps = m.filter((x) => x.phase === undefined);
    assert.equal(steps.length, r.totalSteps);
    for (const s of steps) {
      for (const k of [
        "loss",
        "lr",
        "gradNorm",
        "tokensPerSecond",
        "paddingFraction",
        "lossTokens",
        "epoch",
      ]) {
        assert.equal(typeof s[k], "number", `${k} in ${JSON.stringify(s)}`);
      }
    }
    assert.ok(steps.filter((s) => typeof s.heldOutLoss === "number").length >= 2);
    // Warmup then cosine to the floor: the last step runs at lr · minLrRatio.
    const last = steps[steps.length - 1];
    assert.ok(Math.abs((last.lr as number) - 3e-3 * 0.5) < 1e-9, String(last.lr));
    const summary = JSON.parse(readFileSync(join(out, "data_summary.json"), "utf8"));
    assert.equal(summary.kept, 40);
    const saved = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(saved.init, init);
    assert.equal(saved.data.sources[0].path, data);
    assert.equal(saved.data.sources[0].weight, 1);
  });

  it("stopping at a step boundary and resuming gives the uninterrupted run's weights and metrics", async (t) => {
    const dir = tempDir(t);
    // A base-model EOS, so the resumed run starts from a checkpoint whose EOS was changed (same rows either way).
    const init = await tinyCheckpoint(dir, { eosToken: "<|endoftext|>" });
    const data = writeJsonl(join(dir, "d.jsonl"), chatRows("messages", 40));
    const c = config({ checkpointEvery: "100" });
    const whole = await runSft({ config: c, out: join(dir, "whole"), init, data: [data], ...quiet });
    let calls = 0;
    const part = await runSft({
      config: c,
      out: join(dir, "part"),
      init,
      data: [data],
      ...quiet,
      shouldStop: () => ++calls > 2,
    });
    assert.equal(part.interrupted, true);
    assert.equal(part.steps, 2);
    const resumed = await runSft({ config: c, out: join(dir, "part"), resume: true, ...quiet });
    assert.equal(resumed.steps, whole.steps);
    const a = await readSafetensors(join(whole.checkpoint, "model.safetensors"));
    const b = await readSafetensors(join(resumed.checkpoint, "model.safetensors"));
    for (const [k, x] of a) assert.deepEqual(b.get(k)?.data, x.data, k);
    const strip = (ms: Record<string, unknown>[]) =>
      ms.map(({ tokensPerSecond: _t, stepSeconds: _s, ...rest }) => rest);
    assert.deepEqual(strip(metrics(join(dir, "part"))), strip(metrics(join(dir, "whole"))));
  });

  it("mixes sources by weight: weight 0 leaves a source out, 2 trains it twice per epoch", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir);
    const a = writeJsonl(join(dir, "a.jsonl"), chatRows("messages", 20));
    const b = writeJsonl(join(dir, "b.jsonl"), chatRows("conversations", 10, 1));
    const c = config({
      "train.epochs": "1",
      "data.heldOutRows": "0",
      "pack.packing": "false",
      "train.sequencesPerStep": "5",
      "train.microSequences": "5",
    });
    const run = async (out: string, weights: [number, number]) =>
      runSft({
        config: {
          ...c,
          data: {
            ...c.data,
            sources: [
              { path: a, weight: weights[0], format: "auto", name: "a" },
              { path: b, weight: weights[1], format: "auto", name: "b" },
            ],
          },
        },
        out: join(dir, out),
        init,
        ...quiet,
      });
    const only = await run("only-a", [1, 0]);
    assert.equal(only.totalSteps, 4);
    assert.deepEqual(only.data.perSource, { a: { rows: 20, kept: 20 }, b: { rows: 10, kept: 10 } });
    const twice = await run("b-twice", [1, 2]);
    assert.equal(twice.totalSteps, 8);
  });

  it("a base model's EOS (<|endoftext|>) becomes the template's end of turn (<|im_end|>) in its checkpoints", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir, { eosToken: "<|endoftext|>" });
    assert.equal((await loadTokenizer(init)).eosToken, "<|endoftext|>");
    const data = writeJsonl(join(dir, "d.jsonl"), chatRows("messages", 12));
    const lines: string[] = [];
    const r = await runSft({
      config: config({ "train.epochs": "1" }),
      out: join(dir, "run"),
      init,
      data: [data],
      quiet: true,
      log: (l) => lines.push(l),
    });
    assert.ok(
      lines.some((l) => l.startsWith("EOS: <|endoftext|> → <|im_end|>")),
      lines.join("\n"),
    );
    const tok = await loadTokenizer(r.checkpoint);
    assert.equal(tok.eosToken, "<|im_end|>");
    const gen = JSON.parse(readFileSync(join(r.checkpoint, "generation_config.json"), "utf8"));
    assert.ok(gen.eos_token_id.includes(tok.eosTokenId), JSON.stringify(gen));
    // Off: the checkpoint keeps the base EOS.
    const off = await runSft({
      config: config({ "train.epochs": "1", "render.turnEndAsEos": "false" }),
      out: join(dir, "off"),
      init,
      data: [data],
      ...quiet,
    });
    assert.equal((await loadTokenizer(off.checkpoint)).eosToken, "<|endoftext|>");
  });

  it("refuses a run without data, and one whose rows all fail, before writing anything", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir);
    await assert.rejects(runSft({ config: config(), out: join(dir, "a"), init, ...quiet }), /has no data/);
    const bad = writeJsonl(join(dir, "bad.jsonl"), [{ question: "Q" }, { question: "R" }]);
    await assert.rejects(
      runSft({ config: config(), out: join(dir, "b"), init, data: [bad], ...quiet }),
      (e: unknown) =>
        e instanceof KlearError && /none of the 2 rows/.test(e.message) && /bad\.jsonl:1/.test(e.message),
    );
  });

  it("klear eval's local engine starts from its checkpoint", async (t) => {
    const dir = tempDir(t);
    const init = await tinyCheckpoint(dir);
    const data = writeJsonl(join(dir, "d.jsonl"), chatRows("messages", 24));
    const r = await runSft({
      config: config({ "train.epochs": "1" }),
      out: join(dir, "run"),
      init,
      data: [data],
      ...quiet,
    });
    const bench: LoadedBenchmark = {
      spec: BENCHMARKS.gsm8k,
      source: ["test"],
      problems: [{ id: "a", kind: "math", question: "What is 2+3?", answer: "5" }],
    };
    const generator = await LocalEngineGenerator.load(r.checkpoint);
    const res = await evaluate({
      benchmarks: [bench],
      generator,
      scorer: { score: async () => ({ score: 0, correct: false, extracted: "", reason: "" }) },
      outDir: join(dir, "eval"),
      n: 1,
      promptTemplate: "raw",
      sampling: { temperature: 0, topP: 1, maxTokens: 6 },
      model: "sft",
      bootstrap: 2,
      writeReport: false,
      progress: { silent: true },
    });
    assert.equal(res.generated, 1);
    assert.equal(res.failed, 0);
  });
});
