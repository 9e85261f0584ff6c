import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A fake OpenAI-compatible server on 127.0.0.1 for tests and benchmarks: canned responses for
 * /v1/completions and /v1/chat/completions, and faults injected on purpose (HTTP 500/429, requests that
 * never answer, connections dropped before or in the middle of a response, slow responses).
 *
 *   const fake = await startFakeOpenAI({ respond: (req) => "\\boxed{4}", faults: { status500: 0.1 } });
 *   ... new OpenAIClient({ endpoints: [fake.url] }) ...
 *   await fake.close();
 */

export interface FakeRequest {
  route: "completions" | "chat";
  body: Record<string, unknown>;
  /** The user/prompt text: the last user message for chat, the prompt for completions. */
  prompt: string;
  seed: number | undefined;
  /** 0-based count of requests received so far (faulty ones included). */
  index: number;
}

export type FakeReply = string | { text: string; finishReason?: string; completionTokens?: number };

export type FakeFault = "500" | "429" | "hang" | "drop" | "drop-mid-body" | "slow";

export interface FakeOpenAIOptions {
  /** The completion text(s) for a request; an array answers n > 1 choices. Default: "ok". */
  respond?: (req: FakeRequest) => FakeReply | FakeReply[];
  /**
   * Fault probabilities per request, drawn from a seeded generator so a test sees the same faults
   * every run. `hang` never answers (the client's timeout must fire); `drop` destroys the socket before
   * any byte; `drop-mid-body` sends headers and half a body, then destroys it.
   */
  faults?: Partial<Record<"status500" | "status429" | "hang" | "drop" | "dropMidBody" | "slow", number>>;
  /** Or an explicit plan: the fault for the i-th request (null for none); overrides `faults`. */
  faultPlan?: (index: number, req: FakeRequest) => FakeFault | null;
  /** Delay of a "slow" response (ms, default 200). */
  slowMs?: number;
  /** Seed for the fault draws (default 1). */
  seed?: number;
  port?: number;
}

export interface FakeOpenAIStats {
  /** Requests received, faulty ones included. */
  requests: number;
  /** Requests answered with a complete 200 response. */
  answered: number;
  faults: Record<FakeFault, number>;
  /** Successful answers per "prompt\u0000seed" key: a test can check each sample was served once. */
  answeredByKey: Map<string, number>;
  /** Most requests open at once (received, not yet answered or dropped). */
  maxOpen: number;
}

export interface FakeOpenAI {
  /** Base URL including /v1, e.g. http://127.0.0.1:43121/v1. */
  url: string;
  port: number;
  stats: FakeOpenAIStats;
  close(): Promise<void>;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startFakeOpenAI(opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const rand = mulberry32(opts.seed ?? 1);
  const stats: FakeOpenAIStats = {
    requests: 0,
    answered: 0,
    faults: { "500": 0, "429": 0, hang: 0, drop: 0, "drop-mid-body": 0, slow: 0 },
    answeredByKey: new Map(),
    maxOpen: 0,
  };
  let open = 0;
  const hanging = new Set<http.ServerResponse>();
  const drawFault = (): FakeFault | null => {
    const f = opts.faults;
    if (!f) return null;
    let x = rand();
    const table: [FakeFault, number | undefined][] = [
      ["500", f.status500],
      ["429", f.status429],
      ["hang", f.hang],
      ["drop", f.drop],
      ["drop-mid-body", f.dropMidBody],
      ["slow", f.slow],
    ];
    for (const [name, p] of table) {
      if (!p) continue;
      if (x < p) return name;
      x -= p;
    }
    return null;
  };

  const server = http.createServer((req, res) => {
    open++;
    stats.maxOpen = Math.max(stats.maxOpen, open);
    res.on("close", () => open--);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = req.url ?? "";
      const route =
        url === "/v1/chat/completions" ? "chat" : url === "/v1/completions" ? "completions" : null;
      if (req.method !== "POST" || route === null) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${url}` } }));
        return;
      }
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        res.writeHead(400);
        res.end('{"error":{"message":"bad json"}}');
        return;
      }
      const messages = (body.messages ?? []) as { role: string; content: string }[];
      const prompt =
        route === "chat"
          ? (messages.filter((m) => m.role === "user").pop()?.content ?? "")
          : String(body.prompt ?? "");
      const fr: FakeRequest = {
        route,
        body,
        prompt,
        seed: typeof body.seed === "number" ? body.seed : undefined,
        index: stats.requests++,
      };
      const fault = opts.faultPlan ? opts.faultPlan(fr.index, fr) : drawFault();
      if (fault) stats.faults[fault]++;
      if (fault === "500" || fault === "429") {
        res.writeHead(Number(fault), { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `injected ${fault}` } }));
        return;
      }
      if (fault === "hang") {
        hanging.add(res);
        res.on("close", () => hanging.delete(res));
        return;
      }
      if (fault === "drop") {
        req.socket.destroy();
        return;
      }
      const replies = opts.respond ? opts.respond(fr) : "ok";
      const list = Array.isArray(replies) ? replies : [replies];
      const choices = list.map((r, index) => {
        const text = typeof r === "string" ? r : r.text;
        const finish = typeof r === "string" ? "stop" : (r.finishReason ?? "stop");
        return route === "chat"
          ? { index, message: { role: "assistant", content: text }, finish_reason: finish }
          : { index, text, finish_reason: finish };
      });
      const completionTokens = list.reduce<number>(
        (a, r) =>
          a +
          (typeof r === "string"
            ? Math.ceil(r.length / 4)
            : (r.completionTokens ?? Math.ceil(r.text.length / 4))),
        0,
      );
      const payload = JSON.stringify({
        id: `fake-${fr.index}`,
        object: route === "chat" ? "chat.completion" : "text_completion",
        model: body.model,
        choices,
        usage: { prompt_tokens: Math.ceil(prompt.length / 4), completion_tokens: completionTokens },
      });
      if (fault === "drop-mid-body") {
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
        });
        res.write(payload.slice(0, Math.floor(payload.length / 2)));
        setTimeout(() => req.socket.destroy(), 5);
        return;
      }
      const send = () => {
        stats.answered++;
        const key = `${prompt}\u0000${fr.seed}`;
        stats.answeredByKey.set(key, (stats.answeredByKey.get(key) ?? 0) + 1);
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
        });
        res.end(payload);
      };
      if (fault === "slow") setTimeout(send, opts.slowMs ?? 200);
      else send();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
