import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A stand-in for vLLM / SGLang used only for fault injection (the real vLLM runs in test/server/). Its
 * "model" continues a prompt with (last + 1 + version) mod vocab at log-prob −(1 + version)/10, so a
 * reload is visible in both the tokens and the log-probs.
 */
export type Fault = "500" | "slow" | "drop" | "abort";

export interface FakeServer {
  url: string;
  /** Faults applied to the next requests to /v1/completions or /generate, one each, in order. */
  faults: Fault[];
  /** When `faults` is empty: the fault for a request, picked by its body (e.g. its prompt), or null. */
  faultFor: ((body: Record<string, unknown>) => Fault | null) | null;
  /** Sampling requests in arrival order; `at` is performance.now() on arrival (the same clock in-process). */
  requests: { path: string; body: Record<string, unknown>; at: number }[];
  adminCalls: string[];
  version: number;
  close(): Promise<void>;
}

export async function startFakeServer(
  opts: { vocab?: number; slowMs?: number; model?: string; tokenize?: (text: string) => number[] } = {},
): Promise<FakeServer> {
  const vocab = opts.vocab ?? 300;
  const model = opts.model ?? "fake";
  const state: FakeServer = {
    url: "",
    faults: [],
    faultFor: null,
    requests: [],
    adminCalls: [],
    version: 0,
    close: async () => {},
  };
  const logprobOf = () => -(1 + state.version) / 10;
  const continuation = (prompt: number[], maxTokens: number, stopIds: number[]) => {
    const ids: number[] = [];
    let last = prompt.at(-1) ?? 0;
    while (ids.length < maxTokens) {
      last = (last + 1 + state.version) % vocab;
      ids.push(last);
      if (stopIds.includes(last)) return { ids, finish: "stop" };
    }
    return { ids, finish: "length" };
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      const path = req.url ?? "";
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(value));
      };
      const sampling = path.startsWith("/v1/completions") || path.startsWith("/generate");
      if (sampling) {
        state.requests.push({ path, body, at: performance.now() });
        const fault = state.faults.shift() ?? state.faultFor?.(body) ?? undefined;
        if (fault === "500") return json(500, { error: "injected" });
        if (fault === "slow") await new Promise((r) => setTimeout(r, opts.slowMs ?? 2000));
        if (fault === "drop") {
          res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
          res.write('{"choices": [');
          return res.destroy();
        }
        if (path.startsWith("/generate")) {
          const inputs = body.input_ids as number[][];
          const params = body.sampling_params as { max_new_tokens: number; stop_token_ids: number[] }[];
          return json(
            200,
            inputs.map((p, k) => {
              const c = continuation(p, params[k].max_new_tokens, params[k].stop_token_ids);
              return {
                text: "",
                meta_info: {
                  output_token_logprobs: c.ids.map((id) => [logprobOf(), id, null]),
                  finish_reason: { type: fault === "abort" ? "abort" : c.finish },
                },
              };
            }),
          );
        }
        if (body.model !== model) return json(404, { error: `model ${String(body.model)} not found` });
        const prompt = body.prompt as number[];
        const n = (body.n as number | undefined) ?? 1;
        const stopIds = (body.stop_token_ids as number[] | undefined) ?? [];
        const choices = Array.from({ length: n }, (_, index) => {
          const c = continuation(prompt, body.max_tokens as number, stopIds);
          return {
            index,
            text: "",
            token_ids: c.ids,
            prompt_token_ids: prompt,
            finish_reason: fault === "abort" ? "abort" : c.finish,
            logprobs: { tokens: c.ids.map((id) => `token_id:${id}`), token_logprobs: c.ids.map(logprobOf) },
            ...(body.prompt_logprobs !== undefined
              ? {
                  prompt_logprobs: prompt.map((id, t) =>
                    t === 0 ? null : { [String(id)]: { logprob: logprobOf(), rank: 1 } },
                  ),
                }
              : {}),
          };
        });
        return json(200, { choices, usage: { prompt_tokens: prompt.length } });
      }
      state.adminCalls.push(path);
      if (path === "/health") return json(200, {});
      if (path === "/v1/models") return json(200, { data: [{ id: model }] });
      if (path === "/tokenize") {
        const text = String(body.prompt);
        return json(200, { tokens: opts.tokenize ? opts.tokenize(text) : [...Buffer.from(text)] });
      }
      if (path === "/collective_rpc") {
        state.version++;
        return json(200, { results: [null] });
      }
      if (path === "/update_weights_from_disk") {
        state.version++;
        return json(200, { success: true, message: "ok" });
      }
      if (/^\/(pause|resume|reset_prefix_cache|update_weight_version)/.test(path)) return json(200, {});
      return json(404, { error: `no route ${path}` });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}
