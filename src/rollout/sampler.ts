import { ConfigError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";

/**
 * How one token is drawn from a row of logits. Processors run in Hugging Face's order:
 * repetition penalty → temperature → top-k → top-p → min-p.
 */
export interface TokenSamplingParams {
  /** 0 means greedy argmax (deterministic, ties go to the lowest token id). */
  temperature: number;
  /** Nucleus sampling: keep the smallest set of most likely tokens whose mass reaches topP. 1 = off. */
  topP?: number;
  /** Keep only the k most likely tokens. 0 (or ≥ vocab) = off. */
  topK?: number;
  /** Drop tokens whose probability is below minP × the top token's probability. 0 = off. */
  minP?: number;
  /**
   * HF semantics: for every token already seen (prompt and completion), a positive logit is divided by
   * the penalty and a negative one multiplied by it. 1 = off; the Klear authors' eval uses 1.05.
   */
  repetitionPenalty?: number;
}

/** One drawn token and its two log-probabilities. */
export interface SampledToken {
  token: number;
  /**
   * Log-probability of `token` under the distribution it was actually drawn from (after penalty,
   * temperature and truncation, renormalised). 0 for greedy decoding, whose distribution is a point mass.
   */
  samplerLogprob: number;
  /**
   * Log-probability of `token` under the raw model at temperature 1 (plain log-softmax of the logits,
   * no penalty, no truncation): what a trainer's `logprobs()` recomputes, so RL's importance ratio
   * compares like with like.
   */
  modelLogprob: number;
}

export function validateTokenSamplingParams(p: TokenSamplingParams, where = "sampling params"): void {
  const bad = (field: string, why: string, fix: string) => {
    throw new ConfigError(`${where}: ${field} ${why}`, fix);
  };
  if (!Number.isFinite(p.temperature) || p.temperature < 0) {
    bad("temperature", `must be ≥ 0, got ${p.temperature}`, "use 0 for greedy or a positive temperature");
  }
  const topP = p.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) bad("topP", `must be in (0, 1], got ${topP}`, "use 1 to turn top-p off");
  const topK = p.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0)
    bad("topK", `must be an integer ≥ 0, got ${topK}`, "use 0 to turn it off");
  const minP = p.minP ?? 0;
  if (!(minP >= 0 && minP < 1)) bad("minP", `must be in [0, 1), got ${minP}`, "use 0 to turn min-p off");
  const rep = p.repetitionPenalty ?? 1;
  if (!(rep > 0) || !Number.isFinite(rep)) {
    bad("repetitionPenalty", `must be > 0, got ${rep}`, "use 1 to turn it off (1.05 is typical)");
  }
}

/** log Σ exp(x[off .. off+n)), computed stably in float64. */
function logSumExp(x: ArrayLike<number>, off: number, n: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) if (x[off + i] > max) max = x[off + i];
  if (max === Number.NEGATIVE_INFINITY) return max;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[off + i] - max);
  return max + Math.log(s);
}

/**
 * Applies the processors and returns the final distribution as parallel arrays of candidate token ids
 * and probabilities (summing to 1), most likely first when any truncation is on. Exposed so tests can
 * compare sampled frequencies with the exact distribution.
 */
export function samplingDistribution(
  logits: ArrayLike<number>,
  offset: number,
  vocab: number,
  params: TokenSamplingParams,
  seen?: Iterable<number>,
): { ids: Int32Array; probs: Float64Array } {
  const scores = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) scores[i] = logits[offset + i];
  const rep = params.repetitionPenalty ?? 1;
  if (rep !== 1 && seen) {
    for (const t of seen) {
      if (t < 0 || t >= vocab) continue;
      // A set is not required of callers, so guard against penalising one token twice.
      const s = logits[offset + t];
      scores[t] = s > 0 ? s / rep : s * rep;
    }
  }
  if (params.temperature === 0) {
    let best = 0;
    for (let i = 1; i < vocab; i++) if (scores[i] > scores[best]) best = i;
    return { ids: Int32Array.of(best), probs: Float64Array.of(1) };
  }
  const invT = 1 / params.temperature;
  for (let i = 0; i < vocab; i++) scores[i] *= invT;

  const topK = params.topK ?? 0;
  const topP = params.topP ?? 1;
  const minP = params.minP ?? 0;
  const truncating = (topK > 0 && topK < vocab) || topP < 1 || minP > 0;
  let ids: Int32Array;
  if (!truncating) {
    ids = new Int32Array(vocab);
    for (let i = 0; i < vocab; i++) ids[i] = i;
  } else if (topK > 0 && topK < vocab) {
    ids = sortedCandidates(scores, vocab, topK);
  } else {
    ids = nucleusCandidates(scores, vocab, topP, minP);
  }
  const n = ids.length;
  // Top-k renormalises over its k tokens (HF masks the rest to -inf); otherwise the mass is the full vocabulary's.
  const lse = topK > 0 && topK < vocab ? logSumExpOver(scores, ids) : logSumExp(scores, 0, vocab);
  let probs = new Float64Array(n);
  for (let i = 0; i < n; i++) probs[i] = Math.exp(scores[ids[i]] - lse);
  let keep = n;
  if (topP < 1) {
    // HF: drop a token when the mass of the tokens strictly more likely than it already reaches topP.
    let cum = 0;
    for (let i = 0; i < n; i++) {
      if (cum >= topP) {
        keep = i;
        break;
      }
      cum += probs[i];
    }
    keep = Math.max(1, keep);
  }
  if (minP > 0) {
    const threshold = minP * probs[0];
    let k = 1;
    while (k < keep && probs[k] >= threshold) k++;
    keep = k;
  }
  if (keep < n) {
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    let z = 0;
    for (let i = 0; i < keep; i++) z += probs[i];
    for (let i = 0; i < keep; i++) probs[i] /= z;
  }
  return { ids, probs };
}

