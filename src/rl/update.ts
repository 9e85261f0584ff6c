/**
 * The policy update of one RL step (spec §7.1 steps 6–8): group advantages, old log-probs recomputed
 * by the current policy, then per ppo epoch one optimizer step per mini-batch with the policy loss plus
 * the positive-sample SFT term. Written against the `PolicyTrainer` seam, so any backend runs it.
 */
import type { LogprobSource, PolicyTrainer, TrainingSequence } from "../backend/types.js";
import type { AdvantageFn } from "./advantages.js";
import { lossMaskCounts } from "./objectives/aggregate.js";
import type { PolicyLossFn, PolicyLossMetrics } from "./objectives/policy-loss.js";
import { mean, type Trajectory } from "./rollout.js";
import { type PositiveSftConfig, positiveSftTerm } from "./sft-term.js";

/** Everything the update needs besides the batch: the objective, the schedule, the optimizer step. */
export interface PolicyUpdateSettings {
  loss: PolicyLossFn;
  advantage: AdvantageFn;
  /** Pass each response's token count to the estimator (REINFORCE++'s token-weighted whitening). */
  advantageTokenCounts: boolean;
  sft: PositiveSftConfig & { alpha: number };
  /** Responses per optimizer step. */
  miniBatchSize: number;
  /** Responses per forward/backward; gradients accumulate, normalised over the whole mini-batch. */
  microBatchSize: number;
  ppoEpochs: number;
  /** The rollout temperature: log-probs are of softmax(logits / T). */
  temperature: number;
  /** The loss uses the current entropy (entropy bonus or ERC), so the forward keeps it. */
  needEntropy: boolean;
  /** Pass the sampler's log-probs to the loss (truncated IS). */
  useRolloutLogp: boolean;
  lr: number;
  gradClip: number;
}

/** What the old-log-prob pass measured. */
export interface OldLogprobMetrics {
  /** Mean entropy of π_old over the batch's tokens. */
  entropy: number;
  /** Largest |log π_old − sampler log-prob| over the batch: how far the trainer is from the sampler. */
  logprobDiffMax: number;
  logprobDiffMean: number;
}

/** Token-weighted policy-loss metrics, averaged over every micro-batch of the update. */
const WEIGHTED_KEYS = [
  "pgLoss",
  "clipFracHigh",
  "clipFracLow",
  "dualClipFrac",
  "boundedGradFrac",
  "approxKlK1",
  "approxKlK3",
  "ratioMean",
  "klLoss",
] as const satisfies readonly (keyof PolicyLossMetrics)[];
type WeightedKey = (typeof WEIGHTED_KEYS)[number];

/**
 * What one step's update measured, logged per step: the policy loss's metrics averaged over tokens, the
 * old-log-prob pass's, and the optimizer's.
 */
export interface UpdateMetrics extends OldLogprobMetrics, Pick<PolicyLossMetrics, WeightedKey> {
  ratioMax: number;
  sftLoss: number;
  positiveTokens: number;
  advantageAbsMean: number;
  gradNorm: number;
  gradNormMax: number;
  optimizerSteps: number;
  skippedUpdates: number;
}

