/**
 * Text normalisation and hashing shared by dedup, decontamination and selection. Everything here is
 * deterministic across machines and Node versions, so the same corpus always dedups the same way.
 */

// Any run of characters that is not a letter or a digit separates words. LaTeX such as `$x^{2}$` thus
// becomes `x 2`, which is what makes planted contamination with changed formatting still match.
const NON_WORD = /[^\p{L}\p{N}]+/gu;

/** Lower-cased, NFKC-folded words of `text`, punctuation and markup dropped. */
export function normalizedWords(text: string): string[] {
  const folded = text.normalize("NFKC").toLowerCase().replace(NON_WORD, " ").trim();
  return folded === "" ? [] : folded.split(" ");
}

/** The normalised text as one string (words joined by single spaces): the key for exact dedup. */
export function normalizeText(text: string): string {
  return normalizedWords(text).join(" ");
}

/** murmur3's 32-bit finaliser: a fast bijective mixer with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit hash of a string (FNV-1a over UTF-16 code units, then fmix32), salted by `seed`. */
export function hashString32(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/**
 * A 53-bit hash (a safe JS integer, so it can key a Set<number> without strings) of a string. Two
 * independent 32-bit hashes make accidental collisions negligible at billions of items.
 */
export function hashString53(s: string): number {
  const hi = hashString32(s, 0x9e3779b9);
  const lo = hashString32(s, 0x7f4a7c15);
  return hi * 2097152 + (lo >>> 11);
}

/** 32-bit hashes of each word, computed once so n-gram hashes can be combined from them cheaply. */
export function wordHashes(words: readonly string[]): Uint32Array {
  const out = new Uint32Array(words.length);
  for (let i = 0; i < words.length; i++) out[i] = hashString32(words[i]);
  return out;
}

/**
 * Hashes of every contiguous `n`-word window, 32-bit. A text shorter than `n` words yields one hash
 * of all its words, so short texts still get a signature.
 */
export function shingleHashes32(wh: Uint32Array, n: number): Uint32Array {
  const count = wh.length >= n ? wh.length - n + 1 : wh.length > 0 ? 1 : 0;
  const width = Math.min(n, wh.length);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    let h = 0x2545f491 ^ width;
    for (let j = 0; j < width; j++) h = Math.imul(h ^ wh[i + j], 0x9e3779b1) ^ (h >>> 15);
    out[i] = fmix32(h);
  }
  return out;
}

/**
 * 53-bit hashes of every contiguous `n`-word window (no short-text fallback: a text shorter than `n`
 * words has no n-grams). Used where a false match would wrongly remove a row (decontamination).
 */
export function ngramHashes53(wh: Uint32Array, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + n <= wh.length; i++) {
    let a = 0x2545f491;
    let b = 0x6a09e667;
    for (let j = 0; j < n; j++) {
      a = Math.imul(a ^ wh[i + j], 0x9e3779b1) ^ (a >>> 15);
      b = Math.imul(b ^ wh[i + j], 0x85ebca77) ^ (b >>> 13);
    }
    out.push(fmix32(a) * 2097152 + (fmix32(b) >>> 11));
  }
  return out;
}

/** A rough token count without a tokenizer: words plus punctuation marks, about BPE tokens for English. */
export function approxTokenCount(text: string): number {
  let n = 0;
  const re = /[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu;
  while (re.exec(text) !== null) n++;
  return n;
}
