/**
 * Dev-only driver for check_hf_load.py: saves a random tiny Qwen3 as a klear checkpoint and writes what klear
 * computes on it (logits at every position, token ids, a rendered chat prompt) for transformers to compare.
 *
 * Usage: node --import tsx scripts/oracle/hf_check_save.ts <out dir> <float32|bfloat16|float16> <tied 0|1>
 *        <max shard bytes or 0> <default|yarn> [tokenizer dir]
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyChatTemplate } from "../../src/model/chat.js";
import { loadModel, saveCheckpoint } from "../../src/model/checkpoint.js";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import type { SafetensorsWriteDtype } from "../../src/model/safetensors.js";
import { ByteTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";

const [outDir, dtype, tied, shard, rope, tokenizerDir] = process.argv.slice(2);
const tokenizer = tokenizerDir ? await loadTokenizer(tokenizerDir) : new ByteTokenizer();
const config = tinyQwen3Config({
  vocabSize: Math.max(288, Math.ceil(tokenizer.vocabSize / 64) * 64),
  hiddenSize: 64,
  intermediateSize: 96,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
  tieWordEmbeddings: tied === "1",
  ropeTheta: 1_000_000,
  maxPositionEmbeddings: 128,
  // YaRN past a short original context, so the prompt runs through the scaled frequencies.
  ropeScaling:
    rope === "yarn"
      ? {
          type: "yarn",
          factor: 4,
          originalMaxPositionEmbeddings: 32,
          betaFast: 32,
          betaSlow: 1,
          attentionFactor: 0.1 * Math.log(4) + 1,
          truncate: true,
        }
      : { type: "default" },
});
// Larger-than-init weights so the logits spread and a wrong layout cannot hide in near-uniform outputs.
const source = Qwen3Model.create({ ...config, initializerRange: 0.2 }, { seed: 7 });
const ckpt = join(outDir, "checkpoint");
await saveCheckpoint(ckpt, source, tokenizer, {
  dtype: dtype as SafetensorsWriteDtype,
  maxShardSize: Number(shard) > 0 ? Number(shard) : undefined,
});

// Evaluate the model as loaded back (so bf16/f16 rounding is what both sides see).
const { model } = await loadModel(ckpt);
const messages = [
  { role: "system", content: "You are a careful solver." },
  { role: "user", content: "Solve x² + 1 = 5 — héllo 😀" },
];
const prompt = applyChatTemplate(tokenizer, messages, { addGenerationPrompt: true, enableThinking: false });
const ids = tokenizer.encode(prompt);
const cache = model.createKVCache(1, ids.length);
const V = config.vocabSize;
const logits = new Float32Array(ids.length * V);
for (let t = 0; t < ids.length; t++) logits.set(model.forwardTokens(cache, new Int32Array([ids[t]])), t * V);
writeFileSync(join(outDir, "klear_logits.f32"), Buffer.from(logits.buffer));
writeFileSync(join(outDir, "klear.json"), JSON.stringify({ messages, prompt, ids, vocab: V }));
console.log(`saved ${ckpt} (${dtype}, tied=${tied}, ${ids.length} tokens)`);
