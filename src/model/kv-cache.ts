import { totalmem } from "node:os";
import { ConfigError, KlearError } from "../util/errors.js";
import type { Qwen3Config } from "./config.js";

/** Grows-only scratch: a view of the requested length over a buffer reallocated only when too small. */
export class Scratch {
  private buf = new Float32Array(0);
  get(n: number): Float32Array {
    if (this.buf.length < n) this.buf = new Float32Array(n);
    return this.buf.subarray(0, n);
  }
}

/** Named grows-only scratch buffers (one `Scratch` per name). */
export class ScratchSet {
  private readonly byName = new Map<string, Scratch>();
  readonly get = (name: string, n: number): Float32Array => {
    let s = this.byName.get(name);
    if (!s) {
      s = new Scratch();
      this.byName.set(name, s);
    }
    return s.get(n);
  };
  /** An Int32Array view over the same kind of buffer. */
  readonly ints = (name: string, n: number): Int32Array => {
    const f = this.get(name, n);
    return new Int32Array(f.buffer, f.byteOffset, n);
  };
}

/** Sequences' keys and values for incremental decoding. */
export class KVCache {
  readonly batchSize: number;
  readonly maxLen: number;
  /** Tokens already in the cache per sequence (the next token's position). */
  readonly lengths: Int32Array;
  /** Per layer, [batchSize, kvHeads, maxLen, headDim]. */
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** Scratch reused across decode steps (so a step allocates nothing once warm). */
  readonly scratch = new ScratchSet();

  constructor(config: Qwen3Config, batchSize: number, maxLen: number) {
    if (!(Number.isInteger(batchSize) && batchSize > 0 && Number.isInteger(maxLen) && maxLen > 0)) {
      throw new ConfigError(
        `createKVCache(${batchSize}, ${maxLen}): both must be positive integers`,
        "pass the number of sequences and the longest total length (prompt + new tokens)",
      );
    }
    this.batchSize = batchSize;
    this.maxLen = maxLen;
    this.lengths = new Int32Array(batchSize);
    const per = batchSize * config.numKeyValueHeads * maxLen * config.headDim;
    const bytes = per * 4 * 2 * config.numHiddenLayers;
    if (bytes > totalmem() * 0.75 || per > 2 ** 31) {
      throw new KlearError(
        "KV_CACHE_TOO_LARGE",
        `a KV cache for ${batchSize} sequences of ${maxLen} tokens needs ${(bytes / 2 ** 30).toFixed(1)} GiB (${config.numHiddenLayers} layers × ${config.numKeyValueHeads} KV heads × ${config.headDim}), more than this machine's memory allows`,
        "decode fewer sequences at once (a smaller batch) or lower the maximum length (prompt + new tokens)",
      );
    }
    this.k = [];
    this.v = [];
    for (let l = 0; l < config.numHiddenLayers; l++) {
      this.k.push(new Float32Array(per));
      this.v.push(new Float32Array(per));
    }
  }

  /** Forget every sequence (keeps the memory). */
  reset(): void {
    this.lengths.fill(0);
  }

  buf(name: string, n: number): Float32Array {
    return this.scratch.get(name, n);
  }
}
