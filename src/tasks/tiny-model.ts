/**
 * The pieces of klear's tiny from-scratch models (the recipe demo's, the arithmetic starting policy): a byte
 * tokenizer with an end-of-text token, and a freshly initialised Qwen3 saved as the checkpoint SFT starts from.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { saveCheckpoint } from "../model/checkpoint.js";
import { tinyQwen3Config } from "../model/config.js";
import { Qwen3Model } from "../model/qwen3.js";
import { ByteTokenizer, type Tokenizer } from "../model/tokenizer.js";

/** The demo's tokenizer: bytes plus an end-of-text token, so any character round-trips. */
export function demoTokenizer(): ByteTokenizer {
  return new ByteTokenizer({
    addedTokens: [{ content: "<|endoftext|>", special: true }],
    eosToken: "<|endoftext|>",
  });
}

export interface TinyModelShape {
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  intermediateSize: number;
  /** Context length: the longest SFT row and prompt + response. */
  maxPositions: number;
  /** Untied lets RL move one token's output row alone (default false). */
  tieWordEmbeddings?: boolean;
}

/**
 * A fresh tiny Qwen3 whose vocabulary is exactly the tokenizer's (a larger head could sample ids the tokenizer
 * cannot decode), saved into `dir` with the tokenizer; an existing checkpoint there is kept. Returns `dir`.
 */
export async function writeFreshCheckpoint(
  dir: string,
  tokenizer: Tokenizer,
  shape: TinyModelShape,
  seed: number,
): Promise<string> {
  if (existsSync(join(dir, "config.json"))) return dir;
  const model = Qwen3Model.create(
    tinyQwen3Config({
      vocabSize: tokenizer.vocabSize,
      hiddenSize: shape.hiddenSize,
      numHiddenLayers: shape.numHiddenLayers,
      numAttentionHeads: shape.numAttentionHeads,
      numKeyValueHeads: shape.numKeyValueHeads,
      headDim: shape.headDim,
      intermediateSize: shape.intermediateSize,
      tieWordEmbeddings: shape.tieWordEmbeddings ?? false,
      maxPositionEmbeddings: shape.maxPositions,
    }),
    { seed },
  );
  await saveCheckpoint(dir, model, tokenizer);
  return dir;
}
