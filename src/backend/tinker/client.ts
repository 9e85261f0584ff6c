/**
 * A client for the Tinker training API (hosted Tinker, or a self-hosted server such as SkyRL's), written
 * from the public protocol of the open-source `tinker` SDK 0.25: JSON bodies except forward_backward's
 * request and the forward/forward_backward/sample results, which are protobuf (./proto.ts). Every
 * training call returns a future that `retrieve_future` long-polls.
 *
 * Faults: 408 (the long-poll's own timeout) re-polls at once; 429, 5xx and dropped connections retry with
 * jittered exponential backoff; 410 (a lost future) resubmits the original request. Training requests carry
 * a per-model `seq_id`, so a resubmission is idempotent: the server answers with the first request's
 * future (and 409 if the body differs), so a retried step is never applied twice. Every outcome is
 * counted in `stats`. The API key comes from the environment (TINKER_API_KEY) and is never logged.
 */
import { sleep } from "../../util/concurrency.js";
import { KlearError } from "../../util/errors.js";
import {
  decodeForwardBackwardOutput,
  decodeSampleResponse,
  encodeForwardBackwardRequest,
  type ForwardBackwardOutputMessage,
  type SampledSequenceMessage,
  type WireDatum,
} from "./proto.js";

const PROTO = "application/x-protobuf";
/** The SDK version whose protocol this client speaks (SkyRL 0.4.0 pins it). */
export const TINKER_SDK_VERSION = "0.25.0";

export interface TinkerClientOptions {
  /** Server root, e.g. http://127.0.0.1:8000 (default: $TINKER_BASE_URL). */
  baseUrl?: string;
  /** Default: $TINKER_API_KEY. Sent as X-API-Key; self-hosted SkyRL ignores it. */
  apiKey?: string;
  /** One HTTP call's limit (ms); a long-poll shorter than the server's hold re-polls. Default 60 000. */
  requestTimeoutMs?: number;
  /** Retries of one HTTP call on 429/5xx/connection errors before giving up. Default 8. */
  maxRetries?: number;
  /** First backoff (ms), doubled per retry with full jitter, capped at maxBackoffMs. Defaults 250 / 10 000. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Most time one future may take, polls included (ms). Default 30 min. */
  futureTimeoutMs?: number;
  /** Session heartbeat period (ms); the server unloads a silent session's models after ~300 s. Default 10 000. */
  heartbeatMs?: number;
  /** Injected for tests. */
  fetch?: typeof fetch;
}

/** Counts of every request's outcome, for the run's metrics. */
export interface TinkerClientStats {
  requests: number;
  retries: number;
  /** Retries by cause: "429", "5xx", "408", "network", "410" (resubmitted). */
  retryCauses: Record<string, number>;
  failed: number;
  futures: number;
  /** Wall time spent waiting on futures (ms). */
  futureWaitMs: number;
}

export interface LoraSettings {
  rank: number;
  seed?: number;
  /** Which layers get adapters (hosted Tinker honours these; SkyRL adapts every linear layer). */
  trainMlp?: boolean;
  trainAttn?: boolean;
  trainUnembed?: boolean;
}

export interface AdamSettings {
  learningRate: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm clip; 0 = off. SkyRL 0.4.0 ignores it. */
  gradClipNorm: number;
}

export interface SampleSettings {
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stopTokenIds?: readonly number[];
  numSamples: number;
}

/** The server reported that a request failed (bad input, unknown model, ...); retrying will not help. */
export class TinkerRequestError extends KlearError {
  constructor(
    readonly status: number,
    what: string,
    readonly detail: string,
  ) {
    super(
      "TINKER_REQUEST_FAILED",
      `the Tinker server rejected ${what} (HTTP ${status}): ${detail.slice(0, 500)}`,
      status === 404
        ? "the server lost this session or model (restarted?): resume the run from its last checkpoint"
        : "check the request against the server's limits (LoRA rank, adapters, sequence length)",
    );
  }
}

class Retryable extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

/** A future the server has lost (410): the request itself must be sent again. */
class FutureLost extends Error {}

type Body = { json: unknown } | { proto: Uint8Array };

export class TinkerClient {
  readonly baseUrl: string;
  readonly stats: TinkerClientStats = {
    requests: 0,
    retries: 0,
    retryCauses: {},
    failed: 0,
    futures: 0,
    futureWaitMs: 0,
  };
  private readonly apiKey: string | undefined;
  private readonly opts: Required<Omit<TinkerClientOptions, "baseUrl" | "apiKey" | "fetch">>;
  private readonly fetchFn: typeof fetch;
  private heartbeat: NodeJS.Timeout | null = null;
  sessionId: string | null = null;

