/**
 * A fake Tinker server for fault injection only (the real one is SkyRL's, started by the tinker suite):
 * the routes klear uses, futures answered from memory, training requests deduplicated by (model, seq_id)
 * as the real server does, and a queue of faults to answer with instead (408, 410, 429, 5xx, or a dropped
 * connection after the request was recorded).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  decodeForwardBackwardRequest,
  encodeForwardBackwardOutput,
  encodeSampleResponse,
  type ForwardBackwardRequestMessage,
} from "../../src/backend/tinker/proto.js";

export interface Fault {
  route: string;
  /** HTTP status to answer with, or "drop": handle the request, then destroy the socket unanswered. */
  answer: number | "drop";
  retryAfter?: number;
}

interface FutureEntry {
  kind: string;
  result: unknown;
}

export class FakeTinkerServer {
  private server: Server | null = null;
  readonly faults: Fault[] = [];
  /** Every request received: route and (for protobuf bodies) the decoded request. */
  readonly log: {
    route: string;
    apiKey: string | undefined;
    fb?: ForwardBackwardRequestMessage;
    json?: unknown;
  }[] = [];
  private futures = new Map<string, FutureEntry>();
  private bySeq = new Map<string, { id: string; body: string }>();
  private nextId = 1;
  /** Optimizer steps applied per model (a retried step must count once). */
  readonly steps = new Map<string, number>();
  /** Futures that stay pending: retrieve_future answers 408 for them until released. */
  readonly stuck = new Set<string>();
  /** Fake log-prob of target token y after s steps. */
  logprob = (y: number, steps: number) => -1 - 0.01 * (y % 10) - 0.1 * steps;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    });
    await new Promise<void>((r) => this.server?.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  private future(kind: string, result: unknown, modelId?: string, seqId?: number, body?: string): string {
    if (modelId !== undefined && seqId) {
      const key = `${modelId}#${seqId}`;
      const prior = this.bySeq.get(key);
      if (prior) {
        if (prior.body !== body)
          throw Object.assign(new Error("Training request sequence number was reused"), { status: 409 });
        return prior.id;
      }
      const id = String(this.nextId++);
      this.bySeq.set(key, { id, body: body ?? "" });
      this.futures.set(id, {
        kind,
        result: typeof result === "function" ? (result as () => unknown)() : result,
      });
      return id;
    }
    const id = String(this.nextId++);
    this.futures.set(id, {
      kind,
      result: typeof result === "function" ? (result as () => unknown)() : result,
    });
    return id;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = (req.url ?? "").split("?")[0];
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const apiKey = req.headers["x-api-key"] as string | undefined;
    const faultAt = this.faults.findIndex((f) => f.route === route);
    const fault = faultAt >= 0 ? this.faults.splice(faultAt, 1)[0] : null;
    if (fault && fault.answer !== "drop") {
      this.log.push({ route, apiKey });
      res.statusCode = fault.answer;
      if (fault.retryAfter !== undefined) res.setHeader("retry-after", String(fault.retryAfter));
      res.end(JSON.stringify({ detail: `injected ${fault.answer}` }));
      return;
    }
    let out: { status: number; type: string; body: Buffer | string };
    try {
      out = this.route(route, raw, apiKey);
    } catch (e) {
      const status = (e as { status?: number }).status ?? 500;
      out = { status, type: "application/json", body: JSON.stringify({ detail: (e as Error).message }) };
    }
    if (fault?.answer === "drop") {
      req.socket.destroy();
      return;
    }
    res.statusCode = out.status;
    res.setHeader("content-type", out.type);
    res.end(out.body);
  }

  private route(
    route: string,
    raw: Buffer,
    apiKey: string | undefined,
  ): { status: number; type: string; body: Buffer | string } {
    const json = (v: unknown) => ({ status: 200, type: "application/json", body: JSON.stringify(v) });
    if (route === "/api/v1/forward_backward") {
      const fb = decodeForwardBackwardRequest(new Uint8Array(raw));
      this.log.push({ route, apiKey, fb });
      const steps = this.steps.get(fb.modelId) ?? 0;
      const id = this.future(
        fb.forwardOnly ? "forward" : "forward_backward",
        () =>
          fb.data.map((d) => {
            const targets = Array.from(d.lossFnInputs.target_tokens.data);
            return {
              logprobs: targets.map((y) => this.logprob(y, steps)),
              elementwise_loss: targets.map(() => 0),
            };
          }),
        fb.modelId,
        fb.seqId,
        raw.toString("base64"),
      );
      return json({ future_id: id, request_id: id });
    }
    const body = raw.length > 0 ? (JSON.parse(raw.toString("utf8")) as Record<string, unknown>) : {};
    this.log.push({ route, apiKey, json: body });
    switch (route) {
      case "/api/v1/healthz":
        return json({ status: "ok" });
      case "/api/v1/create_session":
        return json({ session_id: "session_fake" });
      case "/api/v1/session_heartbeat":
        return json({ type: "session_heartbeat" });
      case "/api/v1/create_model": {
        const modelId = `model_${this.nextId}`;
        const id = this.future("create_model", { model_id: modelId });
        return json({ model_id: modelId, request_id: id });
      }
      case "/api/v1/optim_step": {
        const modelId = String(body.model_id);
        const id = this.future(
          "optim_step",
          () => {
            this.steps.set(modelId, (this.steps.get(modelId) ?? 0) + 1);
            return { metrics: { "skyrl.ai/grad_norm": 1.5 } };
          },
          modelId,
          Number(body.seq_id),
          JSON.stringify(body),
        );
        return json({ request_id: id });
      }
      case "/api/v1/save_weights":
        return json({
          request_id: this.future("save", { path: `tinker://${body.model_id}/weights/${body.path}` }),
        });
      case "/api/v1/save_weights_for_sampler":
        return json({
          request_id: this.future("save", { path: `tinker://${body.model_id}/sampler_weights/${body.path}` }),
        });
      case "/api/v1/load_weights":
        return json({ request_id: this.future("load", { type: "load_weights" }) });
      case "/api/v1/asample": {
        const n = Number(body.num_samples ?? 1);
        const seqs = Array.from({ length: n }, (_, k) => ({
          stopReason: "length" as const,
          tokens: [40 + k, 41 + k],
          logprobs: [-0.5, -0.25],
        }));
        return json({ request_id: this.future("sample", seqs) });
      }
      case "/api/v1/retrieve_future": {
        const id = String(body.request_id);
        if (this.stuck.has(id))
          return { status: 408, type: "application/json", body: JSON.stringify({ detail: "Timeout" }) };
        const f = this.futures.get(id);
        if (!f)
          return {
            status: 404,
            type: "application/json",
            body: JSON.stringify({ detail: "Future not found" }),
          };
        if (f.kind === "forward" || f.kind === "forward_backward") {
          return {
            status: 200,
            type: "application/x-protobuf",
            body: Buffer.from(encodeForwardBackwardOutput(f.result as Record<string, number[]>[])),
          };
        }
        if (f.kind === "sample") {
          return {
            status: 200,
            type: "application/x-protobuf",
            body: Buffer.from(encodeSampleResponse(f.result as never)),
          };
        }
        return json(f.result);
      }
      default:
        return {
          status: 404,
          type: "application/json",
          body: JSON.stringify({ detail: `no route ${route}` }),
        };
    }
  }
}
