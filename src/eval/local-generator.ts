import type { Backend } from "../engine/index.js";
import { applyChatTemplate, type LoadedModel, loadModel } from "../model/index.js";
import { generate } from "../rollout/index.js";
import type { EvalGenerator, EvalGenRequest, EvalGenResult, EvalSamplingParams } from "./generator.js";

/**
 * The local engine (src/model + src/rollout) as an EvalGenerator, for small checkpoints on this
 * machine. Each request is generated on its own with its own seed, so a sample's tokens depend only on
 * (run seed, benchmark, problem, index) and a resumed run reproduces an uninterrupted one exactly.
 */
export class LocalEngineGenerator implements EvalGenerator {
  readonly description: string;

  private constructor(
    private readonly loaded: LoadedModel,
    dir: string,
  ) {
    this.description = `local engine: ${dir}`;
  }

  /** `backend`: the engine's compute backend (default the native one). */
  static async load(dir: string, opts: { backend?: Backend } = {}): Promise<LocalEngineGenerator> {
    return new LocalEngineGenerator(await loadModel(dir, opts), dir);
  }

  async generate(
    requests: readonly EvalGenRequest[],
    params: EvalSamplingParams,
    onResult: (index: number, result: EvalGenResult | Error) => void | Promise<void>,
  ): Promise<void> {
    const { model, tokenizer } = this.loaded;
    const maxLen = this.loaded.config.maxPositionEmbeddings;
    // A model's vocabulary is often padded past the tokenizer's (Qwen3: 151,936 vs 151,669); an
    // untrained model can sample those padding ids, which decode to nothing.
    const decode = (t: number[]) => tokenizer.decode(t.filter((id) => id < tokenizer.vocabSize));
    for (let i = 0; i < requests.length; i++) {
      const req = requests[i];
      let result: EvalGenResult | Error;
      const t0 = performance.now();
      try {
        const prompt = tokenizer.encode(
          applyChatTemplate(
            tokenizer,
            req.messages.map((m) => ({ role: m.role, content: m.content })),
            {
              addGenerationPrompt: true,
            },
          ),
        );
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
