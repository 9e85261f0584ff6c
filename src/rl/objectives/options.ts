/**
 * The options a policy loss can take, with their documented defaults. Which of the loss-specific ones
 * a loss accepts, and their default values, come from its registry entry (registry.ts).
 */
import type { AggregationMode } from "./aggregate.js";
import type { KlEstimator } from "./kl.js";

/** Options of every policy loss; each loss accepts the subset it uses (others are rejected). */
export interface PolicyLossConfig {
  /** ε_low: the lower clip bound is 1−ε_low. Must be in [0, 1). Default 0.2 (GSPO: 3e-4). */
  epsLow?: number;
  /** ε_high: the upper clip bound is 1+ε_high. Default 0.28 for clip-higher losses, ε_low for symmetric PPO (GSPO: 4e-4). */
  epsHigh?: number;
  /** Dual-clip constant c > 1 capping the loss of negative-advantage tokens at −A·c; null = none. Default 10 for GPPO (Klear), 3 for dual-clip (verl), none otherwise. */
  clipRatioC?: number | null;
  /** GPPO general form: scale of the low-clipped negative tokens' gradient and value. Default 1 (the paper). */
  beta1?: number;
  /** GPPO general form: scale of the high-clipped positive tokens' gradient and value. Default 1. */
  beta2?: number;
  /** How per-token losses become one scalar. Default: the loss's own ("token-mean", the recipe's; GSPO "seq-mean-token-mean"). */
  aggregation?: AggregationMode;
  /** seq-mean-token-sum-norm's constant divisor (fixed max response length). */
  lengthDivisor?: number;
  /** seq-group-token-mean's group size: responses per token mean (the authors' responses per data-parallel rank). */
  groupSequences?: number;
  /** KL(π_θ‖π_ref) estimator used when klCoeff > 0. Default "k3". */
  klEstimator?: KlEstimator;
  /** Weight of the KL penalty against refLogp. Default 0 (off, as in the paper). */
  klCoeff?: number;
  /** Weight of the entropy bonus (loss −= coeff·entropy). Default 0: entropy is only logged. */
  entropyCoeff?: number;
  /**
   * Truncated importance sampling against the sampler (vLLM/SGLang) log-probs: every token's loss and
   * gradient are multiplied by the detached min(π_old/π_rollout, tisCap), correcting the mismatch
   * between the training and inference engines. Needs rolloutLogp. Default null: off (as Klear).
   */
  tisCap?: number | null;
  /**
   * ERC (Entropy Ratio Clipping, spec §15.2): tokens whose entropy ratio H_θ/H_old lies outside the open
   * interval (low, high) get no policy-gradient (their loss value is kept). Needs entropy and oldEntropy.
   * The ERC paper uses [0.95, 1.05]. Default null: off.
   */
  entropyRatioClip?: readonly [number, number] | null;
}

/** A config with every default filled in. */
export interface ResolvedPolicyLossConfig {
  epsLow: number;
  epsHigh: number;
  clipRatioC: number | null;
  beta1: number;
  beta2: number;
  aggregation: AggregationMode;
  lengthDivisor: number | undefined;
  groupSequences: number | undefined;
  klEstimator: KlEstimator;
  klCoeff: number;
  entropyCoeff: number;
  tisCap: number | null;
  entropyRatioClip: readonly [number, number] | null;
}

/** Options every loss accepts: aggregation and the additive / reweighting terms around the policy term. */
export const COMMON_LOSS_KEYS = [
  "aggregation",
  "lengthDivisor",
  "groupSequences",
  "klEstimator",
  "klCoeff",
  "entropyCoeff",
  "tisCap",
  "entropyRatioClip",
] as const satisfies readonly (keyof PolicyLossConfig)[];

/** Options a loss opts into in its registry entry (`options`). */
export const LOSS_SPECIFIC_KEYS = [
  "epsLow",
  "epsHigh",
  "clipRatioC",
  "beta1",
  "beta2",
] as const satisfies readonly (keyof PolicyLossConfig)[];
export type LossSpecificKey = (typeof LOSS_SPECIFIC_KEYS)[number];
