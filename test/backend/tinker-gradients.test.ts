// The per-token inputs klear sends a Tinker server reproduce klear's own gradient coefficients through
// each server's documented loss formula: GPPO's hand table (all four clipped regions, dual-clip), every
// aggregation mode and the SFT term, across micro-batches.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type CoefficientRow,
  datumTokens,
  exactGradientData,
  serverCoefficients,
  TINKER_LOSS_CONVENTIONS,
} from "../../src/backend/tinker/gradients.js";
import {
  AGGREGATION_MODES,
  KLEAR_RL_PRESETS,
  klearObjective,
  policyLoss,
} from "../../src/rl/objectives/index.js";

const epsLow = 0.2;
const epsHigh = 0.28;
const clipRatioC = 10;

// GPPO (β1 = β2 = 1), token-mean over 6 tokens: dLogp = −A·w/6, w the region's detached weight.
const handTable = [
  { region: "inside, A>0", ratio: 1.1, adv: 1, weight: 1.1 },
  { region: "high-clipped, A>0", ratio: 1.5, adv: 1, weight: 1 + epsHigh },
  { region: "low-clipped, A<0", ratio: 0.5, adv: -1, weight: 1 - epsLow },
  { region: "dual-clip, A<0", ratio: 12, adv: -1, weight: 0 },
  { region: "low side but A>0 (unclipped)", ratio: 0.5, adv: 1, weight: 0.5 },
  { region: "high side but A<0 below c (unclipped)", ratio: 1.5, adv: -1, weight: 1.5 },
];

function relClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) {
    const scale = Math.max(1e-6, Math.abs(expected[i]));
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol * scale,
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

/** Server-formula coefficients of the inputs klear builds for `rows`, sent as the given micro-batches. */
function throughServer(
  rows: CoefficientRow[],
  convention: (typeof TINKER_LOSS_CONVENTIONS)[number],
  splits: number[],
) {
  const out: Float64Array[] = [];
  let at = 0;
  // Every datum of the step counts in SkyRL's divisor, so the step's total goes into every micro-batch.
  const data = exactGradientData(rows, convention, rows.length);
  for (const n of splits) {
    const micro = data.slice(at, at + n);
    const microRows = rows.slice(at, at + n);
    const coeffs = serverCoefficients(
      micro,
      "importance_sampling",
      convention,
      microRows.map((r) => r.logp),
      microRows.map((r) => datumTokens(r.promptTokens, r.responseTokens).responseStart),
    );
    // serverCoefficients divides by its own datum count (one call = one step); rescale to the step's.
    const fix = convention === "skyrl-jax" ? micro.length / rows.length : 1;
    for (const c of coeffs) out.push(c.map((v) => v * fix));
    at += n;
  }
  return out;
}

describe("exact GPPO through the Tinker API", () => {
  const gppo = policyLoss("gppo", { epsLow, epsHigh, clipRatioC, aggregation: "token-mean" });
  const logp = handTable.map((_, i) => -1 - 0.1 * i);
  const oldLogp = handTable.map((row, i) => logp[i] - Math.log(row.ratio));
  const result = gppo({ logp: [logp], oldLogp: [oldLogp], advantages: [handTable.map((r) => r.adv)] });

  test("klear's dLogp is the hand table", () => {
    relClose(
      result.dLogp,
      handTable.map((r) => (-r.adv * r.weight) / handTable.length),
      1e-12,
      "dLogp",
    );
    assert.equal(result.dLogp[3], 0, "dual-clip gives exactly zero gradient");
  });

  for (const convention of TINKER_LOSS_CONVENTIONS) {
    test(`${convention}: importance_sampling with the forward log-probs reproduces every region`, () => {
      const rows: CoefficientRow[] = [
        { promptTokens: [5, 6, 7], responseTokens: [10, 11, 12, 13, 14, 15], logp, dLogp: result.dLogp },
      ];
      const coeffs = throughServer(rows, convention, [1]);
      // The logprobs input travels as float32, the ratio is exp(logp − fround(logp)): ~1e-7 relative.
      relClose(coeffs[0], result.dLogp, 1e-6, handTable.map((r) => r.region).join(" | "));
    });
  }

  test("skyrl-jax: rows of different lengths over several micro-batches keep their coefficients", () => {
    const rows: CoefficientRow[] = [3, 1, 5, 2].map((len, i) => ({
      promptTokens: [1, 2 + i],
      responseTokens: Array.from({ length: len }, (_, j) => 20 + j),
      logp: Array.from({ length: len }, (_, j) => -0.5 - 0.01 * j),
      dLogp: Array.from({ length: len }, (_, j) => (j % 2 === 0 ? 0.3 : -0.7) * (i + 1)),
    }));
    const coeffs = throughServer(rows, "skyrl-jax", [1, 3]);
    for (let i = 0; i < rows.length; i++) relClose(coeffs[i], rows[i].dLogp, 1e-6, `row ${i}`);
  });

  test("skyrl-jax: cross_entropy with signed weights does not carry the coefficients (why it is not used)", () => {
    const dLogp = [0.5, -0.5, 0.25];
    const data = [
      {
        tokens: [1, 2, 3],
        lossFnInputs: {
          target_tokens: { dtype: "int64" as const, data: [2, 3, 4] },
          weights: { dtype: "float32" as const, data: dLogp.map((c) => -c) },
        },
      },
    ];
    const coeffs = serverCoefficients(data, "cross_entropy", "skyrl-jax", [[-1, -1, -1]], [0]);
    // SkyRL divides by max(Σw, 1e-9); here Σw = −0.25, so every coefficient is scaled by 1e9.
    relClose(
      coeffs[0],
      dLogp.map((c) => c * 1e9),
      1e-9,
      "cross_entropy",
    );
    // With Σw > 0 the scale is 1/Σw instead: still not the coefficients.
    const flipped = [
      {
        ...data[0],
        lossFnInputs: { ...data[0].lossFnInputs, weights: { dtype: "float32" as const, data: dLogp } },
      },
    ];
    relClose(
      serverCoefficients(flipped, "cross_entropy", "skyrl-jax", [[-1, -1, -1]], [0])[0],
      dLogp.map((c) => -c / 0.25),
      1e-9,
      "Σw > 0",
    );
    // Hosted Tinker sums, so there the same weights are exact.
    relClose(serverCoefficients(data, "cross_entropy", "sum", [[-1, -1, -1]], [0])[0], dLogp, 1e-7, "sum");
  });

  test("every aggregation mode and the positive-sample SFT term go through the same path", () => {
    const lengths = [4, 2, 3];
    const flatLogp = [-0.9, -1.2, -0.3, -2, -0.7, -0.4, -1.1, -0.2, -0.6];
    const ratios = [1.1, 1.5, 0.5, 12, 0.9, 1.35, 0.7, 1, 1.2];
    const rowsOf = (flat: ArrayLike<number>) => {
      const out: number[][] = [];
      let o = 0;
      for (const n of lengths) {
        out.push(Array.from(flat).slice(o, o + n));
        o += n;
      }
      return out;
    };
    for (const aggregation of AGGREGATION_MODES) {
      for (const preset of Object.values(KLEAR_RL_PRESETS)) {
        const objective = klearObjective({
          ...preset,
          loss: { ...preset.loss, config: { ...preset.loss.config, aggregation, lengthDivisor: 16 } },
        });
        const res = objective({
          logp: flatLogp,
          oldLogp: flatLogp.map((l, k) => l - Math.log(ratios[k])),
          advantages: [1, -1, 0.5],
          lengths,
          rewards: [1, 0, 1],
        });
        const rows = rowsOf(flatLogp).map((l, i) => ({
          promptTokens: [3, 4],
          responseTokens: l.map((_, j) => 30 + j),
          logp: l,
          dLogp: rowsOf(res.dLogp)[i],
        }));
        for (const convention of TINKER_LOSS_CONVENTIONS) {
          const coeffs = throughServer(rows, convention, [2, 1]);
          for (let i = 0; i < rows.length; i++) {
            relClose(coeffs[i], rows[i].dLogp, 1e-6, `${preset.name} ${aggregation} ${convention} row ${i}`);
          }
        }
      }
    }
  });
});
