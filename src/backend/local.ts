import { AdamW, clipGradNorm } from "../engine/optim.js";
import { loadModel } from "../model/checkpoint.js";
import type { Qwen3Model } from "../model/qwen3.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { LocalGenerator } from "../rollout/generate.js";
import type { Generator } from "../rollout/types.js";
import { readOptimizerState, writeLocalTrainingState } from "../store/checkpoint.js";
import { gatherResponse, packSequences, scatterResponses } from "./pack.js";
import type {
  LogprobOptions,
  LogprobSource,
  OptimizerStepOptions,
  OptimizerStepResult,
  PolicyOptimizerSettings,
  PolicyTrainer,
  SequenceLogprobs,
  TokenGradients,
  TrainingBackend,
  TrainingSequence,
} from "./types.js";

/**
 * The temperature the model scores at: the rollout's, as verl divides the logits by it. Greedy rollouts
 * (T = 0) have no tempered distribution; they are scored by the raw model (T = 1).
 */
function scoringTemperature(opts: LogprobOptions): number {
  return opts.temperature > 0 ? opts.temperature : 1;
}

/** Log-probs (and entropies) of a model on training sequences, without keeping anything for a backward. */
function scoreSequences(
  model: Qwen3Model,
  padId: number,
  batch: readonly TrainingSequence[],
  opts: LogprobOptions,
): SequenceLogprobs[] {
  const packed = packSequences(batch, padId);
  const { logp, entropy } = model.logprobs(packed.batch, {
    entropy: opts.entropy === true,
    temperature: scoringTemperature(opts),
  });
  return batch.map((_, r) => ({
    logp: gatherResponse(logp, packed, r),
    entropy: entropy ? gatherResponse(entropy, packed, r) : undefined,
  }));
}

/** `PolicyTrainer` on the local engine: a `Qwen3Model` and AdamW, gradients accumulated in the model. */
export class LocalPolicyTrainer implements PolicyTrainer {
  readonly optimizer: AdamW;

  constructor(
    readonly model: Qwen3Model,
    readonly tokenizer: Tokenizer,
    optimizer: PolicyOptimizerSettings,
  ) {
    this.optimizer = new AdamW(model.parameters(), optimizer);
    model.zeroGrad();
  }

  get parameterCount(): number {
    return this.model.parameterCount();
  }

  sampler(): Generator {
    return new LocalGenerator(this.model);
  }

  async logprobs(batch: readonly TrainingSequence[], opts: LogprobOptions): Promise<SequenceLogprobs[]> {
    return scoreSequences(this.model, this.tokenizer.padTokenId, batch, opts);
  }

  async forwardBackward(
    batch: readonly TrainingSequence[],
    opts: LogprobOptions,
    loss: (out: readonly SequenceLogprobs[]) => TokenGradients,
  ): Promise<void> {
    const packed = packSequences(batch, this.tokenizer.padTokenId);
    // The entropy's gradient needs the full distribution, so the forward keeps it only when asked.
    const { logp, entropy } = this.model.logprobs(packed.batch, {
      entropy: opts.entropy === true,
      temperature: scoringTemperature(opts),
    });
    const out = batch.map((_, r) => ({
      logp: gatherResponse(logp, packed, r),
      entropy: entropy ? gatherResponse(entropy, packed, r) : undefined,
    }));
    const grads = loss(out);
    this.model.backward(
      scatterResponses(grads.dLogp, packed),
      grads.dEntropy ? scatterResponses(grads.dEntropy, packed) : undefined,
    );
  }

  async optimizerStep(opts: OptimizerStepOptions): Promise<OptimizerStepResult> {
    const params = this.model.parameters();
    const gradNorm = clipGradNorm(params, opts.gradClip);
    // A non-finite norm would poison AdamW's moments: skip that update, as verl does.
    const applied = Number.isFinite(gradNorm);
    if (applied) this.optimizer.step(opts.lr);
    this.model.zeroGrad();
    return { gradNorm, applied };
  }

  async save(dir: string): Promise<void> {
    await writeLocalTrainingState(dir, {
      model: this.model,
      tokenizer: this.tokenizer,
      optimizer: this.optimizer,
    });
  }
}

/** A frozen local model as a log-prob source (the KL reference). */
class LocalLogprobSource implements LogprobSource {
  constructor(
    private readonly model: Qwen3Model,
    private readonly padId: number,
  ) {}
  async logprobs(batch: readonly TrainingSequence[], opts: LogprobOptions): Promise<SequenceLogprobs[]> {
    return scoreSequences(this.model, this.padId, batch, opts);
  }
}

/** The default backend: everything on this machine's engine, checkpoints as HF folders. */
export const localBackend: TrainingBackend = {
  name: "local",
  async openPolicy(checkpoint, opts) {
    const { model, tokenizer } = await loadModel(checkpoint);
    const trainer = new LocalPolicyTrainer(model, tokenizer, opts.optimizer);
    if (opts.resumeOptimizer) {
      await readOptimizerState(checkpoint, trainer.optimizer, opts.resumeOptimizer.optimizerSteps);
    }
    return trainer;
  },
  async openReference(checkpoint) {
    const { model, tokenizer } = await loadModel(checkpoint);
    return new LocalLogprobSource(model, tokenizer.padTokenId);
  },
  async openSampler(checkpoint) {
    const { model, tokenizer } = await loadModel(checkpoint);
    return { sampler: new LocalGenerator(model), tokenizer };
  },
};
