import { Rng } from "../util/rng.js";

/**
 * Synthetic corpora with known near-duplicates, for tests and benchmarks: unrelated rows are random
 * word sequences from a large made-up vocabulary (so their pairwise Jaccard is ~0), and each
 * duplicate is an earlier row with a few word-level edits (so its true Jaccard is known by counting).
 */
export interface SyntheticRow {
  id: number;
  data_source: string;
  problem: string;
  answer: string;
  /** Id of the row this one was copied from (with edits), or -1 for an original. */
  dup_of: number;
  /** Number of word edits applied to the copy. */
  edits: number;
}

const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "nu",
  "pe",
  "ra",
  "si",
  "to",
  "vu",
  "xe",
  "ba",
  "di",
  "fo",
  "gu",
  "ze",
  "qua",
];

export function syntheticVocabulary(size: number, rng: Rng): string[] {
  const words = new Set<string>();
  while (words.size < size) {
    const n = 2 + rng.int(3);
    let w = "";
    for (let i = 0; i < n; i++) w += SYLLABLES[rng.int(SYLLABLES.length)];
    words.add(w);
  }
  return [...words];
}

/** Applies `edits` random word substitutions, insertions or deletions. */
export function editWords(
  words: readonly string[],
  edits: number,
  vocab: readonly string[],
  rng: Rng,
): string[] {
  const out = [...words];
  for (let e = 0; e < edits; e++) {
    const op = rng.int(3);
    const at = rng.int(Math.max(1, out.length));
    if (op === 0) out[at] = vocab[rng.int(vocab.length)];
    else if (op === 1) out.splice(at, 0, vocab[rng.int(vocab.length)]);
    else if (out.length > 1) out.splice(at, 1);
  }
  return out;
}

export interface SyntheticCorpusOptions {
  rows: number;
  /** Fraction of rows that are edited copies of earlier rows. */
  duplicateFraction?: number;
  /** Edits per copy are drawn uniformly from [minEdits, maxEdits]. */
  minEdits?: number;
  maxEdits?: number;
  minWords?: number;
  maxWords?: number;
  sources?: number;
  seed?: number;
  vocabularySize?: number;
}

export function* syntheticCorpus(o: SyntheticCorpusOptions): Generator<SyntheticRow> {
  const rng = new Rng(o.seed ?? 1);
  const vocab = syntheticVocabulary(o.vocabularySize ?? 20_000, rng);
  const originals: string[][] = [];
  const originalIds: number[] = [];
  const minWords = o.minWords ?? 40;
  const maxWords = o.maxWords ?? 80;
  for (let id = 0; id < o.rows; id++) {
    const source = `source-${id % (o.sources ?? 4)}`;
    if (originals.length > 0 && rng.uniform() < (o.duplicateFraction ?? 0.2)) {
      const k = rng.int(originals.length);
      const minE = o.minEdits ?? 0;
      const edits = minE + rng.int((o.maxEdits ?? 3) - minE + 1);
      const words = editWords(originals[k], edits, vocab, rng);
      yield {
        id,
        data_source: source,
        problem: words.join(" "),
        answer: String(id % 1000),
        dup_of: originalIds[k],
        edits,
      };
      continue;
    }
    const n = minWords + rng.int(maxWords - minWords + 1);
    const words = Array.from({ length: n }, () => vocab[rng.int(vocab.length)]);
    originals.push(words);
    originalIds.push(id);
    yield {
      id,
      data_source: source,
      problem: words.join(" "),
      answer: String(id % 1000),
      dup_of: -1,
      edits: 0,
    };
  }
}
