import { ConfigError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { sampleToken, validateTokenSamplingParams } from "./sampler.js";
import type { Completion, GenerateParams, Generator } from "./types.js";

/**
 * What generation needs from a model (the engine's `Qwen3Model` fits as is): a KV cache and a step that
 * appends tokens to its sequences. `forwardTokens(cache, tokens, counts)` takes `tokens` as
 * [batchSize, chunk] row-major, appends the first `counts[b]` tokens of row b at that sequence's own
 * next positions, and returns the logits after each sequence's last new token, [batchSize · vocab]
 * (a row with count 0 is skipped and its logits are not used).
 */
export interface DecodeModel<Cache = unknown> {
  readonly config: { readonly vocabSize: number };
  createKVCache(batchSize: number, maxLen: number): Cache;
  forwardTokens(cache: Cache, tokens: Int32Array, counts?: Int32Array): Float32Array;
}

/** A 32-bit seed for completion `sampleIndex` of prompt `promptIndex`, independent of the batch. */
export function completionSeed(seed: number, promptIndex: number, sampleIndex: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [promptIndex, sampleIndex]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

function validate(prompts: number[][], params: GenerateParams, vocab: number): void {
  validateTokenSamplingParams(params, "generate");
  const n = params.n ?? 1;
  if (!Number.isInteger(n) || n < 1)
    throw new ConfigError(`generate: n must be an integer ≥ 1, got ${n}`, "use n ≥ 1");
  if (!Number.isInteger(params.maxNewTokens) || params.maxNewTokens < 1) {
    throw new ConfigError(
      `generate: maxNewTokens must be an integer ≥ 1, got ${params.maxNewTokens}`,
      "set maxNewTokens to the longest completion you want",
    );
  }
  if ((params.stopStrings?.length ?? 0) > 0 && !params.decode) {
    throw new ConfigError(
      "generate: stopStrings need a decode function",
      "pass params.decode (e.g. tokenizer.decode)",
    );
  }
  if (params.stopStrings?.some((s) => s.length === 0)) {
    throw new ConfigError("generate: an empty stop string would stop at once", "remove the empty string");
  }
  prompts.forEach((p, i) => {
    if (p.length === 0) {
      throw new ConfigError(
        `generate: prompt ${i} is empty`,
        "start every prompt with at least one token (e.g. BOS)",
      );
    }
    for (const t of p) {
      if (!Number.isInteger(t) || t < 0 || t >= vocab) {
        throw new ConfigError(
          `generate: prompt ${i} has token id ${t}, outside the model's vocabulary [0, ${vocab})`,
          "encode prompts with the model's own tokenizer",
        );
      }
    }
  });
}

interface Sequence {
  promptIndex: number;
  sampleIndex: number;
  prompt: number[];
  rng: Rng | null;
  /** Distinct tokens seen so far, for the repetition penalty. */
  seenList: number[];
  seenFlags: Uint8Array | null;
  tokens: number[];
  logprobs: number[];
  modelLogprobs: number[];
  finishReason: "stop" | "length" | null;
  stopString: string | null;
}

/**
 * Samples `n` completions for every prompt. Sequences decode together: every prompt is prefilled in one
 * `forwardTokens` call (each at its own length), then each step feeds one token per active sequence
 * through a single call over the KV cache, and a finished sequence drops out (its count becomes 0).
 * Completions come back ordered by (prompt, sample).
 */
export function generate<C>(
  model: DecodeModel<C>,
  prompts: number[][],
  params: GenerateParams,
): Completion[] {
  const vocab = model.config.vocabSize;
  validate(prompts, params, vocab);
  const n = params.n ?? 1;
  const seed = params.seed ?? 0;
  const greedy = params.temperature === 0;
  const usePenalty = (params.repetitionPenalty ?? 1) !== 1;
  const stopIds = new Set(params.stopTokenIds ?? []);
  const stopStrings = params.stopStrings ?? [];
  // A token decodes to at least one byte (except special tokens), so this many tail tokens cover any stop string.
  const maxStopChars = Math.max(0, ...stopStrings.map((s) => Buffer.byteLength(s)));

  const all: Sequence[] = [];
  prompts.forEach((prompt, promptIndex) => {
    for (let sampleIndex = 0; sampleIndex < n; sampleIndex++) {
      all.push({
        promptIndex,
        sampleIndex,
        prompt,
        rng: greedy ? null : new Rng(completionSeed(seed, promptIndex, sampleIndex)),
        seenList: [],
        seenFlags: usePenalty ? new Uint8Array(vocab) : null,
        tokens: [],
        logprobs: [],
        modelLogprobs: [],
        finishReason: null,
        stopString: null,
      });
    }
  });
  const markSeen = (s: Sequence, t: number) => {
    if (s.seenFlags && s.seenFlags[t] === 0) {
      s.seenFlags[t] = 1;
      s.seenList.push(t);
    }
  };

  const batchSize = Math.max(1, params.maxBatchSize ?? all.length);
  for (let start = 0; start < all.length; start += batchSize) {
    const batch = all.slice(start, start + batchSize);
    const B = batch.length;
    const longestPrompt = Math.max(...batch.map((s) => s.prompt.length));
    const cache = model.createKVCache(B, longestPrompt + params.maxNewTokens);
    const counts = new Int32Array(B);
    const prefill = new Int32Array(B * longestPrompt);
    batch.forEach((s, r) => {
      prefill.set(s.prompt, r * longestPrompt);
      counts[r] = s.prompt.length;
      for (const t of s.prompt) markSeen(s, t);
    });
    let logits = model.forwardTokens(cache, prefill, counts);
    const feed = new Int32Array(B);
    for (;;) {
      let active = 0;
      for (let r = 0; r < B; r++) {
        const s = batch[r];
        if (s.finishReason !== null) {
          counts[r] = 0;
          continue;
        }
        const drawn = sampleToken(logits, r * vocab, vocab, params, s.rng, s.seenList);
        s.tokens.push(drawn.token);
        s.logprobs.push(drawn.samplerLogprob);
        s.modelLogprobs.push(drawn.modelLogprob);
        markSeen(s, drawn.token);
        if (stopIds.has(drawn.token)) s.finishReason = "stop";
        else if (maxStopChars > 0) {
          const hit = findStopString(s.tokens, stopStrings, maxStopChars, params.decode!);
          if (hit !== null) {
            s.finishReason = "stop";
            s.stopString = hit;
          }
        }
        if (s.finishReason === null && s.tokens.length >= params.maxNewTokens) s.finishReason = "length";
        if (s.finishReason === null) {
          feed[r] = drawn.token;
          counts[r] = 1;
          active++;
        } else counts[r] = 0;
      }
      if (active === 0) break;
      logits = model.forwardTokens(cache, feed, counts);
    }
  }

  return all.map((s) => {
    const c: Completion = {
      promptIndex: s.promptIndex,
      sampleIndex: s.sampleIndex,
      tokens: s.tokens,
      logprobs: s.logprobs,
      modelLogprobs: s.modelLogprobs,
      finishReason: s.finishReason ?? "length",
    };
    if (params.decode) c.text = completionText(s, stopIds, params.decode);
    return c;
  });
}

/**
 * Checks only a tail window of tokens: a stop string not present before this token must end inside the
 * newly decoded text, and decoding the whole completion every step would cost O(length²).
 */
function findStopString(
  tokens: number[],
  stops: readonly string[],
  maxChars: number,
  decode: (t: number[]) => string,
): string | null {
  const tail = decode(tokens.slice(-(maxChars + 8)));
  for (const s of stops) if (tail.includes(s)) return s;
  return null;
}

function completionText(s: Sequence, stopIds: Set<number>, decode: (t: number[]) => string): string {
  const last = s.tokens[s.tokens.length - 1];
  const body = s.finishReason === "stop" && stopIds.has(last) ? s.tokens.slice(0, -1) : s.tokens;
  const text = decode(body);
  if (s.stopString === null) return text;
  const at = text.indexOf(s.stopString);
  return at >= 0 ? text.slice(0, at) : text;
}

/** `generate` behind the async `Generator` shape shared with OpenAI-compatible servers. */
export class LocalGenerator<C = unknown> implements Generator {
  constructor(readonly model: DecodeModel<C>) {}
  async generate(prompts: number[][], params: GenerateParams): Promise<Completion[]> {
    return generate(this.model, prompts, params);
  }
}