/** A trajectory with the old (and reference) log-probs the loss compares against. */
export interface ScoredTrajectory {
  trajectory: Trajectory;
  oldLogp: Float64Array;
  oldEntropy: Float64Array;
  refLogp: Float64Array | null;
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function concat(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Flat per-token values back into one array per response. */
function splitRows(flat: Float64Array, lengths: readonly number[]): Float64Array[] {
  const rows: Float64Array[] = [];
  let o = 0;
  for (const len of lengths) {
    rows.push(flat.subarray(o, o + len));
    o += len;
  }
  return rows;
}

export function trainingSequence(t: Trajectory): TrainingSequence {
  return { promptTokens: t.promptTokens, responseTokens: t.completion };
}

/** Old log-probs and entropies from the current policy (spec §16.1), and reference log-probs when given. */
export async function oldLogprobs(
  policy: LogprobSource,
  reference: LogprobSource | null,
  batch: readonly Trajectory[],
  opts: { microBatchSize: number; temperature: number },
): Promise<{ scored: ScoredTrajectory[]; metrics: OldLogprobMetrics }> {
  let diffMax = 0;
  let diffSum = 0;
  let count = 0;
  let entropySum = 0;
  const scored: ScoredTrajectory[] = [];
  for (const micro of chunks(batch, opts.microBatchSize)) {
    const seqs = micro.map(trainingSequence);
    const old = await policy.logprobs(seqs, { temperature: opts.temperature, entropy: true });
    const ref = reference ? await reference.logprobs(seqs, { temperature: opts.temperature }) : null;
    micro.forEach((t, r) => {
      const oldLogp = old[r].logp;
      const oldEntropy = old[r].entropy ?? new Float64Array(oldLogp.length);
      for (let j = 0; j < oldLogp.length; j++) {
        const d = Math.abs(oldLogp[j] - t.samplerLogp[j]);
        if (d > diffMax) diffMax = d;
        diffSum += d;
        entropySum += oldEntropy[j];
      }
      count += oldLogp.length;
      scored.push({ trajectory: t, oldLogp, oldEntropy, refLogp: ref ? ref[r].logp : null });
    });
  }
  return {
    scored,
    metrics: {
      entropy: count > 0 ? entropySum / count : 0,
      logprobDiffMax: diffMax,
      logprobDiffMean: count > 0 ? diffSum / count : 0,
    },
  };
}

/** Sets each trajectory's advantage from the rewards of its group (after filtering). */
export function assignAdvantages(
  batch: readonly Trajectory[],
  settings: Pick<PolicyUpdateSettings, "advantage" | "advantageTokenCounts">,
): Float64Array {
  const adv = settings.advantage({
    rewards: batch.map((t) => t.reward),
    groupIds: batch.map((t) => t.uid),
    tokenCounts: settings.advantageTokenCounts ? batch.map((t) => t.completion.length) : undefined,
  });
  batch.forEach((t, i) => {
    t.advantage = adv[i];
  });
  return adv;
}

/** Advantages, old log-probs, then one optimizer step per mini-batch for each ppo epoch. */
export async function policyUpdate(
  policy: PolicyTrainer,
  reference: LogprobSource | null,
  batch: readonly Trajectory[],
  s: PolicyUpdateSettings,
): Promise<UpdateMetrics> {
  const adv = assignAdvantages(batch, s);
  const old = await oldLogprobs(policy, reference, batch, s);

  const weighted: Record<WeightedKey, number> = {
    pgLoss: 0,
    clipFracHigh: 0,
    clipFracLow: 0,
    dualClipFrac: 0,
    boundedGradFrac: 0,
    approxKlK1: 0,
    approxKlK3: 0,
    ratioMean: 0,
    klLoss: 0,
  };
  let tokensSeen = 0;
  let ratioMax = 0;
  let sftLoss = 0;
  let positiveTokens = 0;
  let optimizerSteps = 0;
  let skippedUpdates = 0;
  const gradNorms: number[] = [];
  for (let epoch = 0; epoch < s.ppoEpochs; epoch++) {
    for (const mini of chunks(old.scored, s.miniBatchSize)) {
      // Whole-mini-batch normalisers, so the micro-batch split never changes the gradient.
      const counts = lossMaskCounts(mini.map((m) => new Uint8Array(m.trajectory.completion.length).fill(1)));
      const positives = mini.filter((m) => m.trajectory.correct);
      const positiveTokenCount = positives.reduce((a, m) => a + m.trajectory.completion.length, 0);
      for (const micro of chunks(mini, s.microBatchSize)) {
        const lengths = micro.map((m) => m.trajectory.completion.length);
        await policy.forwardBackward(
          micro.map((m) => trainingSequence(m.trajectory)),
          { temperature: s.temperature, entropy: s.needEntropy },
          (out) => {
            const flatLogp = concat(out.map((o) => o.logp));
            const result = s.loss({
              logp: flatLogp,
              oldLogp: concat(micro.map((m) => m.oldLogp)),
              advantages: micro.map((m) => m.trajectory.advantage),
              lengths,
              refLogp: reference ? concat(micro.map((m) => m.refLogp ?? new Float64Array(0))) : undefined,
              entropy: s.needEntropy ? concat(out.map((o) => o.entropy ?? new Float64Array(0))) : undefined,
              oldEntropy: s.needEntropy ? concat(micro.map((m) => m.oldEntropy)) : undefined,
              rolloutLogp: s.useRolloutLogp
                ? concat(micro.map((m) => Float64Array.from(m.trajectory.samplerLogp)))
                : undefined,
              globalTokenCount: counts.tokens,
              globalSeqCount: counts.sequences,
            });
            const dFlat = result.dLogp;
            if (s.sft.alpha > 0) {
              const sft = positiveSftTerm(
                {
                  logp: flatLogp,
                  lengths,
                  positive: micro.map((m) => m.trajectory.correct),
                  globalTokenCount: positiveTokenCount,
                  globalSeqCount: positives.length,
                },
                s.sft,
              );
              for (let k = 0; k < dFlat.length; k++) dFlat[k] += sft.dLogp[k];
              sftLoss += sft.loss;
              positiveTokens += sft.positiveTokens;
            }
            const w = result.metrics.tokens;
            for (const key of WEIGHTED_KEYS) weighted[key] += result.metrics[key] * w;
            tokensSeen += w;
            ratioMax = Math.max(ratioMax, result.metrics.ratioMax);
            return {
              dLogp: splitRows(dFlat, lengths),
              dEntropy: result.dEntropy ? splitRows(result.dEntropy, lengths) : undefined,
            };
          },
        );
      }
      const step = await policy.optimizerStep({ lr: s.lr, gradClip: s.gradClip });
      gradNorms.push(step.gradNorm);
      if (step.applied) optimizerSteps++;
      else skippedUpdates++;
    }
  }
  const averaged = { ...weighted };
  for (const key of WEIGHTED_KEYS) averaged[key] = tokensSeen > 0 ? weighted[key] / tokensSeen : 0;
  return {
    ...averaged,
    ratioMax,
    sftLoss: sftLoss / Math.max(1, optimizerSteps + skippedUpdates),
    positiveTokens: positiveTokens / s.ppoEpochs,
    ...old.metrics,
    advantageAbsMean: mean(Array.from(adv, Math.abs)),
    gradNorm: mean(gradNorms),
    gradNormMax: Math.max(...gradNorms),
    optimizerSteps,
    skippedUpdates,
  };
}
