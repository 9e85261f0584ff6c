/**
 * Exact klear gradients through a Tinker server's built-in losses.
 *
 * klear's losses hand back dLogp, the coefficient c_t of each response token's ∇log π_θ in the gradient
 * of the loss: ∇L = Σ_t c_t ∇log π_t. A Tinker server only runs its own losses, so the coefficients are
 * carried by `importance_sampling`, whose per-token loss is ℓ_t = −w_t · exp(log π_t − q_t) · A_t
 * (q = the `logprobs` input, A = `advantages`). Its gradient is −w_t · exp(log π_t − q_t) · A_t ∇log π_t, so
 * with q_t = the server's own forward log-prob of the same weights (the ratio is exactly 1, up to the
 * float32 rounding of q) and A_t = −c_t / s_t, the server's gradient is Σ c_t ∇log π_t, linear in c
 * whatever its sign. What s_t must be depends on how the server reduces ℓ:
 *
 * - `sum` (hosted Tinker; SkyRL's FSDP backend documents the same "SUM reduction semantics"): the loss is
 *   Σ_t ℓ_t over every datum, and gradients add up across forward_backward calls. s_t = 1.
 * - `skyrl-jax` (SkyRL 0.4.0's JAX backend, skyrl/backends/jax.py): each datum's loss is
 *   Σ_t ℓ_t / max(Σ_t w_t, 1e-9), and optim_step divides the accumulated gradient by the number of
 *   datums sent since the previous optim_step (B). With w = 1 on the W_i response positions of datum i
 *   and 0 on its prompt, s_t = 1 / (W_i · B), known once the step's last micro-batch is in — which is why
 *   the trainer sends its forward_backward calls at optimizer-step time.
 *
 * `cross_entropy` cannot carry signed coefficients on SkyRL: its ℓ_t = −w_t log π_t is divided by
 * max(Σ_t w_t, 1e-9), so with w_t = −c_t a row is scaled by 1/Σ_t(−c_t) — unbounded as the signed
 * coefficients cancel, and 1e9 when their sum has the wrong sign (`serverCoefficients` shows it; see
 * test/backend/tinker-gradients.test.ts). On a `sum` server the same weights would be exact.
 */
import { KlearError } from "../../util/errors.js";
import type { WireDatum } from "./proto.js";

export const TINKER_LOSS_CONVENTIONS = ["skyrl-jax", "sum"] as const;
export type TinkerLossConvention = (typeof TINKER_LOSS_CONVENTIONS)[number];

/** One training sequence as the server sees it, with klear's per-response-token numbers. */
export interface CoefficientRow {
  promptTokens: readonly number[];
  responseTokens: readonly number[];
  /** The server's forward log-probs of the response tokens at the current weights. */
  logp: ArrayLike<number>;
  /** klear's dLoss/dlogp per response token. */
  dLogp: ArrayLike<number>;
}

/** Input tokens and per-position targets: position t predicts token t+1, so the response starts at P−1. */
export function datumTokens(promptTokens: readonly number[], responseTokens: readonly number[]) {
  if (promptTokens.length === 0) {
    throw new KlearError(
      "TINKER_EMPTY_PROMPT",
      "a training sequence has no prompt tokens",
      "give every prompt at least one token (e.g. the chat template's start)",
    );
  }
  const all = [...promptTokens, ...responseTokens];
  return { tokens: all.slice(0, -1), targets: all.slice(1), responseStart: promptTokens.length - 1 };
}

/** A forward-only datum: the targets, unit weights (the loss value is not used, only the log-probs). */
export function forwardDatum(promptTokens: readonly number[], responseTokens: readonly number[]): WireDatum {
  const { tokens, targets } = datumTokens(promptTokens, responseTokens);
  return {
    tokens,
    lossFnInputs: {
      target_tokens: { dtype: "int64", data: targets },
      weights: { dtype: "float32", data: new Float32Array(targets.length).fill(1) },
    },
  };
}

/**
 * The `importance_sampling` datums whose server gradient is Σ dLogp·∇log π over `rows`; `datumsInStep` is
 * B, every datum sent to the server before the next optim_step (these rows included).
 */