  constructor(options: TinkerClientOptions = {}) {
    const baseUrl = options.baseUrl ?? process.env.TINKER_BASE_URL;
    if (!baseUrl) {
      throw new KlearError(
        "TINKER_NO_URL",
        "no Tinker server address given",
        "set backend.tinker.baseUrl (or TINKER_BASE_URL), e.g. http://127.0.0.1:8000 for a local SkyRL server",
      );
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? process.env.TINKER_API_KEY;
    this.fetchFn = options.fetch ?? fetch;
    this.opts = {
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      maxRetries: options.maxRetries ?? 8,
      backoffMs: options.backoffMs ?? 250,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
      futureTimeoutMs: options.futureTimeoutMs ?? 30 * 60_000,
      heartbeatMs: options.heartbeatMs ?? 10_000,
    };
  }

  private headers(accept: string, contentType: string): Record<string, string> {
    const h: Record<string, string> = { accept, "content-type": contentType };
    if (this.apiKey) h["x-api-key"] = this.apiKey;
    return h;
  }

  /** One HTTP call, no retries: the answer, or Retryable / TinkerRequestError / FutureLost. */
  private async once(method: string, path: string, body: Body | null, accept: string): Promise<Response> {
    this.stats.requests++;
    let res: Response;
    try {
      res = await this.fetchFn(`${this.baseUrl}${path}`, {
        method,
        headers: this.headers(accept, body && "proto" in body ? PROTO : "application/json"),
        body: body === null ? undefined : "proto" in body ? body.proto : JSON.stringify(body.json),
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs),
      });
    } catch (e) {
      const err = e as Error;
      if (err.name === "TimeoutError") throw new Retryable("408", `${path} timed out on the client`);
      throw new Retryable("network", `${path}: ${err.message}${err.cause ? ` (${String(err.cause)})` : ""}`);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => "");
    if (res.status === 408) throw new Retryable("408", `${path}: server long-poll timeout`);
    if (res.status === 410) throw new FutureLost(text);
    if (res.status === 429 || res.status >= 500) {
      const after = Number(res.headers.get("retry-after"));
      throw new Retryable(
        res.status === 429 ? "429" : "5xx",
        `${path} answered HTTP ${res.status}: ${text.slice(0, 200)}`,
        Number.isFinite(after) && after > 0 ? after * 1000 : 0,
      );
    }
    this.stats.failed++;
    let detail = text;
    try {
      const parsed = JSON.parse(text) as { detail?: unknown };
      if (parsed.detail !== undefined)
        detail = typeof parsed.detail === "string" ? parsed.detail : JSON.stringify(parsed.detail);
    } catch {}
    throw new TinkerRequestError(res.status, path, detail);
  }

