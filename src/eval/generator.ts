import { OpenAIClient, type OpenAIClientOptions } from "../rollout/openai.js";
import { mapConcurrent } from "../util/concurrency.js";
import { checkChoice } from "../util/errors.js";
import type { ChatTemplate, EvalChatMessage } from "./prompts.js";

/** Sampling settings of an eval run; the defaults are the paper's (T 0.6, top-p 0.95, 32K tokens). */
export interface EvalSamplingParams {
  temperature: number;
  topP: number;
  /** Off when undefined (Klear's inference.py used 20). */
  topK?: number;
  maxTokens: number;
  repetitionPenalty?: number;
  stop?: string[];
}

export const DEFAULT_EVAL_SAMPLING: EvalSamplingParams = { temperature: 0.6, topP: 0.95, maxTokens: 32768 };

export interface EvalGenRequest {
  messages: EvalChatMessage[];
  /** Per-sample seed, derived from the run seed, the problem and the sample index. */
  seed?: number;
}

export interface EvalGenResult {
  text: string;
  finishReason: string | null;
  completionTokens: number | null;
  latencyMs: number | null;
  attempts: number;
}

/**
 * Turns chat prompts into one completion each. Results are reported through `onResult` as each one
 * finishes (in any order) so the caller can store it at once; a request that fails for good reports an
 * Error and the others carry on.
 */
export interface EvalGenerator {
  readonly description: string;
  generate(
    requests: readonly EvalGenRequest[],
    params: EvalSamplingParams,
    onResult: (index: number, result: EvalGenResult | Error) => void | Promise<void>,
  ): Promise<void>;
  close?(): void;
}

export interface OpenAIGeneratorOptions extends OpenAIClientOptions {
  model: string;
  /** `chat`: the server applies the chat template; `completions`: we render it (needs `chatTemplate`). */
  api?: "chat" | "completions";
  chatTemplate?: ChatTemplate;
}

/** An OpenAI-compatible server (vLLM, SGLang, …) as an EvalGenerator. */
export class OpenAIGenerator implements EvalGenerator {
  readonly client: OpenAIClient;
  readonly description: string;
  private readonly api: "chat" | "completions";

  constructor(private readonly opts: OpenAIGeneratorOptions) {
    this.api = checkChoice("--api", opts.api ?? "chat", ["chat", "completions"] as const);
    this.client = new OpenAIClient(opts);
    this.description = `${opts.model} @ ${opts.endpoints.join(", ")} (${this.api})`;
  }

  async generate(
    requests: readonly EvalGenRequest[],
    params: EvalSamplingParams,
    onResult: (index: number, result: EvalGenResult | Error) => void | Promise<void>,
  ): Promise<void> {
    const base = {
      model: this.opts.model,
      n: 1,
      temperature: params.temperature,
      topP: params.topP,
      topK: params.topK,
      maxTokens: params.maxTokens,
      repetitionPenalty: params.repetitionPenalty,
      stop: params.stop,
    };
    // The client bounds requests in flight; this only keeps the queue of pending promises short.
    await mapConcurrent(requests, (this.opts.concurrency ?? 64) * 2, async (req, i) => {
      let result: EvalGenResult | Error;
      try {
        const p = { ...base, seed: req.seed };
        const r =
          this.api === "chat"
            ? await this.client.chat(req.messages, p)
            : await this.client.complete(this.renderPrompt(req.messages), p);
        const c = r.choices[0];
        result = {
          text: c?.text ?? "",
          finishReason: c?.finishReason ?? null,
          completionTokens: r.completionTokens,
          latencyMs: r.latencyMs,
          attempts: r.attempts,
        };
      } catch (e) {
        result = e instanceof Error ? e : new Error(String(e));
      }
      await onResult(i, result);
    });
  }

  private renderPrompt(messages: EvalChatMessage[]): string {
    if (this.opts.chatTemplate) return this.opts.chatTemplate.apply(messages);
    // Without a template, a plain concatenation: only sensible for base models.
    return messages.map((m) => m.content).join("\n\n");
  }

  close(): void {
    this.client.close();
  }
}
