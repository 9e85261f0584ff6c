import { ConfigError, KlearError } from "../util/errors.js";
import { completionSeed } from "./generate.js";
import { OpenAIClient, type OpenAIClientOptions, type OpenAITokenChoice } from "./openai.js";
import { validateTokenSamplingParams } from "./sampler.js";
import type { Completion, FinishReason, GenerateParams, Generator } from "./types.js";

/**
 * Rollouts sampled on an inference server, token in / token out: prompts go as the token ids klear
 * rendered (its own chat template), the sampled ids and their log-probs come back as the server produced
 * them, and nothing is re-tokenised. vLLM speaks its OpenAI-compatible `/v1/completions` with
 * `return_token_ids`; SGLang its native `/generate` with `input_ids` and `return_logprob`.
 */

export const SERVER_FLAVORS = ["vllm", "sglang"] as const;
export type ServerFlavor = (typeof SERVER_FLAVORS)[number];

export interface ServerGeneratorOptions extends OpenAIClientOptions {
  /** The served model name (vLLM `--served-model-name`). */
  model: string;
  flavor?: ServerFlavor;
  /** The policy's vocabulary: prompts and returned ids must lie in [0, vocabSize). */
  vocabSize?: number;
}

/** What one prompt's request brought back, before it becomes `Completion`s. */
interface SampledChoice {
  tokenIds: number[];
  logprobs: number[];
  finishReason: string | null;
}

export class ServerGenerator implements Generator {
  readonly client: OpenAIClient;
  readonly flavor: ServerFlavor;

  constructor(private readonly opts: ServerGeneratorOptions) {
    this.flavor = opts.flavor ?? "vllm";
    if (!SERVER_FLAVORS.includes(this.flavor)) {
      throw new ConfigError(
        `unknown server flavor "${this.flavor}"`,
        `use one of ${SERVER_FLAVORS.join(", ")}`,
      );
    }
    this.client = new OpenAIClient(opts);
  }

  get description(): string {
    return `${this.opts.model} @ ${this.opts.endpoints.join(", ")} (${this.flavor})`;
  }

  /**
   * One request per prompt with all `n` samples (the server shares the prompt's prefill), sent
   * concurrently up to the client's limit. Completion k of prompt i is seeded from (seed, i) as the
   * server derives its n sub-streams, so a prompt's samples do not depend on the rest of the batch.
   */
  async generate(prompts: number[][], params: GenerateParams): Promise<Completion[]> {
    validateTokenSamplingParams(params, "server generate");
    const n = params.n ?? 1;
    if (!Number.isInteger(n) || n < 1)
      throw new ConfigError(`n must be an integer ≥ 1, got ${n}`, "use n ≥ 1");
    for (const [i, p] of prompts.entries()) this.checkIds(p, `prompt ${i}`);
    const perPrompt = await Promise.all(prompts.map((p, i) => this.sample(p, i, n, params)));
    const out: Completion[] = [];
    perPrompt.forEach((choices, promptIndex) => {
      choices.forEach((c, sampleIndex) => {
        this.checkIds(c.tokenIds, `completion ${sampleIndex} of prompt ${promptIndex}`);
        const finishReason = finishReasonOf(c, params);
        const stopped = finishReason === "stop" && params.stopTokenIds?.includes(c.tokenIds.at(-1) ?? -1);
        const completion: Completion = {
          promptIndex,
          sampleIndex,
          tokens: c.tokenIds,
          // The server reports the model's log-probs (vLLM's default raw_logprobs): the right old
          // log-probs for the importance ratio. Its sampling distribution (after temperature / top-p)
          // is not returned, so the two fields carry the same values.
          logprobs: c.logprobs,
          modelLogprobs: c.logprobs,
          finishReason,
        };
        if (params.decode) completion.text = params.decode(stopped ? c.tokenIds.slice(0, -1) : c.tokenIds);
        out.push(completion);
      });
    });
    return out;
  }

  close(): void {
    this.client.close();
  }

  private checkIds(ids: readonly number[], what: string): void {
    const vocab = this.opts.vocabSize ?? Number.POSITIVE_INFINITY;
    for (const t of ids) {
      if (!Number.isInteger(t) || t < 0 || t >= vocab) {
        throw new KlearError(
          "SERVER_TOKEN_OUT_OF_VOCAB",
          `${what} has token id ${t}, outside the policy's vocabulary [0, ${vocab})`,
          "serve the same checkpoint (and tokenizer) the trainer holds",
        );
      }
    }
  }

