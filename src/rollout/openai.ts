import http from "node:http";
import https from "node:https";
import { ConfigError, KlearError } from "../util/errors.js";
import {
  type OpenAIChatMessage,
  type OpenAIClientOptions,
  type OpenAIClientStats,
  type OpenAICompletion,
  type OpenAISamplingParams,
  type OpenAITokenCompletion,
  type OpenAITokenParams,
  parseResponse,
  parseTokenResponse,
  RetryableError,
  samplingBody,
} from "./openai-wire.js";

export type {
  OpenAIChatMessage,
  OpenAIChoice,
  OpenAIClientOptions,
  OpenAIClientStats,
  OpenAICompletion,
  OpenAISamplingParams,
  OpenAITokenChoice,
  OpenAITokenCompletion,
  OpenAITokenParams,
} from "./openai-wire.js";

/**
 * A client for OpenAI-compatible inference servers (vLLM, SGLang, TGI, llama.cpp): /v1/completions and
 * /v1/chat/completions, with bounded concurrency, retries with jittered exponential backoff on the
 * failures a busy cluster produces (429, 5xx, timeouts, dropped connections), per-request timeouts and
 * least-loaded balancing over several endpoints. It speaks plain node:http with keep-alive because the
 * harness must never be the bottleneck of a cluster (thousands of requests per second).
 */

interface Endpoint {
  url: URL;
  /** The server's root path (the base URL without `/v1`), where vLLM's and SGLang's admin routes live. */
  root: string;
  inFlight: number;
  agent: http.Agent;
}

export class OpenAIClient {
  private readonly endpoints: Endpoint[];
  private readonly opts: Required<Omit<OpenAIClientOptions, "apiKey" | "headers" | "endpoints">>;
  private readonly headers: Record<string, string>;
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private rr = 0;
  /** Set by `cancel`: no attempt starts or is retried any more. */
  private cancelled = false;
  /** Wakes the backoff sleeps, so a cancel ends a request at once. */
  private readonly wakeups = new Set<() => void>();
  readonly stats: OpenAIClientStats = { requests: 0, succeeded: 0, failed: 0, retries: 0, retryCauses: {} };

