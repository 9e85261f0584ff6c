/**
 * Outcome-reward advantage estimators: one scalar reward per response in, one advantage per response
 * out (policyLoss broadcasts it to the response's tokens). Groups are the responses to one prompt,
 * identified by a group id (verl's uid; members need not be adjacent) or by a fixed group size.
 * Each estimator is one registry entry saying which options it reads and which inputs it needs, so a
 * trainer asks the entry instead of testing names.
 */
import { ConfigError, checkChoice } from "../util/errors.js";

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

/** The config with its defaults filled in, as an estimator's `estimate` receives it. */
export interface ResolvedAdvantageConfig {
  unbiased: boolean;
  eps: number;
  singleton: "reward" | "zero";
}

const ADVANTAGE_OPTION_KEYS = [
  "std",
  "eps",
  "singleton",
] as const satisfies readonly (keyof AdvantageConfig)[];
export type AdvantageOptionKey = (typeof ADVANTAGE_OPTION_KEYS)[number];

/** What `registerAdvantageEstimator` takes. */
export interface AdvantageEstimatorDefinition {
  name: string;
  /** One line for `--help` and errors. */
  summary: string;
  /** The options it reads; others are rejected. */
  options: readonly AdvantageOptionKey[];
  /** Inputs beyond the rewards: groups (groupIds or groupSize), tokenCounts (each response's loss tokens). */
  needs: { readonly groups: boolean; readonly tokenCounts: boolean };
  /** Default eps (added to the std, or under the whitening square root). Default 1e-6. */
  defaultEps?: number;
  /** Advantages for a batch whose rewards are already checked finite; return one value per response. */
  estimate: (input: AdvantageInput, cfg: ResolvedAdvantageConfig) => Float64Array;
}

/** A registered estimator, with every default filled in. */
export interface AdvantageEstimatorSpec extends Required<AdvantageEstimatorDefinition> {}

/**
 * The shared loop of the group-baseline estimators: `rule(idx, groupMean)` gives the map R_i → Â_i of
 * one group (groups of one follow the singleton rule).
 */
function perGroup(
  input: AdvantageInput,
  cfg: ResolvedAdvantageConfig,
  rule: (idx: readonly number[], groupMean: number) => (reward: number) => number,
): Float64Array {
  const { rewards } = input;
  const out = new Float64Array(rewards.length);
  for (const idx of groupIndices(rewards.length, input.groupIds, input.groupSize)) {
    if (idx.length === 1) {
      out[idx[0]] = cfg.singleton === "reward" ? rewards[idx[0]] : 0;
      continue;
    }
    const advantage = rule(idx, mean(rewards, idx));
    for (const i of idx) out[i] = advantage(rewards[i]);
  }
  return out;
}

const minusMean = (_idx: readonly number[], m: number) => (reward: number) => reward - m;

const BUILTIN_ADVANTAGE_ESTIMATORS = {
  grpo: {
    summary: "group-normalised: (R − mean_g)/(std_g + eps)",
    options: ["std", "eps", "singleton"],
    needs: { groups: true, tokenCounts: false },
    estimate: (input, cfg) =>
      perGroup(input, cfg, (idx, m) => {
        // A zero-variance group with eps = 0 would give 0/0; its members carry no signal, so 0.
        const denominator = std(input.rewards, idx, m, cfg.unbiased) + cfg.eps || 1;
        return (reward) => (reward - m) / denominator;
      }),
  },
  "dr-grpo": {
    summary: "Dr.GRPO: R − mean_g, no std division",
    options: ["singleton"],
    needs: { groups: true, tokenCounts: false },
    estimate: (input, cfg) => perGroup(input, cfg, minusMean),
  },
  rloo: {
    summary: "leave-one-out baseline: R_i − mean of the others",
    options: ["singleton"],
    needs: { groups: true, tokenCounts: false },
    // Leave-one-out mean: (sum − R_i)/(k−1), so R_i − that = k/(k−1)·(R_i − mean).
    estimate: (input, cfg) =>
      perGroup(input, cfg, (idx, m) => (reward) => ((reward - m) * idx.length) / (idx.length - 1)),
  },
  "reinforce++": {
    summary: "no group baseline: rewards whitened over the batch, token-weighted",
    options: ["std", "eps"],
    needs: { groups: false, tokenCounts: true },
    defaultEps: 1e-8,
    estimate: (input, cfg) =>
      whiten(Float64Array.from(input.rewards), input.tokenCounts, cfg.unbiased, cfg.eps),
  },
  "reinforce++-baseline": {
    summary: "R − mean_g, then whitened over the batch, token-weighted",
    options: ["std", "eps", "singleton"],
    needs: { groups: true, tokenCounts: true },
    defaultEps: 1e-8,
    estimate: (input, cfg) =>
      whiten(perGroup(input, cfg, minusMean), input.tokenCounts, cfg.unbiased, cfg.eps),
  },
} as const satisfies Record<string, Omit<AdvantageEstimatorDefinition, "name">>;

