// The model against an independent oracle (llm.c style): tiny random Qwen3 checkpoints made by HF
// transformers in float64 (scripts/oracle/make_qwen3_fixture.py). klear must reproduce the logits, the
// log-probs and entropies of the targets, the loss and every parameter gradient.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { readSafetensors } from "../../src/model/safetensors.js";

const ROOT = join(import.meta.dirname, "..", "..", "fixtures", "oracle");
const TOLERANCE = 1e-4;

interface Meta {
  batchSize: number;
  seqLen: number;
  lengths: number[];
  tokens: number[];
  targets: number[];
  entropyCoef: number;
  lossTokens: number;
  loss: number;
}

/** max |a - b| / max |b|: relative to the tensor's scale, so near-zero entries do not dominate. */
function relativeError(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < actual.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

for (const name of ["gqa-untied", "tied-yarn"]) {
  test(`Qwen3 matches HF transformers: ${name}`, async () => {
    const dir = join(ROOT, name);
    assert.ok(existsSync(dir), `fixture ${dir} missing: run scripts/oracle/make_qwen3_fixture.py`);
    const config = parseQwen3Config(
      JSON.parse(readFileSync(join(dir, "config.json"), "utf8")),
      `${dir}/config.json`,
    );
    if (name === "tied-yarn") {
      assert.equal(config.ropeScaling.type, "yarn", "the YaRN case must parse as YaRN");
      assert.equal(config.tieWordEmbeddings, true);
    }
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as Meta;
    const weights = await readSafetensors(join(dir, "model.safetensors"));
    const expected = await readSafetensors(join(dir, "expected.safetensors"));
    const tensors = new Map([...weights].map(([n, t]) => [n, t.data]));
    const model = Qwen3Model.fromTensors(config, tensors, `${dir}/model.safetensors`);
    const { batchSize: B, seqLen: T } = meta;
    const batch = {
      tokens: Int32Array.from(meta.tokens),
      targets: Int32Array.from(meta.targets),
      batchSize: B,
      seqLen: T,
      lengths: Int32Array.from(meta.lengths),
    };
    const { logp, entropy } = model.logprobs(batch, { entropy: true });
    assert.ok(entropy);
    const report: string[] = [];
    const check = (what: string, actual: Float32Array, want: Float32Array) => {
      const err = relativeError(actual, want);
      report.push(`${what}: ${err.toExponential(2)}`);
      assert.ok(err <= TOLERANCE, `${name} ${what}: relative error ${err} > ${TOLERANCE}`);
    };
    check("logp", logp, expected.get("logp")?.data as Float32Array);
    check("entropy", entropy, expected.get("entropy")?.data as Float32Array);

    const count = meta.lossTokens;
    const dLogp = new Float32Array(B * T);
    const dEntropy = new Float32Array(B * T);
    let loss = 0;
    for (let i = 0; i < B * T; i++) {
      if (meta.targets[i] < 0) continue;
      dLogp[i] = -1 / count;
      dEntropy[i] = meta.entropyCoef / count;
      loss += (-logp[i] + meta.entropyCoef * entropy[i]) / count;
    }
    report.push(`loss: ${Math.abs(loss - meta.loss).toExponential(2)} abs`);
    assert.ok(Math.abs(loss - meta.loss) <= TOLERANCE * Math.abs(meta.loss), `loss ${loss} vs ${meta.loss}`);
    model.zeroGrad();
    model.backward(dLogp, dEntropy);
    let worst = 0;
    let worstName = "";
    for (const [pname, p] of model.parameters()) {
      const want = expected.get(`grad.${pname}`);
      assert.ok(want, `expected gradient for ${pname} missing from the fixture`);
      const err = relativeError(p.grad, want.data);
      if (err > worst) {
        worst = err;
        worstName = pname;
      }
      assert.ok(err <= TOLERANCE, `${name} grad ${pname}: relative error ${err} > ${TOLERANCE}`);
    }
    report.push(`grads (${model.parameters().size}): worst ${worst.toExponential(2)} (${worstName})`);

    // Logits through the KV-cache path: prefill each sequence whole and compare the last position.
    const cache = model.createKVCache(B, T);
    const counts = Int32Array.from(meta.lengths);
    const last = model.forwardTokens(cache, batch.tokens, counts);
    const V = config.vocabSize;
    const allLogits = expected.get("logits")?.data as Float32Array;
    const wantLast = new Float32Array(B * V);
    for (let b = 0; b < B; b++) {
      const t = meta.lengths[b] - 1;
      wantLast.set(allLogits.subarray((b * T + t) * V, (b * T + t + 1) * V), b * V);
    }
    check("decode logits", last, wantLast);
    console.log(`  ${name}: ${report.join("; ")}`);
  });
}
