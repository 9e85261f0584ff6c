import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generate, LocalGenerator } from "../../src/rollout/generate.js";
import { ConfigError } from "../../src/util/errors.js";
import { fixedLogitsModel, prefixHashModel } from "./toy-models.js";

const PROMPTS = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [2, 2]];

describe("generate", () => {
  it("temperature 0 is greedy and deterministic; each step argmaxes the model's logits", () => {
    const model = prefixHashModel(17);
    const a = generate(model, PROMPTS, { temperature: 0, maxNewTokens: 12 });
    const b = generate(model, PROMPTS, { temperature: 0, maxNewTokens: 12, seed: 99 });
    assert.deepEqual(a, b);
    for (const c of a) {
      const seq = [...PROMPTS[c.promptIndex]];
      for (const t of c.tokens) {
        const l = model.logitsFor(seq);
        let best = 0;
        for (let v = 1; v < l.length; v++) if (l[v] > l[best]) best = v;
        assert.equal(t, best);
        seq.push(t);
      }
      assert.equal(c.finishReason, "length");
      assert.ok(c.logprobs.every((x) => x === 0));
    }
  });

  it("same seed → same output; another seed → different output", () => {
    const model = prefixHashModel(17);
    const params = { temperature: 1, topP: 0.95, maxNewTokens: 10, n: 3, seed: 7 };
    const a = generate(model, PROMPTS, params);
    assert.deepEqual(generate(model, PROMPTS, params), a);
    assert.notDeepEqual(generate(model, PROMPTS, { ...params, seed: 8 }), a);
    assert.equal(a.length, PROMPTS.length * 3);
    assert.deepEqual(
      a.map((c) => [c.promptIndex, c.sampleIndex]),
      PROMPTS.flatMap((_, i) => [0, 1, 2].map((k) => [i, k])),
    );
  });

  it("a completion does not depend on batch composition or batch size", () => {
    const model = prefixHashModel(17);
    const params = { temperature: 1.2, maxNewTokens: 9, n: 2, seed: 3 };
    const together = generate(model, PROMPTS, params);
    const oneAtATime = generate(model, PROMPTS, { ...params, maxBatchSize: 1 });
    assert.deepEqual(oneAtATime, together);
    const alone = generate(model, [PROMPTS[2]], params);
    // Prompt indices differ when alone, so compare the streams of the same (promptIndex, sample) pair.
    const withPrefix = generate(model, [PROMPTS[2], PROMPTS[0]], params);
    assert.deepEqual(withPrefix.slice(0, 2), alone);
  });

  it("raw model logprobs match a cache-free recomputation over prompt + completion", () => {
    const model = prefixHashModel(23);
    const out = generate(model, PROMPTS, { temperature: 0.7, topK: 5, maxNewTokens: 15, n: 2, seed: 11 });
    let maxDiff = 0;
    for (const c of out) {
      const prompt = PROMPTS[c.promptIndex];
      const lp = model.logprobs([...prompt, ...c.tokens], prompt.length);
      lp.forEach((v, i) => {
        maxDiff = Math.max(maxDiff, Math.abs(v - c.modelLogprobs[i]));
      });
    }
    assert.ok(maxDiff < 1e-5, `max |Δlogp| = ${maxDiff}`);
  });

  it("stop token ends a completion, is kept in tokens and dropped from text", () => {
    // Token 3 dominates: every completion stops on its first token.
    const model = fixedLogitsModel([0, 0, 0, 10]);
    const out = generate(model, [[1], [2, 2]], {
      temperature: 0,
      maxNewTokens: 5,
      stopTokenIds: [3],
      decode: (t) => t.join(","),
    });
    for (const c of out) {
      assert.deepEqual(c.tokens, [3]);
      assert.equal(c.finishReason, "stop");
      assert.equal(c.text, "");
    }
  });

  it("stop strings end a completion and cut the text before them", () => {
    const letters = "abc\n";
    const model = prefixHashModel(4);
    const decode = (t: number[]) => t.map((i) => letters[i]).join("");
    const params = { temperature: 1, maxNewTokens: 40, n: 8, seed: 1, decode };
    const free = generate(model, [[0]], params);
    const stopped = generate(model, [[0]], { ...params, stopStrings: ["b\n"] });
    let sawStop = false;
    free.forEach((f, i) => {
      const s = stopped[i];
      const full = decode(f.tokens);
      const at = full.indexOf("b\n");
      if (at >= 0 && at + 2 <= 40) {
        sawStop = true;
        assert.equal(s.finishReason, "stop");
        assert.equal(s.text, full.slice(0, at));
        assert.deepEqual(s.tokens, f.tokens.slice(0, at + 2));
      } else {
        assert.deepEqual(s.tokens, f.tokens);
        assert.equal(s.finishReason, "length");
      }
    });
    assert.ok(sawStop, "no sample hit the stop string; pick another seed");
  });

  it("finished sequences drop out of the batch", () => {
    const inner = prefixHashModel(17);
    const counts: number[][] = [];
    const model: typeof inner = {
      ...inner,
      forwardTokens(cache, tokens, c) {
        counts.push([...(c ?? [])]);
        return inner.forwardTokens(cache, tokens, c);
      },
    };
    const free = generate(model, PROMPTS, { temperature: 0, maxNewTokens: 12 });
    // Stop on a token some completions emit early and others late or never.
    const firstAt = (c: { tokens: number[] }, t: number) => {
      const i = c.tokens.indexOf(t);
      return i < 0 ? 12 : i + 1;
    };
    const stop = [...new Set(free.flatMap((c) => c.tokens))].find(
      (t) => new Set(free.map((c) => firstAt(c, t))).size >= 3,
    );
    assert.ok(stop !== undefined);
    counts.length = 0;
    const out = generate(model, PROMPTS, { temperature: 0, maxNewTokens: 12, stopTokenIds: [stop] });
    const lengths = out.map((c) => c.tokens.length);
    assert.deepEqual(
      lengths,
      free.map((c) => firstAt(c, stop)),
    );
    assert.deepEqual(
      counts[0],
      PROMPTS.map((p) => p.length),
    );
    // Step k feeds exactly the rows whose completion is longer than k tokens.
    for (let k = 1; k < counts.length; k++)
      assert.deepEqual(
        counts[k],
        lengths.map((l) => (l > k ? 1 : 0)),
      );
    assert.equal(counts.length, Math.max(...lengths));
  });

  it("LocalGenerator exposes the async Generator shape", async () => {
    const model = prefixHashModel(9);
    const out = await new LocalGenerator(model).generate([[1]], { temperature: 0, maxNewTokens: 3 });
    assert.equal(out[0].tokens.length, 3);
  });

  it("rejects bad requests with ConfigErrors that say what to do", () => {
    const model = prefixHashModel(9);
    assert.throws(() => generate(model, [[]], { temperature: 0, maxNewTokens: 3 }), /prompt 0 is empty/);
    assert.throws(
      () => generate(model, [[9]], { temperature: 0, maxNewTokens: 3 }),
      /outside the model's vocabulary/,
    );
    assert.throws(() => generate(model, [[1]], { temperature: 0, maxNewTokens: 0 }), ConfigError);
    assert.throws(
      () => generate(model, [[1]], { temperature: 0, maxNewTokens: 3, stopStrings: ["x"] }),
      /need a decode function/,
    );
  });
});
