/**
 * What one SFT step does to the weights, behind one interface so the step loop (./step-loop.ts) drives the
 * local engine and any training backend the same way: accumulate the gradient of the step's token-mean NLL
 * micro-batch by micro-batch, step AdamW at the schedule's rate, score the held-out rows, checkpoint.
 *
 * - `localSftUpdater`: the engine's own fast path: packed sequences as segments (no attention across rows),
 *   the fused chunked output layer and loss (`lossAndBackward`), AdamW with norm gains undecayed.
 * - `backendSftUpdater`: a `PolicyTrainer` of the backend seam (a Tinker server, or the local engine through
 *   the seam): each row is its own training sequence, and the loss's coefficients c_t = −mask_t / N
 *   (N = the step's loss tokens, across every micro-batch) go through `forwardBackward`, which maps them onto
 *   the server's loss exactly (src/backend/tinker/gradients.ts). The loss is reported from the log-probs the
 *   backend computed for that step, before its update.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PolicyTrainer, SequenceLogprobs, TrainingSequence } from "../backend/types.js";
import { AdamW, clipGradNorm } from "../engine/optim.js";
import type { Qwen3Model } from "../model/qwen3.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { type CheckpointPayload, readOptimizerState } from "../store/checkpoint.js";
import type { SftConfig } from "./config.js";
import type { SftExample } from "./data.js";
import {
  bySizeDescending,
  heldOutGroups,
  heldOutLoss,
  lossTokensOf,
  maskedNll,
  sftCoefficients,
  sftStepGradients,
  sftTrainingRow,
} from "./loss.js";

/** One step's gradient pass: its NLL and token counts. */
export interface SftStepGradients {
  loss: number;
  lossTokens: number;
  realTokens: number;
  computedTokens: number;
}

export interface SftUpdater {
  /** Accumulates the gradient of the token-mean NLL over all of `sequences` (the step's packed sequences). */
  accumulate(sequences: readonly (readonly SftExample[])[]): Promise<SftStepGradients>;
  /** Clips and applies the accumulated gradient at `lr`, then clears it; returns the norm before clipping. */
  step(lr: number): Promise<number>;
  /** Token-mean NLL of the held-out rows at the current weights (null for none). */
  heldOutLoss(rows: readonly SftExample[]): Promise<number | null>;
  /** What each checkpoint holds besides the trainer state. */
  readonly payload: CheckpointPayload;
}

/** The local engine's fast path; restores AdamW's moments from `resumeFrom` (a checkpoint folder). */
export async function localSftUpdater(
  model: Qwen3Model,
  tokenizer: Tokenizer,
  config: SftConfig,
  resumeFrom: { path: string; step: number } | null,
): Promise<SftUpdater> {
  const params = model.parameters();
  const optimizer = new AdamW(params, {
    lr: config.optimizer.lr,
    beta1: config.optimizer.beta1,
    beta2: config.optimizer.beta2,
    eps: config.optimizer.eps,
    weightDecay: config.optimizer.weightDecay,
    // Norm gains stay undecayed, as in most LM recipes.
    decay: (_name, p) => p.shape.length >= 2,
  });
  if (resumeFrom) await readOptimizerState(resumeFrom.path, optimizer, resumeFrom.step);
  const padId = tokenizer.padTokenId;
  return {
    accumulate: async (sequences) =>
      sftStepGradients(model, sequences, config.train.microSequences, padId, {
        recompute: config.train.recompute,
      }),
    step: async (lr) => {
      const gradNorm = clipGradNorm(params, config.optimizer.gradClip);
      optimizer.step(lr);
      return gradNorm;
    },
    heldOutLoss: async (rows) => heldOutLoss(model, rows, config, padId),
    payload: { model, tokenizer, optimizer },
  };
}

/**
 * SFT through the backend seam. `tokenizer` is the run's (its EOS may be the template's end of turn): when
 * it is not the policy's own, its files are written into every checkpoint after the backend's.
 */
export function backendSftUpdater(
  policy: PolicyTrainer,
  tokenizer: Tokenizer,
  config: SftConfig,
): SftUpdater {
  const rowsOf = (sequences: readonly (readonly SftExample[])[]) =>
    sequences.flat().flatMap((e) => {
      const row = sftTrainingRow(e);
      return row ? [{ ...row, tokens: e.ids.length }] : [];
    });
  return {
    async accumulate(sequences) {
      const lossTokens = sequences.reduce((n, seq) => n + seq.reduce((m, e) => m + lossTokensOf(e), 0), 0);
      const bySize = bySizeDescending(sequences);
      const micro = config.train.microSequences;
      let loss = 0;
      let realTokens = 0;
      for (let i = 0; i < bySize.length; i += micro) {
        const rows = rowsOf(bySize.slice(i, i + micro));
        if (rows.length === 0) continue;
        const batch = rows.map((r) => r.sequence);
        const dLogp = rows.map((r) => sftCoefficients(r.mask, lossTokens));
        // The coefficients do not depend on log π: a backend that can skips its extra forward.
        const out =
          (await policy.forwardBackwardWithCoefficients?.(batch, dLogp)) ??
          (await forwardBackwardSeen(policy, batch, dLogp));
        rows.forEach((r, k) => {
          loss += maskedNll(r.mask, out[k].logp) / lossTokens;
        });
        realTokens += rows.reduce((n, r) => n + r.tokens, 0);
      }
      // The backend pads (or not) on its own side: no padding is known here.
      return { loss, lossTokens, realTokens, computedTokens: realTokens };
    },
    async step(lr) {
      const { gradNorm } = await policy.optimizerStep({ lr, gradClip: config.optimizer.gradClip });
      return gradNorm;
    },
    async heldOutLoss(rows) {
      let sum = 0;
      let count = 0;
      for (const group of heldOutGroups(rows, config)) {
        const scored = rowsOf(group);
        if (scored.length === 0) continue;
        const out = await policy.logprobs(
          scored.map((r) => r.sequence),
          { temperature: 1 },
        );
        scored.forEach((r, k) => {
          sum += maskedNll(r.mask, out[k].logp);
          for (const m of r.mask) count += m;
        });
      }
      return count > 0 ? sum / count : null;
    },
    payload: {
      async save(dir) {
        await policy.save(dir);
        if (tokenizer === policy.tokenizer) return;
        const files = tokenizer.toFiles();
        await writeFile(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizerJson));
        await writeFile(
          join(dir, "tokenizer_config.json"),
          `${JSON.stringify(files.tokenizerConfig, null, 2)}\n`,
        );
      },
    },
  };
}

/** `forwardBackward` with coefficients known in advance, returning the log-probs the backend computed. */
async function forwardBackwardSeen(
  policy: PolicyTrainer,
  batch: readonly TrainingSequence[],
  dLogp: readonly Float64Array[],
): Promise<readonly SequenceLogprobs[]> {
  let seen: readonly SequenceLogprobs[] = [];
  await policy.forwardBackward(batch, { temperature: 1 }, (out) => {
    seen = out;
    return { dLogp };
  });
  return seen;
}
