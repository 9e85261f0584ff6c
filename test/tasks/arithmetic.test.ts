import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadModel } from "../../src/model/checkpoint.js";
import {
  ARITHMETIC_ALPHABET,
  arithmeticProblem,
  arithmeticSftCheckpoint,
  arithmeticSplit,
  sampleArithmeticProblem,
  verifyArithmetic,
} from "../../src/tasks/arithmetic.js";
import { ConfigError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";

describe("arithmetic task", () => {
  it("writes a running-sum chain of thought and a boxed answer", () => {
    const p = arithmeticProblem([7, 5, 3]);
    assert.equal(p.prompt, "7+5+3=");
    assert.equal(p.completion, "7+5=12\n12+3=15\n\\boxed{15}");
    assert.equal(p.answer, 15);
    assert.ok(p.teacherCorrect);
  });

  it("is deterministic by seed and uses only the alphabet", () => {
    const a = Array.from(
      { length: 50 },
      (
        (r) => () =>
          sampleArithmeticProblem(r)
      )(new Rng(4)),
    );
    const b = Array.from(
      { length: 50 },
      (
        (r) => () =>
          sampleArithmeticProblem(r)
      )(new Rng(4)),
    );
    assert.deepEqual(a, b);
    for (const p of a) {
      for (const ch of p.prompt + p.completion)
        assert.ok(ARITHMETIC_ALPHABET.includes(ch), `char ${JSON.stringify(ch)}`);
      assert.ok(p.terms.length >= 2 && p.terms.length <= 3);
      assert.ok(verifyArithmetic(p.answer, p.completion).correct);
    }
  });

  it("the noisy teacher errs about as often as asked, and the verifier catches it", () => {
    const rng = new Rng(9);
    let wrong = 0;
    for (let i = 0; i < 2000; i++) {
      const p = sampleArithmeticProblem(rng, { teacherNoise: 0.2 });
      const v = verifyArithmetic(p.answer, p.completion);
      assert.equal(v.correct, p.teacherCorrect);
      if (!p.teacherCorrect) wrong++;
    }
    assert.ok(wrong > 320 && wrong < 480, `wrong=${wrong}`);
  });

  it("the split is deterministic and never trains on a held-out prompt", () => {
    const s = arithmeticSplit(1, 100);
    const again = arithmeticSplit(1, 100);
    assert.deepEqual(s.test, again.test);
    assert.equal(new Set(s.test.map((p) => p.prompt)).size, 100);
    for (let i = 0; i < 3000; i++) {
      const p = s.train();
      assert.ok(!s.heldOut.has(p.prompt));
      assert.deepEqual(p, again.train());
    }
    assert.throws(() => arithmeticSplit(1, 600, { maxTerms: 2 }), ConfigError);
  });

  it("verifies the last boxed integer and says why it failed", () => {
    assert.deepEqual(verifyArithmetic(15, "7+8=15\n\\boxed{15}"), {
      correct: true,
      extracted: 15,
      reason: "correct",
    });
    assert.equal(verifyArithmetic(15, "\\boxed{3} then \\boxed{ 15 }").correct, true);
    assert.equal(verifyArithmetic(15, "\\boxed{14}").reason, "wrong-answer");
    assert.equal(verifyArithmetic(15, "15").reason, "no-boxed-answer");
    assert.equal(verifyArithmetic(15, "\\boxed{1x}").reason, "not-an-integer");
    assert.equal(verifyArithmetic(15, "\\boxed{15").reason, "not-an-integer");
  });

  it("rejects bad options naming the field", () => {
    assert.throws(() => sampleArithmeticProblem(new Rng(1), { minTerms: 1 }), /minTerms/);
    assert.throws(() => sampleArithmeticProblem(new Rng(1), { teacherNoise: 2 }), /teacherNoise/);
  });

  it("arithmeticSftCheckpoint: a fresh tiny model through runSft on the noisy teacher's rows, held-out prompts never among them, reused once done", async () => {
    const dir = mkdtempSync(join(tmpdir(), "klear-arith-sft-"));
    try {
      const opts = {
        steps: 3,
        batchSize: 4,
        heldOutSize: 20,
        model: { hiddenSize: 16, intermediateSize: 32 },
        quiet: true,
      };
      const ckpt = await arithmeticSftCheckpoint(dir, opts);
      assert.equal(ckpt, join(dir, "sft", "checkpoints", "step-3"));
      const { model, tokenizer } = await loadModel(ckpt);
      assert.equal(model.config.hiddenSize, 16);
      assert.equal(tokenizer.eosToken, "<|endoftext|>");
      const rows = readFileSync(join(dir, "data", "sft.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      assert.equal(rows.length, 12);
      const held = arithmeticSplit(0, 20, { teacherNoise: 0.5 }).heldOut;
      assert.ok(rows.every((r) => !held.has(r.prompt) && typeof r.completion === "string"));
      const mtime = statSync(join(ckpt, "model.safetensors")).mtimeMs;
      assert.equal(await arithmeticSftCheckpoint(dir, opts), ckpt);
      assert.equal(statSync(join(ckpt, "model.safetensors")).mtimeMs, mtime);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
