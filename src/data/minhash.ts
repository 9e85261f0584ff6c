import { ConfigError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { fmix32, normalizedWords, shingleHashes32, wordHashes } from "./text.js";

export interface MinHashOptions {
  /** Number of hash permutations (signature length). */
  numPerm?: number;
  /** Words per shingle. */
  shingleSize?: number;
  /** Estimated Jaccard similarity at or above which two texts are near-duplicates. */
  threshold?: number;
  /** LSH bands; with `rows`, overrides the choice made from the threshold. */
  bands?: number;
  /** Signature values per band. */
  rows?: number;
  /**
   * Weight of missed pairs against spurious candidates when bands and rows are chosen from the
   * threshold. Default 0.95: candidates are confirmed against the signature anyway, so a spurious
   * candidate costs one comparison while a missed one is a duplicate left in the data.
   */
  falseNegativeWeight?: number;
  seed?: number;
}

export interface ResolvedMinHashOptions {
  numPerm: number;
  shingleSize: number;
  threshold: number;
  bands: number;
  rows: number;
  seed: number;
}

function integrate(f: (x: number) => number, a: number, b: number): number {
  const n = 200;
  const h = (b - a) / n;
  let s = f(a) + f(b);
  for (let i = 1; i < n; i++) s += f(a + i * h) * (i % 2 === 1 ? 4 : 2);
  return (s * h) / 3;
}

/**
 * The (bands, rows) that minimise the weighted false-positive and false-negative areas around
 * `threshold` (datasketch's criterion; it weighs both 0.5), so a threshold alone picks sane bands.
 */
export function optimalLshParams(
  threshold: number,
  numPerm: number,
  falseNegativeWeight = 0.5,
): { bands: number; rows: number } {
  let best = { bands: 1, rows: numPerm, error: Number.POSITIVE_INFINITY };
  for (let b = 1; b <= numPerm; b++) {
    for (let r = 1; r <= Math.floor(numPerm / b); r++) {
      const p = (s: number) => 1 - (1 - s ** r) ** b;
      const fp = integrate(p, 0, threshold);
      const fn = integrate((s) => 1 - p(s), threshold, 1);
      const error = (1 - falseNegativeWeight) * fp + falseNegativeWeight * fn;
      if (error < best.error) best = { bands: b, rows: r, error };
    }
  }
  return { bands: best.bands, rows: best.rows };
}

export function resolveMinHashOptions(o: MinHashOptions = {}): ResolvedMinHashOptions {
  const numPerm = o.numPerm ?? 128;
  const threshold = o.threshold ?? 0.8;
  const shingleSize = o.shingleSize ?? 3;
  if (!Number.isInteger(numPerm) || numPerm < 2 || numPerm > 4096) {
    throw new ConfigError(
      `minhash numPerm ${numPerm} is out of range`,
      "use an integer in 2..4096 (128 is usual)",
    );
  }
  if (!(threshold > 0 && threshold <= 1)) {
    throw new ConfigError(
      `minhash threshold ${threshold} is out of range`,
      "use a Jaccard threshold in (0, 1]",
    );
  }
  if (!Number.isInteger(shingleSize) || shingleSize < 1) {
    throw new ConfigError(`shingle size ${shingleSize} is invalid`, "use a positive integer number of words");
  }
  let bands = o.bands;
  let rows = o.rows;
  if (bands === undefined || rows === undefined) {
    const opt = optimalLshParams(threshold, numPerm, o.falseNegativeWeight ?? 0.95);
    bands ??= rows !== undefined ? Math.floor(numPerm / rows) : opt.bands;
    rows ??= Math.floor(numPerm / bands);
  }
  if (bands < 1 || rows < 1 || bands * rows > numPerm) {
    throw new ConfigError(
      `LSH bands×rows = ${bands}×${rows} does not fit in ${numPerm} permutations`,
      "choose bands and rows with bands*rows <= numPerm, or give only a threshold",
    );
  }
  return { numPerm, shingleSize, threshold, bands, rows, seed: o.seed ?? 1 };
}

/** Growable Int32Array. */
class IntVec {
  data: Int32Array;
  constructor(cap = 1024) {
    this.data = new Int32Array(cap);
  }
  set(i: number, v: number): void {
    if (i >= this.data.length) {
      let cap = this.data.length * 2;
      while (cap <= i) cap *= 2;
      const next = new Int32Array(cap);
      next.set(this.data);
      this.data = next;
    }
    this.data[i] = v;
  }
}

/**
 * One LSH band: open addressing from a 32-bit band key to the newest document with that key, and a
 * per-document link to the previous one. Typed arrays keep millions of documents in tens of MB,
 * where a Map of arrays would take gigabytes.
 */
class BandTable {
  private keys = new Uint32Array(1 << 12);
  private heads = new Int32Array(1 << 12).fill(-1);
  private size = 0;
  readonly next = new IntVec();

  private slot(key: number): number {
    const mask = this.keys.length - 1;
    let i = fmix32(key) & mask;
    while (this.heads[i] !== -1 && this.keys[i] !== key) i = (i + 1) & mask;
    return i;
  }

  head(key: number): number {
    return this.heads[this.slot(key)];
  }

  insert(key: number, doc: number): void {
    let i = this.slot(key);
    if (this.heads[i] === -1) {
      if ((this.size + 1) * 2 > this.keys.length) {
        this.grow();
        i = this.slot(key);
      }
      this.size++;
      this.keys[i] = key;
      this.next.set(doc, -1);
    } else {
      this.next.set(doc, this.heads[i]);
    }
    this.heads[i] = doc;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldHeads = this.heads;
    this.keys = new Uint32Array(oldKeys.length * 2);
    this.heads = new Int32Array(oldKeys.length * 2).fill(-1);
    for (let j = 0; j < oldKeys.length; j++) {
      if (oldHeads[j] === -1) continue;
      const i = this.slot(oldKeys[j]);
      this.keys[i] = oldKeys[j];
      this.heads[i] = oldHeads[j];
    }
  }
}

/**
 * MinHash signatures with banded LSH for near-duplicate detection. Candidates from the bands are
 * confirmed by the signature's Jaccard estimate, so a band collision alone never removes a row.
 */
export class MinHashLsh {
  readonly options: ResolvedMinHashOptions;
  private readonly seeds: Uint32Array;
  private readonly tables: BandTable[];
  private readonly chunks: Uint32Array[] = [];
  private readonly chunkDocs = 4096;
  private count = 0;
  private stamp = new IntVec();
  private visit = 0;

  constructor(options: MinHashOptions = {}) {
    this.options = resolveMinHashOptions(options);
    const rng = new Rng(this.options.seed);
    this.seeds = new Uint32Array(this.options.numPerm);
    for (let i = 0; i < this.seeds.length; i++) this.seeds[i] = rng.nextU32();
    this.tables = Array.from({ length: this.options.bands }, () => new BandTable());
  }

  get size(): number {
    return this.count;
  }

  /** The MinHash signature of a text (normalised words, `shingleSize`-word shingles). */
  signature(text: string): Uint32Array {
    return this.signatureOfWords(normalizedWords(text));
  }

  /** The signature of already normalised words. */
  signatureOfWords(words: readonly string[]): Uint32Array {
    return this.signatureOfShingles(shingleHashes32(wordHashes(words), this.options.shingleSize));
  }

  signatureOfShingles(shingles: Uint32Array): Uint32Array {
    const k = this.options.numPerm;
    const sig = new Uint32Array(k).fill(0xffffffff);
    const seeds = this.seeds;
    // Permutation-major: the running minimum stays in a register instead of a typed-array slot.
    const n = shingles.length;
    for (let p = 0; p < k; p++) {
      const seed = seeds[p];
      let min = 0xffffffff;
      for (let s = 0; s < n; s++) {
        let h = shingles[s] ^ seed;
        h ^= h >>> 16;
        h = Math.imul(h, 0x85ebca6b);
        h ^= h >>> 13;
        h = Math.imul(h, 0xc2b2ae35);
        h ^= h >>> 16;
        h >>>= 0;
        if (h < min) min = h;
      }
      sig[p] = min;
    }
    return sig;
  }

  private bandKey(sig: Uint32Array, band: number): number {
    const r = this.options.rows;
    let h = 0x3c6ef372 ^ band;
    for (let j = band * r; j < (band + 1) * r; j++) h = Math.imul(h ^ sig[j], 0x9e3779b1) ^ (h >>> 15);
    return fmix32(h);
  }

  private stored(doc: number): { chunk: Uint32Array; offset: number } {
    return {
      chunk: this.chunks[Math.floor(doc / this.chunkDocs)],
      offset: (doc % this.chunkDocs) * this.options.numPerm,
    };
  }

  /** Estimated Jaccard similarity between a signature and stored document `doc`. */
  similarity(sig: Uint32Array, doc: number): number {
    const { chunk, offset } = this.stored(doc);
    let same = 0;
    for (let i = 0; i < sig.length; i++) if (chunk[offset + i] === sig[i]) same++;
    return same / sig.length;
  }

  /** The most similar stored document at or above the threshold, or null. */
  query(sig: Uint32Array): { doc: number; jaccard: number } | null {
    let best: { doc: number; jaccard: number } | null = null;
    const v = ++this.visit;
    for (let b = 0; b < this.tables.length; b++) {
      const table = this.tables[b];
      for (let d = table.head(this.bandKey(sig, b)); d !== -1; d = table.next.data[d]) {
        if (this.stamp.data[d] === v) continue;
        this.stamp.set(d, v);
        const j = this.similarity(sig, d);
        if (j >= this.options.threshold && (best === null || j > best.jaccard)) best = { doc: d, jaccard: j };
      }
    }
    return best;
  }

  /** Stores a signature; returns its document id (0, 1, 2, ... in insertion order). */
  insert(sig: Uint32Array): number {
    const doc = this.count++;
    const chunkIndex = Math.floor(doc / this.chunkDocs);
    if (chunkIndex === this.chunks.length)
      this.chunks.push(new Uint32Array(this.chunkDocs * this.options.numPerm));
    const { chunk, offset } = this.stored(doc);
    chunk.set(sig, offset);
    for (let b = 0; b < this.tables.length; b++) this.tables[b].insert(this.bandKey(sig, b), doc);
    return doc;
  }
}

/** Exact Jaccard similarity of the shingle sets of two texts (for evaluating the estimate). */
export function exactJaccard(a: string, b: string, shingleSize = 3): number {
  const sa = new Set(shingleHashes32(wordHashes(normalizedWords(a)), shingleSize));
  const sb = new Set(shingleHashes32(wordHashes(normalizedWords(b)), shingleSize));
  let inter = 0;
  for (const x of sa) if (sb.has(x)) inter++;
  const union = sa.size + sb.size - inter;
  return union === 0 ? 1 : inter / union;
}
