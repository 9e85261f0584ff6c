import type { Qwen3Config } from "./config.js";

/**
 * Rotary position embedding tables as Hugging Face computes them (`ROPE_INIT_FUNCTIONS`): the inverse
 * frequencies for rope_theta and rope_scaling, and the factor HF multiplies cos and sin by (YaRN's
 * attention scaling). Tables hold only the first half of the head dimension, because HF's rotate-half
 * layout repeats the same angle for element i and i + headDim/2.
 */
export interface RopeFrequencies {
  invFreq: Float64Array;
  attentionScaling: number;
}

function yarnCorrectionDim(numRotations: number, dim: number, base: number, maxPos: number): number {
  return (dim * Math.log(maxPos / (numRotations * 2 * Math.PI))) / (2 * Math.log(base));
}

/**
 * `seqLen` matters only for "dynamic" (NTK) scaling, which re-derives the base once a sequence grows
 * past the trained length.
 */
export function ropeFrequencies(config: Qwen3Config, seqLen = 0): RopeFrequencies {
  const dim = config.headDim;
  const half = dim / 2;
  let base = config.ropeTheta;
  const rs = config.ropeScaling;
  if (rs.type === "dynamic" && seqLen > rs.originalMaxPositionEmbeddings) {
    base =
      base * ((rs.factor * seqLen) / rs.originalMaxPositionEmbeddings - (rs.factor - 1)) ** (dim / (dim - 2));
  }
  // HF computes inv_freq in float32; rounding the same way keeps long-position angles identical.
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++)
    invFreq[i] = Math.fround(1 / Math.fround(base ** Math.fround((2 * i) / dim)));
  let attentionScaling = 1;
  if (rs.type === "linear") {
    for (let i = 0; i < half; i++) invFreq[i] = Math.fround(invFreq[i] / rs.factor);
  } else if (rs.type === "yarn") {
    let low = yarnCorrectionDim(rs.betaFast, dim, base, rs.originalMaxPositionEmbeddings);
    let high = yarnCorrectionDim(rs.betaSlow, dim, base, rs.originalMaxPositionEmbeddings);
    if (rs.truncate) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, dim - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < half; i++) {
      const posFreq = Math.fround(base ** Math.fround((2 * i) / dim));
      const extrapolation = Math.fround(1 / posFreq);
      const interpolation = Math.fround(1 / Math.fround(rs.factor * posFreq));
      const ramp = Math.min(1, Math.max(0, Math.fround((i - low) / (high - low))));
      const extrapolationFactor = Math.fround(1 - ramp);
      invFreq[i] = Math.fround(
        Math.fround(interpolation * Math.fround(1 - extrapolationFactor)) +
          Math.fround(extrapolation * extrapolationFactor),
      );
    }
    attentionScaling = rs.attentionFactor;
  }
  return { invFreq, attentionScaling };
}

/** cos/sin tables [maxLen, headDim/2], already multiplied by the attention scaling. */
export interface RopeTable {
  maxLen: number;
  half: number;
  cos: Float32Array;
  sin: Float32Array;
}

export function buildRopeTable(config: Qwen3Config, maxLen: number, seqLenForDynamic = maxLen): RopeTable {
  const { invFreq, attentionScaling } = ropeFrequencies(config, seqLenForDynamic);
  const half = invFreq.length;
  const cos = new Float32Array(maxLen * half);
  const sin = new Float32Array(maxLen * half);
  for (let p = 0; p < maxLen; p++) {
    for (let i = 0; i < half; i++) {
      // HF multiplies position and inv_freq in float32 before taking cos/sin.
      const angle = Math.fround(p * invFreq[i]);
      cos[p * half + i] = Math.cos(angle) * attentionScaling;
      sin[p * half + i] = Math.sin(angle) * attentionScaling;
    }
  }
  return { maxLen, half, cos, sin };
}
