/**
 * Validation of a policy loss's config against its registry entry: the options it accepts and their
 * defaults come from the entry, so a bad config fails before any step runs, naming the field and fix.
 */
import { ConfigError } from "../../util/errors.js";
import { checkAggregation } from "./aggregate.js";
import { checkKlEstimator } from "./kl.js";
import type { PolicyLossConfig, ResolvedPolicyLossConfig } from "./options.js";
import { policyLossSpec } from "./registry.js";

export type { PolicyLossConfig, ResolvedPolicyLossConfig } from "./options.js";
export { POLICY_LOSS_NAMES, type PolicyLossName } from "./registry.js";

function finite(name: string, value: unknown, loss: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ConfigError(
      `${loss}: ${name} = ${String(value)} is not a finite number`,
      `set ${name} to a number`,
    );
  }
  return value;
}

/**
 * The options `name` accepts, picked out of a record of candidate values (e.g. a trainer's flat loss
 * config): keys the loss does not take are dropped, and null or undefined means "the loss's default".
 * `policyLossConfigFrom("gspo", { epsLow: null, beta1: 1, aggregation: undefined })` is `{}`, so GSPO
 * gets its own ε and seq-mean-token-mean.
 */
export function policyLossConfigFrom(
  name: string,
  values: { readonly [K in keyof PolicyLossConfig]?: PolicyLossConfig[K] | null },
): PolicyLossConfig {
  const out: Record<string, unknown> = {};
  for (const key of policyLossSpec(name).allowedKeys) {
    const value = values[key];
    if (value !== null && value !== undefined) out[key] = value;
  }
  return out as PolicyLossConfig;
}

/** Validates a loss name and config and fills in the loss's defaults. */
export function resolvePolicyLossConfig(name: string, cfg: PolicyLossConfig = {}): ResolvedPolicyLossConfig {
  const spec = policyLossSpec(name);
  const loss = spec.name;
  const defaults = spec.defaults;
  const allowed: readonly string[] = spec.allowedKeys;
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
  }

  const beta1 = finite("beta1", cfg.beta1 ?? 1, loss);
  const beta2 = finite("beta2", cfg.beta2 ?? 1, loss);
  if (beta1 < 0 || beta2 < 0) {
    throw new ConfigError(
      `${loss}: beta1/beta2 must be ≥ 0 (got ${beta1}, ${beta2})`,
      "the paper uses 1; CE-GPPO 0.25–0.75 for beta1",
    );
  }

  const aggregation = checkAggregation(
    cfg.aggregation ?? defaults.aggregation,
    cfg.lengthDivisor,
    "aggregation",
    cfg.groupSequences,
  );
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

  const resolved: ResolvedPolicyLossConfig = {
    epsLow,
    epsHigh,
    clipRatioC,
    beta1,
    beta2,
    aggregation,
    lengthDivisor: cfg.lengthDivisor,
    groupSequences: cfg.groupSequences,
    klEstimator,
    klCoeff,
    entropyCoeff,
    tisCap,
    entropyRatioClip,
  };
  spec.check?.(resolved);
  return resolved;
}
