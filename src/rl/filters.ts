/**
 * What reaches the loss: group filtering (DAPO's dynamic sampling, Klear's filter on "fully correct"),
 * the refill rule that assembles a training batch from over-sampled prompts, and overlong handling
 * (masking truncated responses, DAPO's soft overlong punishment). Pure bookkeeping over indices.
 */
import { ConfigError, checkChoice, KlearError } from "../util/errors.js";
import { groupIndices } from "./advantages.js";
import { flattenMask, type TokenMask, tokenLayout } from "./objectives/layout.js";

export const GROUP_FILTER_METRICS = ["acc", "reward"] as const;
export type GroupFilterMetric = (typeof GROUP_FILTER_METRICS)[number];

export interface GroupFilterConfig {
  /**
   * What must vary inside a group for it to be kept. "acc" (Klear, default): whether each response is
   * fully correct (reward === correctScore), so a group of only wrong answers is dropped even if the
   * wrong rewards differ. "reward": the raw reward (DAPO with reward variance).
   */
  metric?: GroupFilterMetric;
  /** The reward that counts as fully correct. Default 1.0. */
  correctScore?: number;
  /** Keep groups with one remaining response (they have no variance to measure). Default true, as verl. */
  keepSingletons?: boolean;
  /** Also drop groups whose mean metric is above this (verl's filter_groups.avg). Default null: off. */
  maxMeanMetric?: number | null;
}

export interface GroupFilterInput {
  /** The prompt each response answers (verl's uid). */
  groupIds: ArrayLike<string | number>;
  /** One reward per response. */
  rewards: ArrayLike<number>;
}

export interface GroupFilterResult {
  /** Indices of the kept responses, in their original order. */
  keptIndices: number[];
  keptGroups: number;
  droppedGroups: number;
  /** Dropped because every response was fully correct (with "acc") or all rewards equal the top score. */
  droppedAllCorrect: number;
  /** Dropped because no response was fully correct (with "acc"). */
  droppedAllWrong: number;
  /** Dropped for zero variance otherwise (e.g. equal partial rewards with "reward"). */
  droppedZeroVariance: number;
  /** Dropped by maxMeanMetric. */
  droppedByMean: number;
}

function checkGroupFilterConfig(cfg: GroupFilterConfig): Required<GroupFilterConfig> {
  for (const key of Object.keys(cfg)) {
    if (!["metric", "correctScore", "keepSingletons", "maxMeanMetric"].includes(key)) {
      throw new ConfigError(
        `group filter: unknown option "${key}"`,
        "the options are: metric, correctScore, keepSingletons, maxMeanMetric",
      );
    }
  }
  const correctScore = cfg.correctScore ?? 1;
  if (!Number.isFinite(correctScore)) {
    throw new ConfigError(`group filter: correctScore = ${correctScore} is not finite`, "use 1.0");
  }
  return {
    metric: checkChoice("group filter metric", cfg.metric ?? "acc", GROUP_FILTER_METRICS),
    correctScore,
    keepSingletons: cfg.keepSingletons ?? true,
    maxMeanMetric: cfg.maxMeanMetric ?? null,
  };
}

/** Keeps the groups whose metric varies (std > 0), as DAPO's dynamic sampling and Klear's recipe do. */
export function filterGroups(input: GroupFilterInput, cfg: GroupFilterConfig = {}): GroupFilterResult {
  const c = checkGroupFilterConfig(cfg);
  const n = input.rewards.length;
  const metric = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = input.rewards[i];
    metric[i] = c.metric === "acc" ? (r === c.correctScore ? 1 : 0) : r;
  }
  const keep = new Uint8Array(n);
  const result: GroupFilterResult = {
    keptIndices: [],
    keptGroups: 0,
    droppedGroups: 0,
    droppedAllCorrect: 0,
    droppedAllWrong: 0,
    droppedZeroVariance: 0,
    droppedByMean: 0,
  };
  for (const idx of groupIndices(n, input.groupIds)) {
    const first = metric[idx[0]];
    const varies = idx.some((i) => metric[i] !== first);
    let meanMetric = 0;
    for (const i of idx) meanMetric += metric[i] / idx.length;
    let kept = varies || (c.keepSingletons && idx.length === 1);
    if (kept && c.maxMeanMetric !== null && meanMetric > c.maxMeanMetric) {
      kept = false;
      result.droppedByMean++;
    } else if (!kept) {
      if (c.metric === "acc") {
        if (first === 1) result.droppedAllCorrect++;
        else result.droppedAllWrong++;
      } else if (first === c.correctScore) result.droppedAllCorrect++;
      else result.droppedZeroVariance++;
    }
    if (kept) {
      result.keptGroups++;
      for (const i of idx) keep[i] = 1;
    } else result.droppedGroups++;
  }
  for (let i = 0; i < n; i++) if (keep[i]) result.keptIndices.push(i);
  return result;
}