export function exactGradientData(
  rows: readonly CoefficientRow[],
  convention: TinkerLossConvention,
  datumsInStep: number,
): WireDatum[] {
  return rows.map((row) => {
    const { tokens, targets, responseStart } = datumTokens(row.promptTokens, row.responseTokens);
    const R = row.responseTokens.length;
    if (row.logp.length !== R || row.dLogp.length !== R) {
      throw new KlearError(
        "TINKER_SHAPE",
        `a row has ${R} response tokens but ${row.logp.length} log-probs and ${row.dLogp.length} coefficients`,
        "pass one log-prob and one coefficient per response token",
      );
    }
    const scale = convention === "skyrl-jax" ? R * datumsInStep : 1;
    const logprobs = new Float32Array(targets.length);
    const advantages = new Float32Array(targets.length);
    const weights = new Float32Array(targets.length);
    for (let j = 0; j < R; j++) {
      logprobs[responseStart + j] = row.logp[j];
      advantages[responseStart + j] = -row.dLogp[j] * scale;
      weights[responseStart + j] = 1;
    }
    const inputs: WireDatum["lossFnInputs"] = {
      target_tokens: { dtype: "int64", data: targets },
      logprobs: { dtype: "float32", data: logprobs },
      advantages: { dtype: "float32", data: advantages },
    };
    // Hosted Tinker's importance_sampling takes no weights; SkyRL reads them as the mask and the divisor.
    if (convention === "skyrl-jax") inputs.weights = { dtype: "float32", data: weights };
    return { tokens, lossFnInputs: inputs };
  });
}

/**
 * `cross_entropy` datums whose gradient is Σ dLogp·∇log π on a `sum` server (hosted Tinker): ℓ_t = −w_t log π_t
 * summed, so w_t = −c_t, any sign. Exact only there (SkyRL divides each datum by Σ_t w_t). It needs no
 * current log-probs, so coefficients known before the pass (SFT's −mask/N) skip the extra forward.
 */
export function sumCrossEntropyData(rows: readonly Omit<CoefficientRow, "logp">[]): WireDatum[] {
  return rows.map((row) => {
    const { tokens, targets, responseStart } = datumTokens(row.promptTokens, row.responseTokens);
    const weights = new Float32Array(targets.length);
    for (let j = 0; j < row.responseTokens.length; j++) weights[responseStart + j] = -row.dLogp[j];
    return {
      tokens,
      lossFnInputs: {
        target_tokens: { dtype: "int64", data: targets },
        weights: { dtype: "float32", data: weights },
      },
    };
  });
}

/**
 * The coefficient on ∇log π of each response token that a server's documented loss formula gives for
 * `data`, evaluated at the server's current log-probs `currentLogp` (one array per datum, response tokens
 * only): the reference the unit tests check klear's inputs against. Losses: importance_sampling and
 * cross_entropy, as SkyRL's JAX backend (`skyrl-jax`) and hosted Tinker (`sum`) define them.
 */
export function serverCoefficients(
  data: readonly WireDatum[],
  lossFn: "importance_sampling" | "cross_entropy",
  convention: TinkerLossConvention,
  currentLogp: readonly ArrayLike<number>[],
  responseStarts: readonly number[],
): Float64Array[] {
  const B = data.length;
  return data.map((d, i) => {
    const n = d.lossFnInputs.target_tokens.data.length;
    const w =
      d.lossFnInputs.weights?.data ?? (convention === "skyrl-jax" ? new Float32Array(n).fill(1) : null);
    const q = d.lossFnInputs.logprobs?.data;
    const A = d.lossFnInputs.advantages?.data;
    let weightSum = 0;
    if (w) for (let t = 0; t < n; t++) weightSum += w[t];
    const divisor = convention === "skyrl-jax" ? Math.max(weightSum, 1e-9) * B : 1;
    const start = responseStarts[i];
    const out = new Float64Array(currentLogp[i].length);
    for (let j = 0; j < out.length; j++) {
      const t = start + j;
      // Hosted Tinker's losses weight nothing by `weights` except cross_entropy, which multiplies by them.
      const wt = w ? w[t] : 1;
      if (lossFn === "cross_entropy") out[j] = -wt / divisor;
      else out[j] = (-wt * Math.exp(currentLogp[i][j] - (q?.[t] ?? 0)) * (A?.[t] ?? 0)) / divisor;
    }
    return out;
  });
}