  private backoff(attempt: number, e: Retryable): Promise<void> {
    this.stats.retries++;
    this.stats.retryCauses[e.kind] = (this.stats.retryCauses[e.kind] ?? 0) + 1;
    if (e.kind === "408") return Promise.resolve();
    const cap = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** attempt);
    return sleep(Math.max(e.retryAfterMs, Math.random() * cap));
  }

  /** An HTTP call retried on transient faults; the same body is resent, so seq_id'd requests stay idempotent. */
  async call(
    method: string,
    path: string,
    body: Body | null,
    accept = "application/json",
  ): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(method, path, body, accept);
      } catch (e) {
        if (!(e instanceof Retryable)) throw e;
        if (attempt >= this.opts.maxRetries) {
          this.stats.failed++;
          throw new KlearError(
            "TINKER_UNREACHABLE",
            `${this.baseUrl}${path} kept failing after ${attempt + 1} tries: ${e.message}`,
            "check that the Tinker server is up (its healthz route), or raise backend.tinker.maxRetries",
          );
        }
        await this.backoff(attempt, e);
      }
    }
  }

  async postJson<T>(path: string, json: unknown): Promise<T> {
    const res = await this.call("POST", path, { json });
    return (await res.json()) as T;
  }

  /**
   * Submits a request that answers with a future, then long-polls it. `submit` is called again when the
   * server reports the future lost (410); with a seq_id the resubmission maps onto the same request.
   */
  async future(
    submit: () => Promise<{ request_id: string }>,
    proto: boolean,
    what: string,
  ): Promise<Response> {
    const start = Date.now();
    this.stats.futures++;
    try {
      for (let resubmits = 0; ; resubmits++) {
        const { request_id } = await submit();
        try {
          return await this.poll(request_id, proto, start, what);
        } catch (e) {
          if (!(e instanceof FutureLost) || resubmits >= this.opts.maxRetries) throw e;
          this.stats.retries++;
          this.stats.retryCauses["410"] = (this.stats.retryCauses["410"] ?? 0) + 1;
        }
      }
    } finally {
      this.stats.futureWaitMs += Date.now() - start;
    }
  }

  private async poll(requestId: string, proto: boolean, start: number, what: string): Promise<Response> {
    const accept = proto ? PROTO : "application/json";
    for (let attempt = 0; ; ) {
      if (Date.now() - start > this.opts.futureTimeoutMs) {
        this.stats.failed++;
        throw new KlearError(
          "TINKER_FUTURE_TIMEOUT",
          `${what} (request ${requestId}) did not finish within ${this.opts.futureTimeoutMs / 1000} s`,
          "the server may be overloaded or stuck: check its log, or raise backend.tinker.futureTimeoutMs",
        );
      }
      let res: Response;
      try {
        res = await this.once("POST", "/api/v1/retrieve_future", { json: { request_id: requestId } }, accept);
      } catch (e) {
        if (!(e instanceof Retryable)) {
          if (e instanceof TinkerRequestError) throw new TinkerRequestError(e.status, what, e.detail);
          throw e;
        }
        if (e.kind === "408") {
          await this.backoff(0, e);
          continue;
        }
        if (attempt >= this.opts.maxRetries) throw e;
        await this.backoff(attempt++, e);
        continue;
      }
      attempt = 0;
      if ((res.headers.get("content-type") ?? "").includes(PROTO)) return res;
      // Hosted Tinker answers JSON while the request is queued ({type: "try_again"}) or failed ({error}).
      const json = (await res.clone().json()) as { type?: string; error?: string } | null;
      if (json && json.type === "try_again") {
        await sleep(Math.min(1000, this.opts.backoffMs));
        continue;
      }
      if (json && typeof json.error === "string") {
        this.stats.failed++;
        throw new TinkerRequestError(400, what, json.error);
      }
      return res;
    }
  }

  /** JSON result of a future. */
  async futureJson<T>(submit: () => Promise<{ request_id: string }>, what: string): Promise<T> {
    const res = await this.future(submit, false, what);
    return (await res.json()) as T;
  }

  /** Opens a session and keeps it alive with heartbeats until `close`. */
  async createSession(tags: readonly string[] = ["klear"]): Promise<string> {
    const res = await this.postJson<{ session_id: string }>("/api/v1/create_session", {
      tags,
      user_metadata: null,
      sdk_version: TINKER_SDK_VERSION,
      type: "create_session",
    });
    this.sessionId = res.session_id;
    this.heartbeat = setInterval(() => {
      // A missed beat is harmless (the server allows minutes); the next one retries.
      this.once(
        "POST",
        "/api/v1/session_heartbeat",
        { json: { session_id: res.session_id, type: "session_heartbeat" } },
        "application/json",
      ).catch(() => {});
    }, this.opts.heartbeatMs);
    this.heartbeat.unref();
    return res.session_id;
  }

  close(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  async healthy(): Promise<boolean> {
    try {
      await this.once("GET", "/api/v1/healthz", null, "application/json");
      return true;
    } catch {
      return false;
    }
  }

  /** Creates a LoRA training model on `baseModel` and waits until the server has built it. */
  async createModel(baseModel: string, lora: LoraSettings, modelSeqId = 0): Promise<TinkerModel> {
    const session = this.requireSession();
    const created = await this.postJson<{ model_id: string; request_id: string }>("/api/v1/create_model", {
      session_id: session,
      model_seq_id: modelSeqId,
      base_model: baseModel,
      lora_config: {
        rank: lora.rank,
        ...(lora.seed === undefined ? {} : { seed: lora.seed }),
        train_mlp: lora.trainMlp ?? true,
        train_attn: lora.trainAttn ?? true,
        train_unembed: lora.trainUnembed ?? true,
      },
      type: "create_model",
    });
    await this.futureJson(async () => ({ request_id: created.request_id }), "create_model");
    return new TinkerModel(this, created.model_id, baseModel);
  }

  /** Samples from saved sampler weights (`tinker://…/sampler_weights/…`) or the base model. */
  async sample(
    source: { modelPath: string } | { baseModel: string },
    promptTokens: readonly number[],
    s: SampleSettings,
  ): Promise<SampledSequenceMessage[]> {
    const body = {
      num_samples: s.numSamples,
      prompt: { chunks: [{ type: "encoded_text", tokens: promptTokens }] },
      sampling_params: {
        max_tokens: s.maxTokens,
        temperature: s.temperature,
        top_k: s.topK ?? -1,
        top_p: s.topP ?? 1,
        ...(s.seed === undefined ? {} : { seed: s.seed }),
        ...(s.stopTokenIds && s.stopTokenIds.length > 0 ? { stop: s.stopTokenIds } : {}),
      },
      ...("modelPath" in source ? { model_path: source.modelPath } : { base_model: source.baseModel }),
      type: "sample",
    };
    const res = await this.future(() => this.postJson("/api/v1/asample", body), true, "sample");
    return decodeSampleResponse(new Uint8Array(await res.arrayBuffer()));
  }

  requireSession(): string {
    if (this.sessionId === null) {
      throw new KlearError("TINKER_NO_SESSION", "no Tinker session is open", "call createSession() first");
    }
    return this.sessionId;
  }
}

