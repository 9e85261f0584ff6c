import type { Backend } from "../engine/index.js";
import { type LoadedModel, loadModel } from "../model/index.js";
import { generate } from "../rollout/index.js";
import type { EvalGenerator, EvalGenRequest, EvalGenResult, EvalSamplingParams } from "./generator.js";
import {
  type ChatTemplate,
  type EvalChatMessage,
  type EvalChatTemplateOptions,
  evalChatTemplateFor,
} from "./prompts.js";

/**
 * The local engine (src/model + src/rollout) as an EvalGenerator, for small checkpoints on this
 * machine. Each request is generated on its own with its own seed, so a sample's tokens depend only on
 * (run seed, benchmark, problem, index) and a resumed run reproduces an uninterrupted one exactly.
 */
export class LocalEngineGenerator implements EvalGenerator {
  readonly description: string;
  private readonly chatTemplate: ChatTemplate;

  private constructor(
    private readonly loaded: LoadedModel,
    private readonly dir: string,
    chat: EvalChatTemplateOptions,
  ) {
    this.description = `local engine: ${dir}`;
    this.chatTemplate = evalChatTemplateFor(loaded.tokenizer, chat);
  }

  /**
   * `backend`: the engine's compute backend (default the native one); `enableThinking`: Qwen3's switch in
   * the chat template (default: the template's own, thinking on).
   */
  static async load(
    dir: string,
    opts: { backend?: Backend; enableThinking?: boolean } = {},
  ): Promise<LocalEngineGenerator> {
    const { enableThinking, ...modelOpts } = opts;
    return new LocalEngineGenerator(await loadModel(dir, modelOpts), dir, { enableThinking });
  }

  /** The model's context length (positions) and where it was read from. */
  get context(): { positions: number; dir: string } {
    return { positions: this.loaded.config.maxPositionEmbeddings, dir: this.dir };
  }

  /**
   * The token length of each prompt as this generator renders it, so a caller can check once, before a
   * run, that they fit the context (a prompt that fills it would fail every one of its requests).
   */
  promptTokens(prompts: readonly (readonly EvalChatMessage[])[]): number[] {
    return prompts.map((m) => this.loaded.tokenizer.encode(this.chatTemplate.apply(m)).length);
  }

  async generate(
    requests: readonly EvalGenRequest[],
    params: EvalSamplingParams,
    onResult: (index: number, result: EvalGenResult | Error) => void | Promise<void>,
  ): Promise<void> {
    const { model, tokenizer } = this.loaded;
    const maxLen = this.loaded.config.maxPositionEmbeddings;
    // Padding ids past the tokenizer's vocabulary (an untrained model samples them) decode to nothing there.
    const decode = (t: number[]) => tokenizer.decode(t);
    for (let i = 0; i < requests.length; i++) {
      const req = requests[i];
      let result: EvalGenResult | Error;
      const t0 = performance.now();
      try {
        const prompt = tokenizer.encode(this.chatTemplate.apply(req.messages));
        const room = maxLen - prompt.length;
        if (room < 1)
          throw new Error(`prompt of ${prompt.length} tokens leaves no room in the ${maxLen}-token context`);
        const [c] = generate(model, [prompt], {
          n: 1,
          temperature: params.temperature,
          topP: params.topP,
          topK: params.topK,
          repetitionPenalty: params.repetitionPenalty,
          maxNewTokens: Math.min(params.maxTokens, room),
          stopTokenIds: [tokenizer.eosTokenId],
          stopStrings: params.stop,
          decode,
          seed: req.seed,
        });
        result = {
          text: c.text ?? decode(c.tokens),
          finishReason: c.finishReason,
          completionTokens: c.tokens.length,
          latencyMs: performance.now() - t0,
          attempts: 1,
        };
      } catch (e) {
        result = e instanceof Error ? e : new Error(String(e));
      }
      await onResult(i, result);
      // Let the store commit and the progress bar draw between (synchronous) generations.
      await new Promise((r) => setImmediate(r));
    }
  }
}
