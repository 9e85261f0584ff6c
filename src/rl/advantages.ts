/**
 * Outcome-reward advantage estimators: one scalar reward per response in, one advantage per response
 * out (policyLoss broadcasts it to the response's tokens). Groups are the responses to one prompt,
 * identified by a group id (verl's uid; members need not be adjacent) or by a fixed group size.
 */
import { ConfigError, checkChoice } from "../util/errors.js";

export const ADVANTAGE_ESTIMATORS = [
  "grpo",
  "dr-grpo",
  "rloo",
  "reinforce++",
  "reinforce++-baseline",
] as const;
export type AdvantageEstimatorName = (typeof ADVANTAGE_ESTIMATORS)[number];

export interface AdvantageConfig {
  /**
   * grpo / reinforce++: which standard deviation normalises. "unbiased" (N−1) is what the authors' code
   * (torch.std) does and the default; "population" (N) is what the paper's Eq. 4 writes.
   */
  std?: "unbiased" | "population";
  /** Added to the std before dividing (grpo: 1e-6 as the code; reinforce++: inside the sqrt, 1e-8). */
  eps?: number;
  /**
   * A group with one member has no baseline. "reward" gives Â = R (verl's quirk: mean 0, std 1, spec §6);
   * "zero" gives Â = 0 (the response teaches nothing).
   */
  singleton?: "reward" | "zero";
}

export interface AdvantageInput {
  /** One scalar reward per response. */
  rewards: ArrayLike<number>;
  /** The prompt each response answers (verl's uid). Either this or groupSize. */
  groupIds?: ArrayLike<string | number>;
  /** Responses per prompt when they are stored group by group, e.g. 8. */
  groupSize?: number;
  /**
   * reinforce++ only: response token counts, so the batch whitening weighs each response by its tokens as
   * verl's masked_whiten over the token matrix does. Default: every response weighs the same.
   */
  tokenCounts?: ArrayLike<number>;
}

export type AdvantageFn = (input: AdvantageInput) => Float64Array;

/** Group member indices in order of first appearance. */
export function groupIndices(
  count: number,
  groupIds?: ArrayLike<string | number>,
  groupSize?: number,
): number[][] {
  if (groupIds !== undefined) {
    if (groupIds.length !== count) {
      throw new ConfigError(
        `groupIds has ${groupIds.length} entries for ${count} rewards`,
        "give one group id per response",
      );
    }
    const byId = new Map<string | number, number[]>();
    for (let i = 0; i < count; i++) {
      const members = byId.get(groupIds[i]);
      if (members) members.push(i);
      else byId.set(groupIds[i], [i]);
    }
    return [...byId.values()];
  }
  if (groupSize === undefined) {
    throw new ConfigError("advantages need groups", "pass groupIds (one per response) or groupSize");
  }
  if (!Number.isInteger(groupSize) || groupSize < 1 || count % groupSize !== 0) {
    throw new ConfigError(
      `groupSize = ${groupSize} does not divide the ${count} rewards`,
      "pass groupIds when groups have unequal sizes (e.g. after filtering)",
    );
  }
  const groups: number[][] = [];
  for (let start = 0; start < count; start += groupSize) {
    groups.push(Array.from({ length: groupSize }, (_, j) => start + j));
  }
  return groups;
}

function mean(values: ArrayLike<number>, idx: readonly number[]): number {
  let s = 0;
  for (const i of idx) s += values[i];
  return s / idx.length;
}

function std(values: ArrayLike<number>, idx: readonly number[], m: number, unbiased: boolean): number {
  let s = 0;
  for (const i of idx) s += (values[i] - m) ** 2;
  const dof = unbiased ? idx.length - 1 : idx.length;
  return dof > 0 ? Math.sqrt(s / dof) : 0;
}

/**
 * Builds an advantage estimator by name:
 * grpo: (R − mean_g)/(std_g + eps); dr-grpo: R − mean_g (no std); rloo: R − mean of the others;
 * reinforce++: batch-whitened R; reinforce++-baseline: R − mean_g, then batch-whitened.
 */
export function advantages(name: string, cfg: AdvantageConfig = {}): AdvantageFn {
  const estimator = checkChoice("advantage estimator", name, ADVANTAGE_ESTIMATORS);
  for (const key of Object.keys(cfg)) {
    if (!["std", "eps", "singleton"].includes(key)) {
      throw new ConfigError(`advantages: unknown option "${key}"`, "the options are: std, eps, singleton");
    }
  }
  const unbiased =
    checkChoice("advantage std", cfg.std ?? "unbiased", ["unbiased", "population"] as const) === "unbiased";
  const singleton = checkChoice("advantage singleton rule", cfg.singleton ?? "reward", [
    "reward",
    "zero",
  ] as const);
  const whitening = estimator === "reinforce++" || estimator === "reinforce++-baseline";
  const eps = cfg.eps ?? (whitening ? 1e-8 : 1e-6);
  if (!Number.isFinite(eps) || eps < 0) {
    throw new ConfigError(`advantages: eps = ${eps} must be a finite number ≥ 0`, "use the default");
  }

  return (input: AdvantageInput): Float64Array => {
    const { rewards } = input;
    const n = rewards.length;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(rewards[i])) {
        throw new ConfigError(
          `rewards[${i}] = ${rewards[i]} is not finite`,
          "score every response with a finite reward",
        );
      }
    }
    const out = new Float64Array(n);
    if (estimator === "reinforce++") {
      for (let i = 0; i < n; i++) out[i] = rewards[i];
      return whiten(out, input.tokenCounts, unbiased, eps);
    }
    for (const idx of groupIndices(n, input.groupIds, input.groupSize)) {
      if (idx.length === 1) {
        out[idx[0]] = singleton === "reward" ? rewards[idx[0]] : 0;
        continue;
      }
      const m = mean(rewards, idx);
      // A zero-variance group with eps = 0 would give 0/0; its members carry no signal, so 0.
      const denominator = estimator === "grpo" ? std(rewards, idx, m, unbiased) + eps || 1 : 1;
      for (const i of idx) {
        if (estimator === "grpo") out[i] = (rewards[i] - m) / denominator;
        // Leave-one-out mean: (sum − R_i)/(k−1), so R_i − that = k/(k−1)·(R_i − mean).
        else if (estimator === "rloo") out[i] = ((rewards[i] - m) * idx.length) / (idx.length - 1);
        else out[i] = rewards[i] - m;
      }
    }
    return estimator === "reinforce++-baseline" ? whiten(out, input.tokenCounts, unbiased, eps) : out;
  };
}

/** (x − μ)/sqrt(σ² + eps) over the batch, each entry weighted by its token count when given. */
function whiten(
  values: Float64Array,
  tokenCounts: ArrayLike<number> | undefined,
  unbiased: boolean,
  eps: number,
): Float64Array {
  const n = values.length;
  if (tokenCounts !== undefined && tokenCounts.length !== n) {
    throw new ConfigError(
      `tokenCounts has ${tokenCounts.length} entries for ${n} rewards`,
      "give one count per response",
    );
  }
  const weight = (i: number) => (tokenCounts === undefined ? 1 : tokenCounts[i]);
  let total = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    total += weight(i);
    sum += weight(i) * values[i];
  }
  if (total === 0) return values.fill(0);
  const mu = sum / total;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += weight(i) * (values[i] - mu) ** 2;
  const dof = unbiased ? total - 1 : total;
  const variance = dof > 0 ? sq / dof : 0;
  const inv = 1 / Math.sqrt(variance + eps);
  for (let i = 0; i < n; i++) values[i] = (values[i] - mu) * inv;
  return values;
}