function logSumExpOver(scores: Float64Array, ids: Int32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < ids.length; i++) if (scores[ids[i]] > max) max = scores[ids[i]];
  let s = 0;
  for (let i = 0; i < ids.length; i++) s += Math.exp(scores[ids[i]] - max);
  return max + Math.log(s);
}

/**
 * Candidates for top-p / min-p without top-k, sorted by descending score. Sorting a 151k vocabulary every
 * step would dominate sampling, so tokens that provably fall outside are dropped first: a token with
 * probability below (1 − topP) / vocab has, with every less likely token, less than 1 − topP of the mass,
 * so the tokens ahead of it already reach topP and the nucleus excludes it; min-p excludes every token
 * below minP × the top probability.
 */
function nucleusCandidates(scores: Float64Array, vocab: number, topP: number, minP: number): Int32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < vocab; i++) if (scores[i] > max) max = scores[i];
  const lse = logSumExp(scores, 0, vocab);
  const pMax = Math.exp(max - lse);
  const floor = Math.max(topP < 1 ? (1 - topP) / vocab : 0, minP * pMax);
  // Compare in log space, with slack so rounding never drops a token the exact rule keeps.
  const logFloor = floor > 0 ? Math.log(floor) + lse - 1e-9 : Number.NEGATIVE_INFINITY;
  const kept: number[] = [];
  for (let i = 0; i < vocab; i++) if (scores[i] >= logFloor) kept.push(i);
  kept.sort((a, b) => scores[b] - scores[a] || a - b);
  return Int32Array.from(kept);
}

/**
 * Token ids ordered by descending score (ties: lower id first), limited to the best `k`. With k much
 * smaller than the vocabulary (top-k 20 over 151k tokens) a bounded insertion keeps this O(vocab · k)
 * worst case but O(vocab) typical, instead of sorting the whole vocabulary every step.
 */
function sortedCandidates(scores: Float64Array, vocab: number, k: number): Int32Array {
  if (k >= vocab || k > 256) {
    const all = Array.from({ length: vocab }, (_, i) => i);
    all.sort((a, b) => scores[b] - scores[a] || a - b);
    return Int32Array.from(all.slice(0, k));
  }
  const best = new Int32Array(k);
  let filled = 0;
  for (let i = 0; i < vocab; i++) {
    const s = scores[i];
    if (filled === k && s <= scores[best[k - 1]]) continue;
    let j = filled < k ? filled++ : k - 1;
    while (j > 0 && scores[best[j - 1]] < s) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = i;
  }
  return best.slice(0, filled);
}

/**
 * Draws one token from `logits[offset .. offset+vocab)`. `seen` lists tokens already in the sequence
 * (for the repetition penalty). Consumes exactly one uniform from `rng` unless greedy (none).
 */
export function sampleToken(
  logits: ArrayLike<number>,
  offset: number,
  vocab: number,
  params: TokenSamplingParams,
  rng: Rng | null,
  seen?: Iterable<number>,
): SampledToken {
  validateTokenSamplingParams(params, "sampleToken");
  const { ids, probs } = samplingDistribution(logits, offset, vocab, params, seen);
  let pick = 0;
  if (params.temperature !== 0) {
    if (!rng) throw new ConfigError("sampleToken: temperature > 0 needs an Rng", "pass a seeded Rng");
    const u = rng.uniform();
    let cum = 0;
    pick = ids.length - 1;
    for (let i = 0; i < ids.length; i++) {
      cum += probs[i];
      if (u < cum) {
        pick = i;
        break;
      }
    }
  }
  const token = ids[pick];
  const modelLogprob = logits[offset + token] - logSumExp(logits, offset, vocab);
  return { token, samplerLogprob: Math.log(probs[pick]), modelLogprob };
}
