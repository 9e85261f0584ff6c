import type { TokenSamplingParams } from "./sampler.js";

/** Everything `generate` needs to know about how to sample, per request. */
export interface GenerateParams extends TokenSamplingParams {
  /** Completions per prompt (GRPO's group size). Default 1. */
  n?: number;
  maxNewTokens: number;
  /** A completion stops after emitting one of these (the stop token is kept in `tokens`). */
  stopTokenIds?: readonly number[];
  /** A completion stops once its decoded text contains one of these; needs `decode`. */
  stopStrings?: readonly string[];
  /** Turns token ids into text: required for stop strings, and fills `Completion.text` when given. */
  decode?: (tokens: number[]) => string;
  /**
   * Base seed. Completion k of prompt i draws from its own stream derived from (seed, i, k), so its
   * tokens do not depend on which other prompts share the batch or on the batch size.
   */
  seed?: number;
  /** Most sequences decoded together in one batch (memory bound). Default: all of them. */
  maxBatchSize?: number;
}

export type FinishReason = "stop" | "length";

/** One sampled completion. */
export interface Completion {
  /** Index into the `prompts` array given to `generate`. */
  promptIndex: number;
  /** Which of the `n` completions of that prompt this is (0-based). */
  sampleIndex: number;
  /** Sampled token ids, the stop token included when one ended the completion. */
  tokens: number[];
  /**
   * The SAMPLER's log-probability of each token under the distribution it was actually drawn from
   * (after repetition penalty, temperature, top-k/top-p/min-p, renormalised); 0 everywhere when greedy.
   */
  logprobs: number[];
  /**
   * The raw MODEL's log-probability of each token at temperature 1 (log-softmax of the logits, no
   * penalty, no truncation): equal, up to float rounding, to what the trainer's `logprobs()` recomputes
   * on prompt + completion, so it is the right "old log-prob" for RL's importance ratio.
   */
  modelLogprobs: number[];
  /** Decoded completion (when `decode` was given), cut before a stop string and without a stop token. */
  text?: string;
  finishReason: FinishReason;
}

/**
 * Anything that turns token prompts into completions: the local engine (`LocalGenerator`) or an
 * OpenAI-compatible server (vLLM, SGLang) behind the same shape.
 */
export interface Generator {
  generate(prompts: number[][], params: GenerateParams): Promise<Completion[]>;
}
