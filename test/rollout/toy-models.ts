import type { DecodeModel } from "../../src/rollout/generate.js";

/** Every position gets the same logits: the sampler's distribution is known exactly. */
export function fixedLogitsModel(
  logits: number[],
): DecodeModel<{ calls: number[][] }> & { rowsSeen: number[][] } {
  const vocabSize = logits.length;
  const rowsSeen: number[][] = [];
  return {
    vocabSize,
    rowsSeen,
    createKVCache: () => ({ calls: [] }),
    forwardRows(_cache, _tokens, rows) {
      rowsSeen.push([...rows]);
      const out = new Float32Array(rows.length * vocabSize);
      for (let r = 0; r < rows.length; r++) out.set(logits, r * vocabSize);
      return out;
    },
  };
}

/**
 * Logits depend on the whole prefix through a hash, so any misaligned position, row mix-up or lost
 * token in `generate` changes them. `logprobs` recomputes from the full sequence without a cache, the
 * way a trainer does.
 */
export function prefixHashModel(vocabSize: number): DecodeModel<{ rows: number[][]; maxLen: number }> & {
  logitsFor(prefix: number[]): Float32Array;
  logprobs(seq: number[], from: number): number[];
} {
  const logitsFor = (prefix: number[]) => {
    let h = 2166136261;
    for (const t of prefix) h = Math.imul(h ^ (t + 1), 16777619) >>> 0;
    const out = new Float32Array(vocabSize);
    for (let v = 0; v < vocabSize; v++) {
      let x = Math.imul(h ^ Math.imul(v + 7, 0x9e3779b1), 0x85ebca6b) >>> 0;
      x = (x ^ (x >>> 15)) >>> 0;
      out[v] = ((x % 1000) / 1000) * 4 - 2;
    }
    return out;
  };
  return {
    vocabSize,
    logitsFor,
    createKVCache: (batch, maxLen) => ({ rows: Array.from({ length: batch }, () => []), maxLen }),
    forwardRows(cache, tokens, rows, seqLen) {
      const out = new Float32Array(rows.length * vocabSize);
      for (let a = 0; a < rows.length; a++) {
        const row = cache.rows[rows[a]];
        for (let j = 0; j < seqLen; j++) row.push(tokens[a * seqLen + j]);
        if (row.length > cache.maxLen) throw new Error(`row ${rows[a]} overflowed the cache`);
        out.set(logitsFor(row), a * vocabSize);
      }
      return out;
    },
    logprobs(seq, from) {
      const lp: number[] = [];
      for (let i = from; i < seq.length; i++) {
        const l = logitsFor(seq.slice(0, i));
        let m = Number.NEGATIVE_INFINITY;
        for (const x of l) m = Math.max(m, x);
        let z = 0;
        for (const x of l) z += Math.exp(x - m);
        lp.push(l[seq[i]] - m - Math.log(z));
      }
      return lp;
    },
  };
}
