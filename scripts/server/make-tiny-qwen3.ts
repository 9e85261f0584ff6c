/**
 * Writes the tiny Qwen3 checkpoint the server suites serve, with klear's own checkpoint writer: a byte
 * tokenizer with Qwen's chat tokens (vocabulary 261, so the output layer is cheap on the CPU), head_dim 32
 * (vLLM's CPU attention rejects 16) and untied embeddings (vLLM-CPU's in-place reload keeps a stale packed
 * lm_head for tied checkpoints). Usage: node --import tsx scripts/server/make-tiny-qwen3.ts OUT_DIR [SEED]
 */
import { saveCheckpoint } from "../../src/model/checkpoint.js";
import { type TinyQwen3Options, tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer } from "../../src/model/tokenizer.js";

export function serverTestTokenizer(): ByteTokenizer {
  return new ByteTokenizer();
}

/** `shape` overrides the architecture (the benchmark uses a wider model); the vocabulary stays the tokenizer's. */
export async function makeTinyQwen3(out: string, seed = 7, shape: TinyQwen3Options = {}): Promise<void> {
  const tokenizer = serverTestTokenizer();
  const config = tinyQwen3Config({
    hiddenSize: 64,
    intermediateSize: 128,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 32,
    maxPositionEmbeddings: 1024,
    tieWordEmbeddings: false,
    ...shape,
    vocabSize: tokenizer.vocabSize,
  });
  const model = Qwen3Model.create(config, { seed });
  await saveCheckpoint(out, model, tokenizer);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2];
  if (!out) {
    console.error("usage: make-tiny-qwen3.ts OUT_DIR [SEED]");
    process.exit(2);
  }
  await makeTinyQwen3(out, Number(process.argv[3] ?? 7));
  console.log(`wrote ${out}`);
}
