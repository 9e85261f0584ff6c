/**
 * Policy-loss names, their typed configs with documented defaults, and validation. Every value is
 * checked when a loss is built, so a bad config fails before any step runs, naming the field and fix.
 */
import { ConfigError, checkChoice } from "../../util/errors.js";
import { type AggregationMode, checkAggregation } from "./aggregate.js";
import { checkKlEstimator, type KlEstimator } from "./kl.js";

export const POLICY_LOSS_NAMES = [
  "gppo",
  "gppo-only-high",
  "ppo-clip",
  "dual-clip",
  "clip-higher",
  "cispo",
  "gspo",
] as const;
export type PolicyLossName = (typeof POLICY_LOSS_NAMES)[number];

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
  /** How per-token losses become one scalar. Default "token-mean" (the recipe's). */
  aggregation?: AggregationMode;
  /** seq-mean-token-sum-norm's constant divisor (fixed max response length). */
  lengthDivisor?: number;
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
  klEstimator: KlEstimator;
  klCoeff: number;
  entropyCoeff: number;
  tisCap: number | null;
  entropyRatioClip: readonly [number, number] | null;
}

const COMMON_KEYS = [
  "aggregation",
  "lengthDivisor",
  "klEstimator",
  "klCoeff",
  "entropyCoeff",
  "tisCap",
  "entropyRatioClip",
] as const;
const CLIP_KEYS = ["epsLow", "epsHigh", "clipRatioC"] as const;

interface LossDefaults {
  keys: readonly (keyof PolicyLossConfig)[];
  epsLow: number;
  /** null = same as epsLow (symmetric clip). */
  epsHigh: number | null;
  clipRatioC: number | null;
}

const LOSS_DEFAULTS: Record<PolicyLossName, LossDefaults> = {
  gppo: { keys: [...CLIP_KEYS, "beta1", "beta2"], epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 },
  "gppo-only-high": { keys: CLIP_KEYS, epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 },
  "ppo-clip": { keys: CLIP_KEYS, epsLow: 0.2, epsHigh: null, clipRatioC: null },
  "dual-clip": { keys: CLIP_KEYS, epsLow: 0.2, epsHigh: null, clipRatioC: 3 },
  "clip-higher": { keys: CLIP_KEYS, epsLow: 0.2, epsHigh: 0.28, clipRatioC: null },
  cispo: { keys: ["epsLow", "epsHigh"], epsLow: 0.2, epsHigh: 0.28, clipRatioC: null },
  gspo: { keys: ["epsLow", "epsHigh"], epsLow: 3e-4, epsHigh: 4e-4, clipRatioC: null },
};

function finite(name: string, value: unknown, loss: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ConfigError(
      `${loss}: ${name} = ${String(value)} is not a finite number`,
      `set ${name} to a number`,
    );
  }
  return value;
}

/** Validates a loss name and config and fills in the defaults. */
export function resolvePolicyLossConfig(name: string, cfg: PolicyLossConfig = {}): ResolvedPolicyLossConfig {
  const loss = checkChoice("policy loss", name, POLICY_LOSS_NAMES);
  const defaults = LOSS_DEFAULTS[loss];
  const allowed: string[] = [...defaults.keys, ...COMMON_KEYS];
  for (const key of Object.keys(cfg)) {
    if ((cfg as Record<string, unknown>)[key] === undefined) continue;
    if (!allowed.includes(key)) {
      throw new ConfigError(
        `${loss}: unknown option "${key}"`,
        `the options of ${loss} are: ${allowed.join(", ")}`,
      );
    }
  }

  const epsLow = finite("epsLow", cfg.epsLow ?? defaults.epsLow, loss);
  if (epsLow < 0 || epsLow >= 1) {
    throw new ConfigError(
      `${loss}: epsLow = ${epsLow} must be in [0, 1) so that the lower clip bound 1−epsLow stays positive`,
      "use a value such as 0.2",
    );
  }
  const epsHigh = finite("epsHigh", cfg.epsHigh ?? defaults.epsHigh ?? epsLow, loss);
  if (epsHigh < 0) {
    throw new ConfigError(`${loss}: epsHigh = ${epsHigh} must be ≥ 0`, "use a value such as 0.28");
  }

  let clipRatioC = cfg.clipRatioC === undefined ? defaults.clipRatioC : cfg.clipRatioC;
  if (clipRatioC !== null) {
    clipRatioC = finite("clipRatioC", clipRatioC, loss);
    if (clipRatioC <= 1) {
      throw new ConfigError(
        `${loss}: clipRatioC = ${clipRatioC} must be > 1 (c ≤ 1 would cap every negative-advantage token at or below the unclipped loss, zeroing their gradients)`,
        "use c = 10 (Klear) or 3 (verl), or null for no dual-clip",
      );
    }
  } else if (loss === "dual-clip") {
    throw new ConfigError(
      "dual-clip: clipRatioC is null",
      "give dual-clip a constant c > 1, or use ppo-clip",
    );
  }

  const beta1 = finite("beta1", cfg.beta1 ?? 1, loss);
  const beta2 = finite("beta2", cfg.beta2 ?? 1, loss);
  if (beta1 < 0 || beta2 < 0) {
    throw new ConfigError(
      `${loss}: beta1/beta2 must be ≥ 0 (got ${beta1}, ${beta2})`,
      "the paper uses 1; CE-GPPO 0.25–0.75 for beta1",
    );
  }

  const aggregation = checkAggregation(cfg.aggregation ?? "token-mean", cfg.lengthDivisor);
  const klEstimator = checkKlEstimator(cfg.klEstimator ?? "k3");
  const klCoeff = finite("klCoeff", cfg.klCoeff ?? 0, loss);
  if (klCoeff < 0)
    throw new ConfigError(`${loss}: klCoeff = ${klCoeff} must be ≥ 0`, "use 0 to turn the KL term off");
  const entropyCoeff = finite("entropyCoeff", cfg.entropyCoeff ?? 0, loss);
  const tisCap = cfg.tisCap === undefined || cfg.tisCap === null ? null : finite("tisCap", cfg.tisCap, loss);
  if (tisCap !== null && tisCap <= 0) {
    throw new ConfigError(
      `${loss}: tisCap = ${tisCap} must be > 0`,
      "use e.g. 2, or null to turn truncated IS off",
    );
  }

  const entropyRatioClip = cfg.entropyRatioClip ?? null;
  if (entropyRatioClip !== null) {
    const [low, high] = entropyRatioClip;
    if (!(Number.isFinite(low) && Number.isFinite(high) && low > 0 && low < 1 && high > 1)) {
      throw new ConfigError(
        `${loss}: entropyRatioClip = [${low}, ${high}] must satisfy 0 < low < 1 < high`,
        "use [0.95, 1.05] (the ERC paper), or null to turn it off",
      );
    }
  }

  return {
    epsLow,
    epsHigh,
    clipRatioC,
    beta1,
    beta2,
    aggregation,
    lengthDivisor: cfg.lengthDivisor,
    klEstimator,
    klCoeff,
    entropyCoeff,
    tisCap,
    entropyRatioClip,
  };
}
