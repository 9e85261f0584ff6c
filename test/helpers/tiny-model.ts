// The smallest Qwen3 the RL and store tests train: a byte tokenizer with an end-of-text token and a
// 1-layer, 16-wide model, so each test builds it in one line and they all test the same shape.
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer } from "../../src/model/tokenizer.js";

export function eosByteTokenizer(): ByteTokenizer {
  return new ByteTokenizer({
    addedTokens: [{ content: "<|endoftext|>", special: true }],
    eosToken: "<|endoftext|>",
  });
}

export function tinyTestModel(
  tokenizer: ByteTokenizer,
  seed: number,
  opts: { tieWordEmbeddings?: boolean } = {},
): Qwen3Model {
  return Qwen3Model.create(
    tinyQwen3Config({
      vocabSize: tokenizer.vocabSize,
      hiddenSize: 16,
      numHiddenLayers: 1,
      numAttentionHeads: 2,
      numKeyValueHeads: 1,
      headDim: 8,
      intermediateSize: 32,
      maxPositionEmbeddings: 64,
      ...(opts.tieWordEmbeddings === undefined ? {} : { tieWordEmbeddings: opts.tieWordEmbeddings }),
    }),
    { seed },
  );
}
