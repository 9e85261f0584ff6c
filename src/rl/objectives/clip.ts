/**
 * The single ratio/clip helper every clipped loss uses (verl copies this logic into each loss; here the
 * losses differ only in the weights they give the clipped regions).
 *
 * Conventions: the loss is minimised; each token's gradient coefficient on log π is −A·w, where w is the
 * (detached) importance weight the region gives the token. This is the "REINFORCE with a detached
 * weight" form of spec §5.3, which reproduces GPPO's gradient exactly even though GPPO's gradient is not
 * the derivative of its reported value.
 */

/**
 * exp() of log-ratios is taken after clamping them to ±MAX_LOG_RATIO so that extreme inputs give
 * large but finite ratios (e^20 ≈ 4.9e8) instead of Infinity and then NaN in products with zero.
 */
export const MAX_LOG_RATIO = 20;

/** Importance ratio exp(logp − oldLogp), finite for any finite input. */
export function safeRatio(logRatio: number): number {
  return Math.exp(Math.min(MAX_LOG_RATIO, Math.max(-MAX_LOG_RATIO, logRatio)));
}

/** Where a token fell. Stored as small integers in metrics buffers. */
export const Region = {
  /** Unclipped: w = δ. */
  inside: 0,
  /** Low side clipped (PPO family: A<0 and δ<1−ε_l; CISPO: δ<1−ε_l). */
  low: 1,
  /** High side clipped (PPO family: A>0 and δ>1+ε_h; CISPO: δ>1+ε_h). */
  high: 2,
  /** Dual-clip cap reached (A<0 and δ>c): constant loss, zero gradient. */
  dual: 3,
} as const;
export type RegionCode = (typeof Region)[keyof typeof Region];

/** How a clipped PPO-family loss treats its two clipped regions. */
export interface ClipRule {
  epsLow: number;
  epsHigh: number;
  /** Dual-clip constant c (> 1), or null for none. */
  clipRatioC: number | null;
  /** Gradient weight multiplier on (1−ε_l) in the low-clipped region: 0 = PPO (hard clip), β1 = GPPO. */
  lowGrad: number;
  /** Gradient weight multiplier on (1+ε_h) in the high-clipped region: 0 = PPO, β2 = GPPO. */
  highGrad: number;
  /** Forward-value multiplier in the low-clipped region (GPPO's general form scales the value by β1 too). */
  lowValue: number;
  /** Forward-value multiplier in the high-clipped region (β2 for GPPO's general form). */
  highValue: number;
}

/** Output slot for one token, reused to avoid allocation in the hot loop. */
export interface TokenTerm {
  value: number;
  weight: number;
  region: RegionCode;
}

/**
 * The clipped surrogate of PPO, clip-higher, dual-clip, GPPO and its variants for one token:
 * value = max(−A·δ, −A·clip(δ)) (with clipped values scaled by the rule), capped at −A·c for A<0.
 * Strict inequalities at the bounds, as in the paper's masks.
 */
export function clippedToken(ratio: number, adv: number, rule: ClipRule, out: TokenTerm): TokenTerm {
  if (adv > 0 && ratio > 1 + rule.epsHigh) {
    out.value = -adv * rule.highValue * (1 + rule.epsHigh);
    out.weight = rule.highGrad * (1 + rule.epsHigh);
    out.region = Region.high;
    return out;
  }
  if (adv < 0 && ratio < 1 - rule.epsLow) {
    out.value = -adv * rule.lowValue * (1 - rule.epsLow);
    out.weight = rule.lowGrad * (1 - rule.epsLow);
    out.region = Region.low;
    return out;
  }
  if (adv < 0 && rule.clipRatioC !== null && ratio > rule.clipRatioC) {
    out.value = -adv * rule.clipRatioC;
    out.weight = 0;
    out.region = Region.dual;
    return out;
  }
  out.value = -adv * ratio;
  out.weight = ratio;
  out.region = Region.inside;
  return out;
}

/**
 * CISPO's token (MiniMax-M1, in the paper's formulation): a REINFORCE term with the detached weight
 * clip(δ, 1−ε_l, 1+ε_h) whatever the sign of A, so no token ever loses its gradient.
 */
export function cispoToken(
  ratio: number,
  adv: number,
  epsLow: number,
  epsHigh: number,
  out: TokenTerm,
): TokenTerm {
  let w = ratio;
  out.region = Region.inside;
  if (ratio < 1 - epsLow) {
    w = 1 - epsLow;
    out.region = Region.low;
  } else if (ratio > 1 + epsHigh) {
    w = 1 + epsHigh;
    out.region = Region.high;
  }
  out.weight = w;
  out.value = -adv * w;
  return out;
}
