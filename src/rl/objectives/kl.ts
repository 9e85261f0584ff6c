/**
 * Per-token KL(π_θ ‖ π_ref) estimators from samples of π_θ (Schulman's k1/k2/k3), with their exact
 * derivative with respect to log π_θ. Off by default, as in the Klear recipe (§8: no KL term).
 */
import { checkChoice } from "../../util/errors.js";
import { MAX_LOG_RATIO } from "./clip.js";

export const KL_ESTIMATORS = ["k1", "k2", "k3"] as const;
export type KlEstimator = (typeof KL_ESTIMATORS)[number];

export function checkKlEstimator(name: string, where = "klEstimator"): KlEstimator {
  return checkChoice(where, name, KL_ESTIMATORS);
}

/**
 * One token's estimate and its derivative d/d(logp), with x = logp − refLogp:
 * k1 = x (unbiased, high variance, can be negative); k2 = x²/2; k3 = e^{−x} + x − 1 (unbiased, ≥ 0,
 * verl's "low_var_kl"). x is clamped to ±MAX_LOG_RATIO so e^{−x} stays finite.
 */
export function klToken(
  estimator: KlEstimator,
  logp: number,
  refLogp: number,
): { value: number; grad: number } {
  const x = Math.min(MAX_LOG_RATIO, Math.max(-MAX_LOG_RATIO, logp - refLogp));
  switch (estimator) {
    case "k1":
      return { value: x, grad: 1 };
    case "k2":
      return { value: 0.5 * x * x, grad: x };
    case "k3": {
      const e = Math.exp(-x);
      return { value: e + x - 1, grad: 1 - e };
    }
  }
}
