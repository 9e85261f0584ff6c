import { MinHashLsh, type MinHashOptions } from "./minhash.js";
import { hashString53, normalizeText } from "./text.js";

export interface RowRef {
  file: string;
  line: number;
}

export interface DuplicateVerdict {
  rule: "exact" | "near";
  duplicateOf: RowRef;
  /** Estimated Jaccard similarity (near duplicates only). */
  jaccard?: number;
}

export interface DeduplicatorOptions extends MinHashOptions {
  /** Remove rows whose normalised text equals an earlier row's (default true). */
  exact?: boolean;
  /** Remove near-duplicates by MinHash LSH (default true). */
  near?: boolean;
}

/**
 * Streaming deduplication: the first occurrence is kept, later exact or near copies are reported
 * with the row they duplicate. Memory per kept row is a 53-bit hash plus a MinHash signature
 * (4 bytes per permutation), never the text itself.
 */
export class Deduplicator {
  readonly exact: boolean;
  readonly near: boolean;
  readonly lsh: MinHashLsh | null;
  private readonly exactSeen = new Map<number, number>();
  private readonly refFiles: string[] = [];
  private refFileIndex = new Map<string, number>();
  private refs: { fileIndex: Int32Array; line: Float64Array } = {
    fileIndex: new Int32Array(1024),
    line: new Float64Array(1024),
  };
  private kept = 0;

  constructor(opts: DeduplicatorOptions = {}) {
    this.exact = opts.exact ?? true;
    this.near = opts.near ?? true;
    this.lsh = this.near ? new MinHashLsh(opts) : null;
  }

  private remember(ref: RowRef): number {
    const id = this.kept++;
    if (id >= this.refs.line.length) {
      const fileIndex = new Int32Array(this.refs.line.length * 2);
      const line = new Float64Array(this.refs.line.length * 2);
      fileIndex.set(this.refs.fileIndex);
      line.set(this.refs.line);
      this.refs = { fileIndex, line };
    }
    let fi = this.refFileIndex.get(ref.file);
    if (fi === undefined) {
      fi = this.refFiles.length;
      this.refFiles.push(ref.file);
      this.refFileIndex.set(ref.file, fi);
    }
    this.refs.fileIndex[id] = fi;
    this.refs.line[id] = ref.line;
    return id;
  }

  private refOf(id: number): RowRef {
    return { file: this.refFiles[this.refs.fileIndex[id]], line: this.refs.line[id] };
  }

  /** Checks a row's text; a row that is not a duplicate is remembered and null is returned. */
  check(text: string, ref: RowRef): DuplicateVerdict | null {
    const normalized = normalizeText(text);
    const key = hashString53(normalized);
    if (this.exact) {
      const prev = this.exactSeen.get(key);
      if (prev !== undefined) return { rule: "exact", duplicateOf: this.refOf(prev) };
    }
    let sig: Uint32Array | null = null;
    if (this.lsh) {
      sig = this.lsh.signatureOfWords(normalized === "" ? [] : normalized.split(" "));
      const hit = this.lsh.query(sig);
      if (hit) return { rule: "near", duplicateOf: this.refOf(hit.doc), jaccard: hit.jaccard };
    }
    const id = this.remember(ref);
    if (this.exact) this.exactSeen.set(key, id);
    // LSH ids and kept ids advance together because both count kept rows only.
    if (this.lsh && sig) this.lsh.insert(sig);
    return null;
  }
}
