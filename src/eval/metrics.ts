import { ConfigError } from "../util/errors.js";
import { Rng } from "../util/rng.js";

/**
 * Evaluation metrics over n samples per problem. The paper's headline figure, avg@n, is the mean over
 * problems of (correct samples / n): the expected pass@1, not the fraction of problems solved by any
 * sample. pass@k uses the unbiased estimator of Chen et al. (2021), never "best of the first k", which is
 * biased low (verl PR #7240).
 */

/**
 * Unbiased pass@k for one problem with `n` samples of which `c` are correct:
 * 1 - C(n-c, k) / C(n, k), computed as a running product so it never overflows.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 0 || c < 0 || c > n) {
    throw new ConfigError(
      `passAtK(n=${n}, c=${c}, k=${k}) needs integers with 0 <= c <= n`,
      "check the counts",
    );
  }
  if (k < 1 || k > n)
    throw new ConfigError(`pass@${k} needs 1 <= k <= n (n=${n})`, `use k between 1 and ${n}`);
  if (n - c < k) return 1;
  let fail = 1;
  for (let i = n - c + 1; i <= n; i++) fail *= 1 - k / i;
  return 1 - fail;
}

/**
 * Majority vote: the most frequent answer among `answers` (null = nothing extracted, never a vote) and
 * whether it is correct. Ties go to the answer seen first, so the vote is deterministic.
 */
export function majorityVote(answers: readonly (string | null)[], correct: readonly boolean[]): boolean {
  const counts = new Map<string, { count: number; first: number; correct: boolean }>();
  answers.forEach((a, i) => {
    if (a === null) return;
    const e = counts.get(a);
    if (e) {
      e.count++;
      // An answer is right if any sample with that text was judged right (same text, same verdict normally).
      e.correct ||= correct[i];
    } else counts.set(a, { count: 1, first: i, correct: correct[i] });
  });
  let best: { count: number; first: number; correct: boolean } | null = null;
  for (const e of counts.values()) {
    if (best === null || e.count > best.count || (e.count === best.count && e.first < best.first)) best = e;
  }
  return best?.correct ?? false;
}

/**
 * maj@k for one problem: the mean vote accuracy over the floor(n/k) disjoint consecutive groups of k
 * samples. With k = n it is the usual single vote over all samples; smaller k reuse every sample once.
 */
export function majAtK(answers: readonly (string | null)[], correct: readonly boolean[], k: number): number {
  const groups = Math.floor(answers.length / k);
  if (k < 1 || groups < 1)
    throw new ConfigError(`maj@${k} needs at least k samples (have ${answers.length})`, "lower k");
  let sum = 0;
  for (let g = 0; g < groups; g++) {
    sum += majorityVote(answers.slice(g * k, (g + 1) * k), correct.slice(g * k, (g + 1) * k)) ? 1 : 0;
  }
  return sum / groups;
}

export interface MetricEstimate {
  value: number;
  /** 95% percentile bootstrap interval over problems. */
  ci95: [number, number];
  /** Standard error over problems (sample std / sqrt(problems)). */
  stderr: number;
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length ? s / xs.length : Number.NaN;
}

/** The q-quantile of sorted values with linear interpolation (numpy's default). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Mean of per-problem scores with a percentile bootstrap CI (resampling problems with replacement,
 * `resamples` times from a seeded Rng, so the same inputs always give the same interval).
 */
export function estimateMean(perProblem: readonly number[], resamples = 1000, seed = 0): MetricEstimate {
  const n = perProblem.length;
  const value = mean(perProblem);
  if (n === 0) return { value: Number.NaN, ci95: [Number.NaN, Number.NaN], stderr: Number.NaN };
  let ss = 0;
  for (const x of perProblem) ss += (x - value) ** 2;
  const stderr = n > 1 ? Math.sqrt(ss / (n - 1) / n) : 0;
  if (resamples < 1 || n === 1) return { value, ci95: [value, value], stderr };
  const rng = new Rng(seed);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += perProblem[rng.int(n)];
    means[b] = s / n;
  }
  means.sort();
  const sorted = Array.from(means);
  return { value, ci95: [quantileSorted(sorted, 0.025), quantileSorted(sorted, 0.975)], stderr };
}

/** Default k values for pass@k / maj@k: powers of two up to n, plus n itself. */
export function defaultKs(n: number): number[] {
  const ks: number[] = [];
  for (let k = 1; k <= n; k *= 2) ks.push(k);
  if (ks[ks.length - 1] !== n && n >= 1) ks.push(n);
  return ks;
}