export type AdvantageEstimatorName = keyof typeof BUILTIN_ADVANTAGE_ESTIMATORS;
/** The built-in estimators (registered ones come after them in `advantageEstimatorNames()`). */
export const ADVANTAGE_ESTIMATORS = Object.keys(BUILTIN_ADVANTAGE_ESTIMATORS) as [
  AdvantageEstimatorName,
  ...AdvantageEstimatorName[],
];

const estimators = new Map<string, AdvantageEstimatorSpec>();

/** Adds an advantage estimator, usable by name everywhere a built-in one is. */
export function registerAdvantageEstimator(def: AdvantageEstimatorDefinition): AdvantageEstimatorSpec {
  if (typeof def.name !== "string" || !/^[a-z0-9][a-z0-9+._-]*$/.test(def.name)) {
    throw new ConfigError(
      `advantage estimator name ${JSON.stringify(def.name)} is not a lower-case identifier`,
      'use letters, digits and "-", e.g. "my-estimator"',
    );
  }
  if (estimators.has(def.name)) {
    throw new ConfigError(`advantage estimator "${def.name}" is already registered`, "choose another name");
  }
  for (const key of def.options) checkChoice(`${def.name} option`, key, ADVANTAGE_OPTION_KEYS);
  if (typeof def.estimate !== "function") {
    throw new ConfigError(
      `advantage estimator "${def.name}": estimate is not a function`,
      "give estimate(input, cfg)",
    );
  }
  const spec: AdvantageEstimatorSpec = {
    name: def.name,
    summary: def.summary,
    options: [...def.options],
    needs: { groups: def.needs.groups, tokenCounts: def.needs.tokenCounts },
    defaultEps: def.defaultEps ?? 1e-6,
    estimate: def.estimate,
  };
  estimators.set(def.name, spec);
  return spec;
}

for (const [name, def] of Object.entries(BUILTIN_ADVANTAGE_ESTIMATORS)) {
  registerAdvantageEstimator({ name, ...(def as Omit<AdvantageEstimatorDefinition, "name">) });
}

/** Every registered estimator name: the built-ins, then the user's in registration order. */
export function advantageEstimatorNames(): string[] {
  return [...estimators.keys()];
}

/** The registry entry of an estimator; throws ConfigError listing every registered name when unknown. */
export function advantageEstimatorSpec(name: string): AdvantageEstimatorSpec {
  const spec = estimators.get(name);
  if (spec === undefined) {
    throw new ConfigError(
      `unknown advantage estimator "${name}"`,
      `use one of: ${advantageEstimatorNames().join(", ")} (or add one with registerAdvantageEstimator)`,
    );
  }
  return spec;
}

/**
 * The options `name` reads, picked out of a record of candidate values (e.g. a trainer's config); null
 * or undefined means "the estimator's default".
 */
export function advantageConfigFrom(
  name: string,
  values: { readonly [K in keyof AdvantageConfig]?: AdvantageConfig[K] | null },
): AdvantageConfig {
  const out: Record<string, unknown> = {};
  for (const key of advantageEstimatorSpec(name).options) {
    const value = values[key];
    if (value !== null && value !== undefined) out[key] = value;
  }
  return out as AdvantageConfig;
}

/**
 * Builds a registered advantage estimator by name:
 * grpo: (R − mean_g)/(std_g + eps); dr-grpo: R − mean_g (no std); rloo: R − mean of the others;
 * reinforce++: batch-whitened R; reinforce++-baseline: R − mean_g, then batch-whitened.
 * Options an estimator does not read are rejected (see its `options`).
 */
export function advantages(name: string, cfg: AdvantageConfig = {}): AdvantageFn {
  const spec = advantageEstimatorSpec(name);
  for (const key of Object.keys(cfg)) {
    if ((cfg as Record<string, unknown>)[key] === undefined) continue;
    if (!(spec.options as readonly string[]).includes(key)) {
      throw new ConfigError(
        `${name}: unknown option "${key}"`,
        `the options of ${name} are: ${spec.options.join(", ") || "none"}`,
      );
    }
  }
  const unbiased =
    checkChoice("advantage std", cfg.std ?? "unbiased", ["unbiased", "population"] as const) === "unbiased";
  const singleton = checkChoice("advantage singleton rule", cfg.singleton ?? "reward", [
    "reward",
    "zero",
  ] as const);
  const eps = cfg.eps ?? spec.defaultEps;
  if (!Number.isFinite(eps) || eps < 0) {
    throw new ConfigError(`advantages: eps = ${eps} must be a finite number ≥ 0`, "use the default");
  }
  const resolved: ResolvedAdvantageConfig = { unbiased, eps, singleton };

  return (input: AdvantageInput): Float64Array => {
    const { rewards } = input;
    for (let i = 0; i < rewards.length; i++) {
      if (!Number.isFinite(rewards[i])) {
        throw new ConfigError(
          `rewards[${i}] = ${rewards[i]} is not finite`,
          "score every response with a finite reward",
        );
      }
    }
    return spec.estimate(input, resolved);
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
