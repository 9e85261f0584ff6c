import type { Backend } from "../engine/backend.js";
import type { Parameter } from "../engine/optim.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { checkTokenRange } from "./batch.js";
import type { Qwen3Config } from "./config.js";
import type { KVCache } from "./kv-cache.js";
import {
  type Attend,
  allocAttentionTape,
  allocMlpTape,
  attentionForward,
  type LayerDims,
  type LayerWeights,
  mlpForward,
  type RowContext,
} from "./layer.js";
import type { RopeTable } from "./rope.js";

/**
 * Incremental decoding over a KV cache: the same layer functions as training (./layer.ts), with the
 * attention core writing new keys/values into the cache and attending each row to its sequence's cache.
 */

export interface DecodeWeights {
  embed: Parameter;
  layers: LayerWeights[];
  finalNorm: Parameter;
  lmHead: Parameter;
}

/** See `Qwen3Model.forwardTokens`. */
export function decodeTokens(
  cfg: Qwen3Config,
  d: LayerDims,
  weights: DecodeWeights,
  be: Backend,
  rope: RopeTable,
  cache: KVCache,
  tokens: Int32Array,
  counts?: Int32Array,
): Float32Array {
  const B = cache.batchSize;
  if (tokens.length % B !== 0) {
    throw new ConfigError(
      `forwardTokens: ${tokens.length} tokens do not split into ${B} sequences`,
      "pass [batchSize, chunk] tokens row-major",
    );
  }
  const C = tokens.length / B;
  if (counts && counts.length !== B) {
    throw new ConfigError(
      `forwardTokens: counts has ${counts.length} entries, expected ${B}`,
      "one per sequence",
    );
  }
  let R = 0;
  for (let b = 0; b < B; b++) {
    const n = counts ? counts[b] : C;
    if (!(n >= 0 && n <= C)) {
      throw new ConfigError(`forwardTokens: counts[${b}] = ${n} is outside [0, ${C}]`, "fix the counts");
    }
    if (cache.lengths[b] + n > cache.maxLen) {
      throw new KlearError(
        "KV_CACHE_FULL",
        `forwardTokens: sequence ${b} would reach ${cache.lengths[b] + n} tokens, past the cache's maxLen ${cache.maxLen}`,
        "create the cache with maxLen >= prompt length + max new tokens",
      );
    }
    R += n;
  }
  const V = cfg.vocabSize;
  const D = d.hidden;
  const out = new Float32Array(B * V);
  if (R === 0) return out;

  const ib = cache.scratch.ints;
  const rowTok = ib("rowTok", R);
  const rowSeq = ib("rowSeq", R);
  const rowPos = ib("rowPos", R);
  const lastRow = ib("lastRow", B);
  let r = 0;
  for (let b = 0; b < B; b++) {
    const n = counts ? counts[b] : C;
    lastRow[b] = -1;
    for (let t = 0; t < n; t++) {
      rowTok[r] = tokens[b * C + t];
      rowSeq[r] = b;
      rowPos[r] = cache.lengths[b] + t;
      lastRow[b] = r;
      r++;
    }
  }
  checkTokenRange(rowTok, V, "tokens");
  const buf = cache.scratch.get;
  const h = buf("h", R * D);
  const attn = allocAttentionTape(buf, "", R, d);
  const mlp = allocMlpTape(buf, "", R, d);
  const ctx: RowContext = { be, dims: d, rows: R, positions: rowPos, rope: rope };
  be.embedding(weights.embed.data, rowTok, h, R, D);
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const attend: Attend = (t) => {
      be.kvWrite(t.k, cache.k[l], rowSeq, rowPos, R, d.kvHeads, d.headDim, cache.maxLen);
      be.kvWrite(t.v, cache.v[l], rowSeq, rowPos, R, d.kvHeads, d.headDim, cache.maxLen);
      be.attentionDecode(
        t.q,
        cache.k[l],
        cache.v[l],
        t.att,
        rowSeq,
        rowPos,
        R,
        d.heads,
        d.kvHeads,
        d.headDim,
        cache.maxLen,
        d.scale,
      );
    };
    // The residual stream is updated in place: decode keeps no tape.
    attentionForward(ctx, weights.layers[l], attn, h, h, attend);
    mlpForward(ctx, weights.layers[l], mlp, h, h);
  }
  // Only each sequence's last new row needs the final norm and the vocabulary projection.
  const last = buf("last", B * D);
  const seqOf = ib("seqOf", B);
  let m = 0;
  for (let b = 0; b < B; b++) {
    if (lastRow[b] < 0) continue;
    last.set(h.subarray(lastRow[b] * D, (lastRow[b] + 1) * D), m * D);
    seqOf[m++] = b;
  }
  const lastN = buf("lastN", m * D);
  be.rmsnorm(last.subarray(0, m * D), weights.finalNorm.data, lastN, attn.rstd, m, D, cfg.rmsNormEps);
  const logits = buf("logits", m * V);
  be.gemm(false, true, m, V, D, 1, lastN, D, weights.lmHead.data, D, 0, logits, V);
  for (let i = 0; i < m; i++) out.set(logits.subarray(i * V, (i + 1) * V), seqOf[i] * V);
  for (let b = 0; b < B; b++) cache.lengths[b] += counts ? counts[b] : C;
  return out;
}