/** A training model (LoRA adapter) on the server. Requests carry seq_ids 1, 2, 3, … in submission order. */
export class TinkerModel {
  private nextSeqId = 1;

  constructor(
    readonly client: TinkerClient,
    readonly modelId: string,
    readonly baseModel: string,
  ) {}

  private seq(): number {
    return this.nextSeqId++;
  }

  private async modelPass(
    data: readonly WireDatum[],
    lossFn: string,
    forwardOnly: boolean,
    config?: Record<string, number>,
  ) {
    const proto = encodeForwardBackwardRequest({
      modelId: this.modelId,
      seqId: this.seq(),
      data,
      lossFn,
      lossFnConfig: config,
      forwardOnly,
    });
    const what = forwardOnly ? "forward" : "forward_backward";
    const res = await this.client.future(
      async () =>
        (await (await this.client.call("POST", "/api/v1/forward_backward", { proto })).json()) as {
          request_id: string;
        },
      true,
      what,
    );
    const out: ForwardBackwardOutputMessage = decodeForwardBackwardOutput(
      new Uint8Array(await res.arrayBuffer()),
    );
    if (out.outputs.length !== data.length) {
      throw new KlearError(
        "TINKER_PROTO_INVALID",
        `${what} returned ${out.outputs.length} outputs for ${data.length} sequences`,
        "check the server version (this client speaks the tinker SDK 0.25 protocol)",
      );
    }
    return out;
  }

  /** Per-position log-probs of each datum's target tokens, nothing accumulated. */
  forward(data: readonly WireDatum[], lossFn = "cross_entropy"): Promise<ForwardBackwardOutputMessage> {
    return this.modelPass(data, lossFn, true);
  }

  /** Accumulates the gradient of `lossFn` over `data` (applied by the next optimStep). */
  forwardBackward(
    data: readonly WireDatum[],
    lossFn: string,
    config?: Record<string, number>,
  ): Promise<ForwardBackwardOutputMessage> {
    return this.modelPass(data, lossFn, false, config);
  }

  async optimStep(adam: AdamSettings): Promise<Record<string, number>> {
    const body = {
      model_id: this.modelId,
      seq_id: this.seq(),
      adam_params: {
        learning_rate: adam.learningRate,
        beta1: adam.beta1,
        beta2: adam.beta2,
        eps: adam.eps,
        weight_decay: adam.weightDecay,
        grad_clip_norm: adam.gradClipNorm,
      },
      type: "optim_step",
    };
    const out = await this.client.futureJson<{ metrics?: Record<string, number> | null }>(
      () => this.client.postJson("/api/v1/optim_step", body),
      "optim_step",
    );
    return out.metrics ?? {};
  }

  /** Saves weights and optimizer state under `name`; returns the `tinker://…/weights/name` path. */
  async saveState(name: string): Promise<string> {
    const body = { model_id: this.modelId, path: name, seq_id: this.seq(), type: "save_weights" };
    const out = await this.client.futureJson<{ path: string }>(
      () => this.client.postJson("/api/v1/save_weights", body),
      "save_weights",
    );
    return out.path;
  }

  /** Loads a saved state (only as the model's first operation, as the protocol requires). */
  async loadState(path: string, optimizer: boolean): Promise<void> {
    const body = { model_id: this.modelId, path, optimizer, seq_id: this.seq(), type: "load_weights" };
    await this.client.futureJson(() => this.client.postJson("/api/v1/load_weights", body), "load_weights");
  }

  /** Frees the model's adapter slot on the server (a server holds a fixed number). */
  async unload(): Promise<void> {
    const body = { model_id: this.modelId, type: "unload_model" };
    await this.client.futureJson(() => this.client.postJson("/api/v1/unload_model", body), "unload_model");
  }

  /** Exports the current weights for sampling; returns the `tinker://…/sampler_weights/name` path. */
  async saveForSampler(name: string): Promise<string> {
    const body = { model_id: this.modelId, path: name, seq_id: this.seq(), type: "save_weights_for_sampler" };
    const out = await this.client.futureJson<{ path: string }>(
      () => this.client.postJson("/api/v1/save_weights_for_sampler", body),
      "save_weights_for_sampler",
    );
    return out.path;
  }
}
