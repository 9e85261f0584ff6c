import { ConfigError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { hashString32, normalizedWords } from "./text.js";

/** A source with its quality score (higher is better). */
export interface SourceScore {
  source: string;
  score: number;
}

/** Sources sorted best first, ties broken by name so the ranking is reproducible. */
export function rankSources(scores: readonly SourceScore[]): SourceScore[] {
  return [...scores].sort((a, b) => b.score - a.score || a.source.localeCompare(b.source));
}

/** The names of the `k` best sources (the paper's "top-K sources" ablation). */
export function topKSources(scores: readonly SourceScore[], k: number): string[] {
  if (!Number.isInteger(k) || k < 1) throw new ConfigError(`top-K ${k} is invalid`, "use a positive integer");
  return rankSources(scores)
    .slice(0, k)
    .map((s) => s.source);
}

export const SOURCE_SCORE_RULES = ["hard-fraction", "mean-response-tokens", "rows"] as const;
export type SourceScoreRule = (typeof SOURCE_SCORE_RULES)[number];

/** Running per-source aggregates from which a quality score is computed. */
export class SourceScoreAccumulator {
  private readonly per = new Map<
    string,
    { rows: number; hard: number; tagged: number; responseTokens: number }
  >();

  add(source: string, r: { difficulty?: string; responseTokens?: number }): void {
    let s = this.per.get(source);
    if (!s) this.per.set(source, (s = { rows: 0, hard: 0, tagged: 0, responseTokens: 0 }));
    s.rows++;
    if (r.difficulty !== undefined) {
      s.tagged++;
      if (r.difficulty === "hard") s.hard++;
    }
    s.responseTokens += r.responseTokens ?? 0;
  }

  counts(): Map<string, number> {
    return new Map([...this.per].map(([k, v]) => [k, v.rows]));
  }

  /**
   * Scores by a rule: the fraction of difficulty-tagged rows that are hard (the paper keeps hard
   * data), the mean response length (longer reasoning traces), or plain size.
   */
  scores(rule: SourceScoreRule): SourceScore[] {
    return [...this.per].map(([source, s]) => ({
      source,
      score:
        rule === "hard-fraction"
          ? s.tagged === 0
            ? 0
            : s.hard / s.tagged
          : rule === "mean-response-tokens"
            ? s.responseTokens / Math.max(1, s.rows)
            : s.rows,
    }));
  }
}

/**
 * How many rows to take from each source so that the mix follows `ratios` (normalised) and totals
 * `total`, never asking a source for more rows than it has (the shortfall is spread over the others).
 */
export function mixQuotas(
  available: ReadonlyMap<string, number>,
  ratios: Readonly<Record<string, number>>,
  total: number,
): Map<string, number> {
  for (const [s, r] of Object.entries(ratios)) {
    if (!(r >= 0)) throw new ConfigError(`mix ratio for ${s} is ${r}`, "ratios must be non-negative numbers");
    if (!available.has(s)) {
      throw new ConfigError(
        `mix names source "${s}", which is not in the input`,
        `sources present: ${[...available.keys()].join(", ")}`,
      );
    }
  }
  const quotas = new Map<string, number>();
  let remaining = Math.min(
    total,
    Object.keys(ratios).reduce((a, s) => a + (available.get(s) ?? 0), 0),
  );
  let open = Object.entries(ratios).filter(([, r]) => r > 0);
  for (const [s] of open) quotas.set(s, 0);
  while (remaining > 0 && open.length > 0) {
    const sum = open.reduce((a, [, r]) => a + r, 0);
    let given = 0;
    const shares = open.map(([s, r]) => {
      const room = (available.get(s) ?? 0) - (quotas.get(s) ?? 0);
      return { s, share: Math.min(room, Math.floor((remaining * r) / sum)), room };
    });
    for (const { s, share } of shares) {
      quotas.set(s, (quotas.get(s) ?? 0) + share);
      given += share;
    }
    // Rounding leftovers go one by one to the sources with room, largest ratio first.
    if (given === 0) {
      for (const { s, room } of shares.sort((a, b) => (ratios[b.s] ?? 0) - (ratios[a.s] ?? 0))) {
        if (given < remaining && room > 0) {
          quotas.set(s, (quotas.get(s) ?? 0) + 1);
          given++;
        }
      }
      if (given === 0) break;
    }
    remaining -= given;
    open = open.filter(([s]) => (quotas.get(s) ?? 0) < (available.get(s) ?? 0));
  }
  return quotas;
}

/**
 * Streaming exact-size uniform sampling (Knuth's selection sampling): from `n` items seen in order,
 * each is taken with probability needed/left, which yields exactly `k` without holding any rows.
 */
export class SelectionSampler {
  private needed: number;
  private left: number;
  constructor(
    k: number,
    n: number,
    private readonly rng: Rng,
  ) {
    this.needed = Math.min(k, n);
    this.left = n;
  }
  take(): boolean {
    if (this.left <= 0) return false;
    const take = this.rng.uniform() * this.left < this.needed;
    this.left--;
    if (take) this.needed--;
    return take;
  }
}

/**
 * An L2-normalised feature-hashed vector of word unigrams and bigrams: a cheap text embedding that
 * needs no model, enough to spread a K-Center selection over topics and phrasings.
 */
export function hashedNgramVector(text: string, dim = 256): Float32Array {
  const v = new Float32Array(dim);
  const words = normalizedWords(text);
  let prev = "";
  for (const w of words) {
    const h1 = hashString32(w);
    v[h1 % dim] += (h1 & 0x80000000) !== 0 ? 1 : -1;
    if (prev !== "") {
      const h2 = hashString32(`${prev} ${w}`, 0x5bd1e995);
      v[h2 % dim] += (h2 & 0x80000000) !== 0 ? 1 : -1;
    }
    prev = w;
  }
  let norm = 0;
  for (let i = 0; i < dim; i++) norm += v[i] * v[i];
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < dim; i++) v[i] *= inv;
  }
  return v;
}

/**
 * K-Center Greedy (Sener & Savarese): start from one point, then repeatedly add the point farthest
 * from every chosen one. Returns indices in the order chosen. O(n·k·dim) time, O(n) extra memory.
 */
export function kCenterGreedy(
  vectors: readonly Float32Array[],
  k: number,
  opts: { seed?: number } = {},
): number[] {
  const n = vectors.length;
  if (n === 0 || k <= 0) return [];
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const dim = vectors[0].length;
  const minDist = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  const chosen: number[] = [];
  let next = new Rng(opts.seed ?? 0).int(n);
  for (let c = 0; c < k; c++) {
    chosen.push(next);
    const center = vectors[next];
    let far = -1;
    let farDist = -1;
    for (let i = 0; i < n; i++) {
      const v = vectors[i];
      let d = 0;
      for (let j = 0; j < dim; j++) {
        const x = v[j] - center[j];
        d += x * x;
      }
      if (d < minDist[i]) minDist[i] = d;
      if (minDist[i] > farDist) {
        farDist = minDist[i];
        far = i;
      }
    }
    next = far;
  }
  return chosen;
}