export interface DynamicSamplingConfig {
  /** Prompts per training batch (128 in the recipe). */
  trainBatchPrompts: number;
  /** Responses per prompt (8). */
  responsesPerPrompt: number;
  /** Prompts generated per generation batch: the over-sampling (256 for 128). */
  genBatchPrompts: number;
  /**
   * Generation batches allowed per training step. Klear: 1 (no second pass). 0 or less: keep generating
   * until the batch is full (DAPO's original rule).
   */
  maxGenBatches: number;
  /**
   * When the allowed generation batches are used up short of the target: "truncate" (Klear: train on what
   * there is, cut to a multiple of truncateMultiple) or "error".
   */
  onShortfall: "truncate" | "error";
  /** Klear truncates to a multiple of the data-parallel world size. Default 1. */
  truncateMultiple?: number;
}

export type DynamicSamplingDecision<T> =
  | { action: "generate"; genBatches: number; have: number; target: number }
  | { action: "train"; batch: T[]; genBatches: number; overflow: number; shortfall: number }
  | { action: "skip"; genBatches: number; reason: string };

export function checkDynamicSamplingConfig(cfg: DynamicSamplingConfig): void {
  const positive = (name: keyof DynamicSamplingConfig) => {
    const v = cfg[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw new ConfigError(
        `dynamic sampling: ${name} = ${String(v)} must be a positive integer`,
        `set ${name}`,
      );
    }
  };
  positive("trainBatchPrompts");
  positive("responsesPerPrompt");
  positive("genBatchPrompts");
  if (cfg.truncateMultiple !== undefined) positive("truncateMultiple");
  if (!Number.isInteger(cfg.maxGenBatches)) {
    throw new ConfigError(
      `dynamic sampling: maxGenBatches = ${cfg.maxGenBatches} is not an integer`,
      "use 1 (Klear) or 0",
    );
  }
  checkChoice("dynamic sampling onShortfall", cfg.onShortfall, ["truncate", "error"] as const);
}

/**
 * The refill rule. After each generation batch, `add` the trajectories that survived filtering (kept
 * groups, in order); `next` says whether to train on the first trainBatchPrompts·responsesPerPrompt of
 * them (a prefix slice, like verl), generate another batch, or skip the step.
 */
export class DynamicSampler<T> {
  private readonly cfg: Required<DynamicSamplingConfig>;
  private pending: T[] = [];
  private genBatches = 0;

  constructor(cfg: DynamicSamplingConfig) {
    checkDynamicSamplingConfig(cfg);
    this.cfg = { truncateMultiple: 1, ...cfg };
  }

  /** Trajectories a full training batch holds. */
  get targetTrajectories(): number {
    return this.cfg.trainBatchPrompts * this.cfg.responsesPerPrompt;
  }

  /** Prompts to sample for the next generation batch (over-sampled: e.g. 256 to fill 128). */
  get promptsPerGeneration(): number {
    return this.cfg.genBatchPrompts;
  }

  /** Records one generation batch's surviving trajectories. */
  add(kept: readonly T[]): void {
    this.genBatches++;
    for (const t of kept) this.pending.push(t);
  }