  private async sample(
    prompt: number[],
    promptIndex: number,
    n: number,
    params: GenerateParams,
  ): Promise<SampledChoice[]> {
    const seed = params.seed === undefined ? undefined : completionSeed(params.seed, promptIndex, 0);
    const choices =
      this.flavor === "sglang"
        ? await this.sampleSglang(prompt, n, params, seed)
        : await this.sampleVllm(prompt, n, params, seed);
    if (choices.length !== n) {
      throw new KlearError(
        "SERVER_BAD_RESPONSE",
        `the server returned ${choices.length} completions for prompt ${promptIndex}, asked for ${n}`,
        "check that the server honours n (vLLM, SGLang do)",
      );
    }
    return choices;
  }

  private async sampleVllm(
    prompt: number[],
    n: number,
    params: GenerateParams,
    seed: number | undefined,
  ): Promise<OpenAITokenChoice[]> {
    const res = await this.client.completeTokens(prompt, {
      model: this.opts.model,
      n,
      temperature: params.temperature,
      topP: params.topP,
      topK: params.topK,
      repetitionPenalty: params.repetitionPenalty,
      maxTokens: params.maxNewTokens,
      stop: params.stopStrings?.length ? [...params.stopStrings] : undefined,
      stopTokenIds: params.stopTokenIds,
      seed,
      extra: params.minP ? { min_p: params.minP } : undefined,
    });
    if (res.promptTokenIds && !sameIds(res.promptTokenIds, prompt)) {
      throw new KlearError(
        "SERVER_PROMPT_MISMATCH",
        `the server saw prompt ids [${res.promptTokenIds.slice(0, 8).join(", ")}…], klear sent [${prompt.slice(0, 8).join(", ")}…]`,
        "send prompts as token ids to a server that does not re-tokenise them (vLLM /v1/completions)",
      );
    }
    return res.choices;
  }

  /** SGLang's native /generate: a batch of n copies of the prompt, each with its own seed. */
  private async sampleSglang(
    prompt: number[],
    n: number,
    params: GenerateParams,
    seed: number | undefined,
  ): Promise<SampledChoice[]> {
    const samplingParams = Array.from({ length: n }, (_, k) => ({
      max_new_tokens: params.maxNewTokens,
      temperature: params.temperature ?? 1,
      top_p: params.topP ?? 1,
      top_k: params.topK && params.topK >= 1 ? params.topK : -1,
      min_p: params.minP ?? 0,
      repetition_penalty: params.repetitionPenalty ?? 1,
      stop_token_ids: params.stopTokenIds ?? [],
      stop: params.stopStrings ?? [],
      ignore_eos: true,
      skip_special_tokens: false,
      ...(seed === undefined ? {} : { sampling_seed: (seed + k) >>> 0 }),
    }));
    const json = await this.client.postRoot("/generate", {
      input_ids: Array.from({ length: n }, () => prompt),
      sampling_params: samplingParams,
      return_logprob: true,
      model: this.opts.model,
    });
    return parseSglangGenerate(json);
  }
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

function finishReasonOf(c: SampledChoice, params: GenerateParams): FinishReason {
  if (c.finishReason === "length") return "length";
  if (c.finishReason === "stop") return "stop";
  // Some servers leave it out; a completion at the budget that did not end on a stop id was cut.
  if (c.finishReason === null) {
    const last = c.tokenIds.at(-1) ?? -1;
    return params.stopTokenIds?.includes(last) || c.tokenIds.length < params.maxNewTokens ? "stop" : "length";
  }
  throw new KlearError(
    "SERVER_ABORTED",
    `the server ended a completion with finish reason "${c.finishReason}"`,
    "the server aborted the request (paused for a weight update, or shut down); the step is retried",
  );
}

/** SGLang /generate answers one object per input: meta_info.output_token_logprobs = [[logprob, id, text], …]. */
export function parseSglangGenerate(json: unknown): SampledChoice[] {
  const items = Array.isArray(json) ? json : [json];
  return items.map((item, i) => {
    const meta = (item as { meta_info?: Record<string, unknown> })?.meta_info;
    const pairs = meta?.output_token_logprobs;
    if (!Array.isArray(pairs)) {
      throw new KlearError(
        "SERVER_NO_TOKEN_IDS",
        `SGLang /generate returned no output_token_logprobs (item ${i})`,
        "pass return_logprob (klear does) to an SGLang ≥ 0.4 server",
      );
    }
    const tokenIds = pairs.map((p) => Number((p as unknown[])[1]));
    const logprobs = pairs.map((p) => Number((p as unknown[])[0]));
    const finish = meta?.finish_reason as { type?: string } | string | null | undefined;
    const finishReason = typeof finish === "string" ? finish : (finish?.type ?? null);
    return { tokenIds, logprobs, finishReason: finishReason === "abort" ? "abort" : finishReason };
  });
}
