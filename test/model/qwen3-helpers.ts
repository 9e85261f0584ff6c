// Shared by the Qwen3Model tests: a small config and random token ids.
import { tinyQwen3Config } from "../../src/model/config.js";
import type { Rng } from "../../src/util/rng.js";

/** 2 layers, d32, 4 q / 2 kv heads of 8, vocab 40: every path of the model in milliseconds. */
export const smallQwen3 = (tieWordEmbeddings = false) =>
  tinyQwen3Config({
    vocabSize: 40,
    hiddenSize: 32,
    intermediateSize: 48,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 8,
    maxPositionEmbeddings: 64,
    tieWordEmbeddings,
  });

export function randomTokens(rng: Rng, n: number, V: number): Int32Array {
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) t[i] = rng.int(V);
  return t;
}