  constructor(options: OpenAIClientOptions) {
    if (!options.endpoints.length) {
      throw new ConfigError(
        "no inference endpoint given",
        "pass --endpoint URL (repeat or comma-separate for several)",
      );
    }
    const concurrency = options.concurrency ?? 64;
    this.opts = {
      concurrency,
      timeoutMs: options.timeoutMs ?? 600_000,
      maxRetries: options.maxRetries ?? 8,
      backoffMs: options.backoffMs ?? 500,
      maxBackoffMs: options.maxBackoffMs ?? 30_000,
    };
    if (!(concurrency >= 1))
      throw new ConfigError(`concurrency ${concurrency} < 1`, "use --concurrency 1 or more");
    this.endpoints = options.endpoints.map((raw) => {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new ConfigError(`endpoint "${raw}" is not a URL`, "use e.g. http://127.0.0.1:8000/v1");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new ConfigError(`endpoint "${raw}" is not http(s)`, "use e.g. http://127.0.0.1:8000/v1");
      }
      // Accept both `http://h:p` and `http://h:p/v1`: the routes are appended below.
      let path = url.pathname.replace(/\/+$/, "");
      if (!path.endsWith("/v1")) path += "/v1";
      url.pathname = path;
      const root = path.slice(0, -"/v1".length);
      const AgentClass = url.protocol === "https:" ? https.Agent : http.Agent;
      return { url, root, inFlight: 0, agent: new AgentClass({ keepAlive: true, maxSockets: concurrency }) };
    });
    this.headers = { "content-type": "application/json", ...(options.headers ?? {}) };
    if (options.apiKey) this.headers.authorization = `Bearer ${options.apiKey}`;
  }

  /** POST /v1/completions with a raw prompt (the caller applied any chat template). */
  complete(prompt: string, params: OpenAISamplingParams): Promise<OpenAICompletion> {
    return this.request("/completions", { prompt, ...samplingBody(params) }, (json, where) =>
      parseResponse(json, false, where),
    );
  }

  /**
   * POST /v1/completions with the prompt as token ids; reads back the sampled ids and their log-probs
   * (vLLM ≥ 0.10: `return_token_ids`, or `return_tokens_as_token_ids` in the log-probs). Nothing is
   * tokenised or detokenised on klear's side, so the ids are exactly those the server sampled.
   */
  completeTokens(
    prompt: readonly number[],
    params: OpenAITokenParams,
    opts: { endpoint?: number } = {},
  ): Promise<OpenAITokenCompletion> {
    const body: Record<string, unknown> = {
      prompt,
      ...samplingBody({ ...params, extra: undefined }),
      logprobs: 0,
      return_token_ids: true,
      return_tokens_as_token_ids: true,
      skip_special_tokens: false,
      // Only the stop ids klear names end a completion, as in the local engine.
      ignore_eos: true,
      ...(params.stopTokenIds?.length ? { stop_token_ids: params.stopTokenIds } : {}),
      ...(params.promptLogprobs ? { prompt_logprobs: 0 } : {}),
      ...(params.extra ?? {}),
    };
    return this.request("/completions", body, parseTokenResponse, opts.endpoint);
  }

  /**
   * A request to a server's own (non-OpenAI) route on one endpoint, e.g. vLLM's `/pause` or SGLang's
   * `/update_weights_from_disk`, with the same retries. `path` may carry a query string.
   */
  async admin(endpointIndex: number, method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    const endpoint = this.endpoints[endpointIndex];
    if (!endpoint) throw new KlearError("INTERNAL", `no endpoint ${endpointIndex}`, "report this as a bug");
    const res = await this.send(
      () => endpoint,
      (e) => e.root + path,
      method,
      body === undefined ? null : JSON.stringify(body),
      (json) => json,
    );
    return res.parsed;
  }

  /** POST to a server's own route (e.g. SGLang's /generate) on the least-loaded endpoint, with retries. */
  async postRoot(path: string, body: unknown): Promise<unknown> {
    const res = await this.send(
      (last) => this.pickEndpoint(last),
      (e) => e.root + path,
      "POST",
      JSON.stringify(body),
      (json) => json,
    );
    return res.parsed;
  }

  /** The endpoints' origins + root paths, in the order given (indexes for `admin`). */
  get endpointUrls(): string[] {
    return this.endpoints.map((e) => e.url.origin + e.root);
  }

  /** POST /v1/chat/completions; the server applies the model's chat template. */
  chat(messages: OpenAIChatMessage[], params: OpenAISamplingParams): Promise<OpenAICompletion> {
    return this.request("/chat/completions", { messages, ...samplingBody(params) }, (json, where) =>
      parseResponse(json, true, where),
    );
  }

  /** Closes idle keep-alive sockets so the process can exit. */
  close(): void {
    for (const e of this.endpoints) e.agent.destroy();
  }

  /**
   * Abandons every request: those in flight have their connections cut, and they and any later one
   * fail with INFERENCE_CANCELLED instead of being retried (a run stopping while it samples ahead).
   */
  cancel(): void {
    this.cancelled = true;
    for (const wake of this.wakeups) wake();
    this.close();
  }

  private throwIfCancelled(): void {
    if (this.cancelled) {
      throw new KlearError(
        "INFERENCE_CANCELLED",
        "the request was cancelled: its client was stopped",
        "nothing to fix: the run that made it is stopping",
      );
    }
  }

  /** null when a slot was free (no promise to await: the common case costs nothing), else the wait. */
  private acquire(): Promise<void> | null {
    if (this.active < this.opts.concurrency) {
      this.active++;
      return null;
    }
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active--;
  }

  private pickEndpoint(avoid: Endpoint | null): Endpoint {
    let best: Endpoint | null = null;
    const n = this.endpoints.length;
    // Least in-flight first; the round-robin start spreads ties evenly.
    for (let i = 0; i < n; i++) {
      const e = this.endpoints[(this.rr + i) % n];
      if (e === avoid && n > 1) continue;
      if (best === null || e.inFlight < best.inFlight) best = e;
    }
    this.rr = (this.rr + 1) % n;
    return best ?? this.endpoints[0];
  }

  private async request<T>(
    route: string,
    body: Record<string, unknown>,
    parse: (json: unknown, where: string) => T,
    pinned?: number,
  ): Promise<T & { attempts: number; endpoint: string; latencyMs: number }> {
    const fixed = pinned === undefined ? undefined : this.endpoints[pinned];
    // A string body lets node:http send the headers and the body in one write.
    const res = await this.send(
      (last) => fixed ?? this.pickEndpoint(last),
      (e) => e.url.pathname + route,
      "POST",
      JSON.stringify(body),
      parse,
    );
    return { ...res.parsed, attempts: res.attempts, endpoint: res.endpoint, latencyMs: res.latencyMs };
  }

  private async send<T>(
    pick: (last: Endpoint | null) => Endpoint,
    pathOf: (endpoint: Endpoint) => string,
    method: "GET" | "POST",
    payload: string | null,
    parse: (json: unknown, where: string) => T,
  ): Promise<{ parsed: T; attempts: number; endpoint: string; latencyMs: number }> {
    const wait = this.acquire();
    if (wait) await wait;
    this.stats.requests++;
    const payloadBytes = payload === null ? 0 : Buffer.byteLength(payload);
    let last: Endpoint | null = null;
    try {
      for (let attempt = 0; ; attempt++) {
        this.throwIfCancelled();
        const endpoint = pick(last);
        last = endpoint;
        const fullPath = pathOf(endpoint);
        const t0 = performance.now();
        try {
          endpoint.inFlight++;
          const json = await this.post(endpoint, method, fullPath, payload, payloadBytes);
          const parsed = parse(json, endpoint.url.origin + fullPath);
          this.stats.succeeded++;
          return {
            parsed,
            attempts: attempt + 1,
            endpoint: endpoint.url.origin,
            latencyMs: performance.now() - t0,
          };
        } catch (e) {
          this.throwIfCancelled();
          if (!(e instanceof RetryableError) || attempt >= this.opts.maxRetries) {
            this.stats.failed++;
            if (e instanceof RetryableError) {
              throw new KlearError(
                "INFERENCE_FAILED",
                `request to ${endpoint.url.origin}${fullPath} failed after ${attempt + 1} attempts: ${e.message}`,
                "check that the server is up and not overloaded; raise --max-retries or --timeout, or lower --concurrency",
              );
            }
            throw e;
          }
          this.stats.retries++;
          this.stats.retryCauses[e.kind] = (this.stats.retryCauses[e.kind] ?? 0) + 1;
          const cap = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** attempt);
          const delay = Math.max(e.retryAfterMs ?? 0, Math.random() * cap);
          await new Promise<void>((wake) => {
            const done = () => {
              clearTimeout(timer);
              this.wakeups.delete(done);
              wake();
            };
            const timer = setTimeout(done, delay);
            this.wakeups.add(done);
          });
        } finally {
          endpoint.inFlight--;
        }
      }
    } finally {
      this.release();
    }
  }

  private post(
    endpoint: Endpoint,
    method: "GET" | "POST",
    path: string,
    payload: string | null,
    payloadBytes: number,
  ): Promise<unknown> {
    const url = endpoint.url;
    const mod = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(err);
      };
      const req = mod.request(
        {
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port,
          path,
          method,
          agent: endpoint.agent,
          headers: { ...this.headers, "content-length": payloadBytes },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("aborted", () => fail(new RetryableError("connection", "connection dropped mid-response")));
          res.on("error", (err) => fail(new RetryableError("connection", err.message)));
          res.on("end", () => {
            if (settled) return;
            if (!res.complete)
              return fail(new RetryableError("connection", "connection dropped mid-response"));
            const text = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString("utf8");
            const status = res.statusCode ?? 0;
            if (status === 429 || status >= 500) {
              const ra = Number(res.headers["retry-after"]);
              return fail(
                new RetryableError(
                  String(status),
                  `HTTP ${status}: ${text.slice(0, 200)}`,
                  Number.isFinite(ra) ? Math.min(ra * 1000, this.opts.maxBackoffMs) : undefined,
                ),
              );
            }
            if (status < 200 || status >= 300) {
              return fail(
                new KlearError(
                  "INFERENCE_REJECTED",
                  `${url.origin}${path} answered HTTP ${status}: ${text.slice(0, 500)}`,
                  status === 404
                    ? "check the endpoint URL and that --model names a model the server serves"
                    : "check the request parameters (model name, max tokens within the context window)",
                ),
              );
            }
            let json: unknown;
            try {
              // Admin routes (vLLM's /pause, /health) may answer 200 with an empty body.
              json = text.trim() === "" ? null : JSON.parse(text);
            } catch {
              // A truncated body behind a proxy looks like this; the next attempt usually succeeds.
              return fail(new RetryableError("bad-json", `response is not JSON: ${text.slice(0, 200)}`));
            }
            settled = true;
            clearTimeout(timer);
            resolve(json);
          });
        },
      );
      const timer = setTimeout(
        () => fail(new RetryableError("timeout", `no complete response within ${this.opts.timeoutMs} ms`)),
        this.opts.timeoutMs,
      );
      req.on("error", (err: NodeJS.ErrnoException) =>
        fail(new RetryableError("connection", `${err.code ?? ""} ${err.message}`.trim())),
      );
      req.end(payload ?? undefined);
    });
  }
}
