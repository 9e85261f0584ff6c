import { KlearError } from "../util/errors.js";

/**
 * The wire side of the OpenAI-compatible client: request and response types, the sampling fields of a
 * request body, and the parsing (with its errors) of completions, chat completions and token-exact
 * completions as vLLM and SGLang return them.
 */

export interface OpenAIClientOptions {
  /** Base URLs, e.g. `http://10.0.0.1:8000` or `http://10.0.0.1:8000/v1`; requests go to the least loaded. */
  endpoints: string[];
  /** Sent as `Authorization: Bearer …` when set. */
  apiKey?: string;
  /** Most requests in flight over all endpoints (default 64). */
  concurrency?: number;
  /** Per-attempt timeout in ms, measured from sending to the last byte of the response (default 600 000). */
  timeoutMs?: number;
  /** Retries after the first attempt before giving up (default 8). */
  maxRetries?: number;
  /** First backoff delay in ms; doubles per retry, with full jitter, capped by `maxBackoffMs` (default 500). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** Sampling parameters, in klear's names; mapped onto the OpenAI / vLLM request fields. */
export interface OpenAISamplingParams {
  model: string;
  n?: number;
  temperature?: number;
  topP?: number;
  /** vLLM / SGLang extension; omitted when undefined or < 1. */
  topK?: number;
  maxTokens?: number;
  stop?: string[];
  seed?: number;
  /** vLLM / SGLang extension. */
  repetitionPenalty?: number;
  /** Any other request fields, passed through unchanged (e.g. `{ logprobs: 1 }`). */
  extra?: Record<string, unknown>;
}

export interface OpenAIChatMessage {
  role: string;
  content: string;
}

export interface OpenAIChoice {
  index: number;
  text: string;
  /** "stop", "length", … as the server reports it; null when absent. */
  finishReason: string | null;
}

export interface OpenAICompletion {
  choices: OpenAIChoice[];
  promptTokens: number | null;
  completionTokens: number | null;
  /** Attempts this request took (1 when the first succeeded). */
  attempts: number;
  /** The endpoint that answered. */
  endpoint: string;
  latencyMs: number;
}

/** One completion of a token-in/token-out request: what the server sampled, never re-tokenised. */
export interface OpenAITokenChoice {
  index: number;
  /** The sampled token ids exactly as the server returned them (a stop token included when it ended the text). */
  tokenIds: number[];
  /** The server's log-probability of each sampled token (vLLM: of the raw model unless --logprobs-mode). */
  logprobs: number[];
  finishReason: string | null;
  text: string;
}

export interface OpenAITokenCompletion {
  choices: OpenAITokenChoice[];
  /** The prompt ids the server says it saw (vLLM `return_token_ids`); null when it does not say. */
  promptTokenIds: number[] | null;
  /** log p(prompt[t] | prompt[<t]) per prompt token (null at position 0), when `promptLogprobs` was asked. */
  promptLogprobs: (number | null)[] | null;
  attempts: number;
  endpoint: string;
  latencyMs: number;
}

/** Token-exact request options on top of the sampling parameters. */
export interface OpenAITokenParams extends OpenAISamplingParams {
  /** Stop after one of these ids (kept in `tokenIds`). The model's own EOS is ignored unless listed here. */
  stopTokenIds?: readonly number[];
  /** Also return the log-probs of the prompt tokens (vLLM `prompt_logprobs`). */
  promptLogprobs?: boolean;
}

export interface OpenAIClientStats {
  requests: number;
  succeeded: number;
  failed: number;
  retries: number;
  /** Retries by cause: "429", "500", "timeout", "connection", … */
  retryCauses: Record<string, number>;
}

/** A failure that a retry may cure: rate limits, server errors, timeouts, dropped connections. */
export class RetryableError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function samplingBody(p: OpenAISamplingParams): Record<string, unknown> {
  const body: Record<string, unknown> = { model: p.model };
  if (p.n !== undefined) body.n = p.n;
  if (p.temperature !== undefined) body.temperature = p.temperature;
  if (p.topP !== undefined) body.top_p = p.topP;
  if (p.topK !== undefined && p.topK >= 1) body.top_k = p.topK;
  if (p.maxTokens !== undefined) body.max_tokens = p.maxTokens;
  if (p.stop?.length) body.stop = p.stop;
  if (p.seed !== undefined) body.seed = p.seed;
  if (p.repetitionPenalty !== undefined && p.repetitionPenalty !== 1)
    body.repetition_penalty = p.repetitionPenalty;
  return { ...body, ...(p.extra ?? {}) };
}

export function parseResponse(
  json: unknown,
  chat: boolean,
  where: string,
): Omit<OpenAICompletion, "attempts" | "endpoint" | "latencyMs"> {
  const obj = json as {
    choices?: {
      index?: number;
      text?: string;
      message?: { content?: string | null; reasoning_content?: string | null; reasoning?: string | null };
      finish_reason?: string | null;
    }[];
    usage?: { prompt_tokens?: number; completion_tokens?: number };
  };
  if (!obj || !Array.isArray(obj.choices)) {
    throw new RetryableError("bad-json", `response from ${where} has no "choices" array`);
  }
  const choices = obj.choices.map((c, i) => {
    let text: string;
    if (chat) {
      // Reasoning parsers (vLLM --reasoning-parser) split the thinking out; put it back so scoring sees
      // the whole response, as the model produced it.
      // vLLM ≤ 0.10 calls the field reasoning_content, later versions reasoning.
      const reasoning = c.message?.reasoning_content ?? c.message?.reasoning;
      const content = c.message?.content ?? "";
      text = reasoning ? `<think>\n${reasoning}\n</think>\n\n${content}` : content;
    } else text = c.text ?? "";
    return { index: c.index ?? i, text, finishReason: c.finish_reason ?? null };
  });
  choices.sort((a, b) => a.index - b.index);
  return {
    choices,
    promptTokens: obj.usage?.prompt_tokens ?? null,
    completionTokens: obj.usage?.completion_tokens ?? null,
  };
}

/** `token_id:123` (vLLM's `return_tokens_as_token_ids`) → 123. */
export function tokenIdOf(token: unknown): number | null {
  if (typeof token !== "string" || !token.startsWith("token_id:")) return null;
  const id = Number(token.slice("token_id:".length));
  return Number.isInteger(id) ? id : null;
}

/** vLLM's `prompt_logprobs`: per position null or {"<id>": {logprob, …}, …}; the prompt's own id is the one. */
export function promptLogprobsOf(raw: unknown, promptIds: number[] | null): (number | null)[] | null {
  if (!Array.isArray(raw)) return null;
  return raw.map((entry, t) => {
    if (!entry || typeof entry !== "object") return null;
    const byId = entry as Record<string, { logprob?: number }>;
    const own = promptIds ? byId[String(promptIds[t])] : undefined;
    const first = own ?? Object.values(byId)[0];
    return typeof first?.logprob === "number" ? first.logprob : null;
  });
}

export function parseTokenResponse(
  json: unknown,
  where: string,
): Omit<OpenAITokenCompletion, "attempts" | "endpoint" | "latencyMs"> {
  const obj = json as {
    choices?: {
      index?: number;
      text?: string;
      token_ids?: number[] | null;
      prompt_token_ids?: number[] | null;
      prompt_logprobs?: unknown;
      finish_reason?: string | null;
      logprobs?: { tokens?: unknown[]; token_logprobs?: (number | null)[] } | null;
    }[];
    prompt_token_ids?: number[] | null;
    prompt_logprobs?: unknown;
  };
  if (!obj || !Array.isArray(obj.choices)) {
    throw new RetryableError("bad-json", `response from ${where} has no "choices" array`);
  }
  const first = obj.choices[0];
  const promptTokenIds = first?.prompt_token_ids ?? obj.prompt_token_ids ?? null;
  const choices = obj.choices.map((c, i): OpenAITokenChoice => {
    const fromLogprobs = c.logprobs?.tokens?.map(tokenIdOf) ?? [];
    const tokenIds =
      c.token_ids ?? (fromLogprobs.every((t) => t !== null) ? (fromLogprobs as number[]) : null);
    const logprobs = c.logprobs?.token_logprobs;
    if (!tokenIds || !Array.isArray(logprobs)) {
      throw new KlearError(
        "SERVER_NO_TOKEN_IDS",
        `${where} returned no sampled token ids or log-probs (choice ${i})`,
        "use a server that honours return_token_ids / return_tokens_as_token_ids and logprobs (vLLM ≥ 0.10.2), or rollout.backend local",
      );
    }
    if (logprobs.length !== tokenIds.length || logprobs.some((l) => typeof l !== "number")) {
      throw new KlearError(
        "SERVER_BAD_LOGPROBS",
        `${where}: choice ${i} has ${tokenIds.length} tokens but ${logprobs.length} log-probs`,
        "check the server version; klear needs one log-prob per sampled token",
      );
    }
    return {
      index: c.index ?? i,
      tokenIds,
      logprobs: logprobs as number[],
      finishReason: c.finish_reason ?? null,
      text: c.text ?? "",
    };
  });
  choices.sort((a, b) => a.index - b.index);
  return {
    choices,
    promptTokenIds,
    promptLogprobs: promptLogprobsOf(first?.prompt_logprobs ?? obj.prompt_logprobs, promptTokenIds),
  };
}