  next(): DynamicSamplingDecision<T> {
    const target = this.targetTrajectories;
    const genBatches = this.genBatches;
    if (this.pending.length >= target) {
      const batch = this.pending.slice(0, target);
      const overflow = this.pending.length - target;
      this.reset();
      return { action: "train", batch, genBatches, overflow, shortfall: 0 };
    }
    const { maxGenBatches } = this.cfg;
    if (maxGenBatches <= 0 || genBatches < maxGenBatches) {
      return { action: "generate", genBatches, have: this.pending.length, target };
    }
    if (this.cfg.onShortfall === "error") {
      throw new KlearError(
        "DYNAMIC_SAMPLING_SHORT",
        `only ${this.pending.length} of ${target} trajectories survived group filtering after ${genBatches} generation batches`,
        "raise maxGenBatches (0 = unlimited), over-sample more prompts (genBatchPrompts), or use onShortfall: truncate",
      );
    }
    const keep = Math.floor(this.pending.length / this.cfg.truncateMultiple) * this.cfg.truncateMultiple;
    const batch = this.pending.slice(0, keep);
    this.reset();
    if (batch.length === 0) return { action: "skip", genBatches, reason: "no group survived filtering" };
    return { action: "train", batch, genBatches, overflow: 0, shortfall: target - batch.length };
  }

  private reset(): void {
    this.pending = [];
    this.genBatches = 0;
  }
}

/** True for responses cut at the length limit (OpenAI-style finish_reason "length"). */
export function truncatedFromFinishReasons(reasons: ArrayLike<string | null | undefined>): boolean[] {
  return Array.from(reasons, (r) => r === "length");
}

/**
 * Overlong filtering: masks every token of truncated responses so they get no loss and no gradient
 * (Klear's actor.overlong_filter; TRL's mask_truncated_completions). Returns the new flat mask.
 */
export function overlongFilterMask(
  mask: TokenMask,
  truncated: ArrayLike<boolean>,
  lengths?: ArrayLike<number>,
): Uint8Array {
  const layout = tokenLayout(mask as Parameters<typeof tokenLayout>[0], lengths, "mask");
  if (truncated.length !== layout.rows) {
    throw new ConfigError(
      `truncated has ${truncated.length} entries for ${layout.rows} responses`,
      "give one flag per response",
    );
  }
  const flat = flattenMask(mask, layout);
  for (let i = 0; i < layout.rows; i++)
    if (truncated[i]) flat.fill(0, layout.offsets[i], layout.offsets[i + 1]);
  return flat;
}

export interface SoftOverlongConfig {
  /** The response length limit L_max (32768 in the recipe). */
  maxResponseTokens: number;
  /** The buffer before the limit where the penalty ramps in (4096). */
  bufferTokens: number;
  /** Penalty at the limit (1.0). */
  penaltyFactor: number;
}

/**
 * DAPO's soft overlong punishment, added to the reward: 0 up to L_max − buffer, then falling linearly to
 * −penaltyFactor at L_max: min(−(L − (L_max − buffer))/buffer · factor, 0). Off in the Klear recipe.
 */
export function softOverlongPenalty(responseTokens: number, cfg: SoftOverlongConfig): number {
  const { maxResponseTokens, bufferTokens, penaltyFactor } = cfg;
  if (!(bufferTokens > 0) || !(bufferTokens <= maxResponseTokens) || !Number.isFinite(maxResponseTokens)) {
    throw new ConfigError(
      `soft overlong: bufferTokens = ${bufferTokens} must be in (0, maxResponseTokens = ${maxResponseTokens}]`,
      "use e.g. bufferTokens 4096 with maxResponseTokens 32768",
    );
  }
  if (!(penaltyFactor >= 0) || !Number.isFinite(penaltyFactor)) {
    throw new ConfigError(`soft overlong: penaltyFactor = ${penaltyFactor} must be ≥ 0`, "use 1.0");
  }
  const expected = maxResponseTokens - bufferTokens;
  const penalty = (-(responseTokens - expected) / bufferTokens) * penaltyFactor;
  return penalty < 0 ? penalty : 0;
}
