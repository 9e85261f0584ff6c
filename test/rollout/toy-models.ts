import type { DecodeModel } from "../../src/rollout/generate.js";

/** Every position gets the same logits: the sampler's distribution is known exactly. */
export function fixedLogitsModel(logits: number[]): DecodeModel<null> & { countsSeen: number[][] } {
  const vocabSize = logits.length;
  const countsSeen: number[][] = [];
  return {
    config: { vocabSize },
    countsSeen,
    createKVCache: () => null,
    forwardTokens(_cache, tokens, counts) {
      const batch = counts?.length ?? tokens.length;
      countsSeen.push(counts ? [...counts] : []);
      const out = new Float32Array(batch * vocabSize);
      for (let r = 0; r < batch; r++) out.set(logits, r * vocabSize);
      return out;
    },
  };
}

interface ToyCache {
  rows: number[][];
  maxLen: number;
}

/**
 * Logits depend on the whole prefix through a hash, so any misaligned position, row mix-up or lost
 * token in `generate` changes them. `logprobs` recomputes from the full sequence without a cache, the
 * way a trainer does.
 */
export function prefixHashModel(vocabSize: number): DecodeModel<ToyCache> & {
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
    config: { vocabSize },
    logitsFor,
    createKVCache: (batch, maxLen) => ({ rows: Array.from({ length: batch }, () => []), maxLen }),
    forwardTokens(cache, tokens, counts) {
      const B = cache.rows.length;
      const chunk = tokens.length / B;
      const out = new Float32Array(B * vocabSize);
      for (let b = 0; b < B; b++) {
        const n = counts ? counts[b] : chunk;
        if (n === 0) continue;
        const row = cache.rows[b];
        for (let j = 0; j < n; j++) row.push(tokens[b * chunk + j]);
        if (row.length > cache.maxLen) throw new Error(`row ${b} overflowed the cache`);
        out.set(logitsFor(row), b * vocabSize);
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
