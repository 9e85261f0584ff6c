/**
 * The training-backend seam: what a policy update needs from whatever holds the weights. The local
 * engine implements it (`LocalPolicyTrainer`, src/backend/local.ts); a remote trainer (e.g. a Tinker
 * client) implements the same calls, and `runRl` takes either.
 *
 * A policy update is, per micro-batch, "log-probs of the response tokens → per-token gradient
 * coefficients dLoss/dlogp from the loss → accumulate the parameter gradient", then one optimizer
 * step per mini-batch. Only per-token numbers cross the seam, never logits or tensors, so a remote
 * backend sends token ids and coefficients and gets log-probs back.
 */
import type { Tokenizer } from "../model/tokenizer.js";
import type { Generator } from "../rollout/types.js";

/** One training sequence: the prompt, then the response whose tokens are scored and trained. */
export interface TrainingSequence {
  promptTokens: readonly number[];
  responseTokens: readonly number[];
}

export interface LogprobOptions {
  /**
   * The sampling temperature the responses were drawn at: log-probs are of softmax(logits / T), as verl
   * computes them, so the importance ratio compares the distributions the tokens really came from.
   */
  temperature: number;
  /** Also return per-token entropies (of the same tempered distribution). */
  entropy?: boolean;
}

/** Per-response-token values of one sequence (length = its response length). */
export interface SequenceLogprobs {
  logp: Float64Array;
  /** Present when entropy was requested. */
  entropy?: Float64Array;
}

/** Gradient coefficients on each response token: dLoss/dlogp (and dLoss/dentropy when the loss uses entropy). */
export interface TokenGradients {
  dLogp: readonly Float64Array[];
  dEntropy?: readonly Float64Array[];
}

export interface OptimizerStepOptions {
  lr: number;
  /** Clip the global gradient norm to this before stepping. */
  gradClip: number;
}

export interface OptimizerStepResult {
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** False when the norm was not finite: the update was skipped (as verl does) so AdamW's moments stay clean. */
  applied: boolean;
}

/** Anything that scores token sequences: the policy, or a frozen reference for the KL term. */
export interface LogprobSource {
  logprobs(batch: readonly TrainingSequence[], opts: LogprobOptions): Promise<SequenceLogprobs[]>;
}

/** The policy being trained. Gradients accumulate across `forwardBackward` calls until `optimizerStep`. */
/** Cumulative outcomes of a remote backend's requests, logged with every step. */
export interface BackendRequestStats {
  requests: number;
  retries: number;
  failed: number;
  futureWaitMs: number;
}

export interface PolicyTrainer extends LogprobSource {
  readonly tokenizer: Tokenizer;
  readonly parameterCount: number;
  /** Remote backends: every request's outcome so far (absent for the local engine). */
  readonly requestStats?: BackendRequestStats;
  /** Samples from the current weights (called once per step, after the previous update). */
  sampler(): Generator;
  /**
   * Computes the log-probs of `batch` with gradient tracking, hands them to `loss`, which returns the
   * gradient coefficients per token, and accumulates the parameter gradient they imply.
   */
  forwardBackward(
    batch: readonly TrainingSequence[],
    opts: LogprobOptions,
    loss: (out: readonly SequenceLogprobs[]) => TokenGradients,
  ): Promise<void>;
  /**
   * `forwardBackward` for coefficients fixed before the pass (they do not depend on log π, as SFT's): a
   * backend may then skip its extra forward. Returns the log-probs at the weights before the update, or
   * null (the method absent alike) where that is no cheaper: the caller then uses `forwardBackward`.
   */
  forwardBackwardWithCoefficients?(
    batch: readonly TrainingSequence[],
    dLogp: readonly Float64Array[],
  ): Promise<SequenceLogprobs[] | null>;
  /** Clips and applies the accumulated gradient, then clears it. */
  optimizerStep(opts: OptimizerStepOptions): Promise<OptimizerStepResult>;
  /** Writes weights, tokenizer and optimizer state into a checkpoint folder (`loadModel` reads the weights). */
  save(dir: string): Promise<void>;
}

/** AdamW settings of a policy (Klear's recipe: β 0.9/0.999, weight decay 0.1). */
export interface PolicyOptimizerSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Opens policies and reference models from checkpoint folders. `runRl` is handed one (default: local). */
export interface TrainingBackend {
  readonly name: string;
  /**
   * The policy at `checkpoint` (an HF-style folder). With `resumeOptimizer`, the optimizer state saved
   * in that folder by `PolicyTrainer.save` is restored too.
   */
  openPolicy(
    checkpoint: string,
    opts: { optimizer: PolicyOptimizerSettings; resumeOptimizer?: { optimizerSteps: number } },
  ): Promise<PolicyTrainer>;
  /** A frozen model for reference log-probs (the KL term). */
  openReference(checkpoint: string): Promise<LogprobSource>;
  /** A sampler for a saved checkpoint (held-out evaluation of what was written to disk). */
  openSampler(checkpoint: string): Promise<{ sampler: Generator; tokenizer: Tokenizer }>;
  /** Ends what the backend keeps open (a remote session's heartbeats); absent when there is nothing. */
  close?(): void;
}
