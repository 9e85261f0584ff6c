import type { Tokenizer } from "../model/tokenizer.js";
import { completionSeed } from "../rollout/generate.js";
import type { Generator } from "../rollout/types.js";
import type { SampleRecord } from "../store/samples.js";
import { mapConcurrent } from "../util/concurrency.js";
import { SCORE_CONCURRENCY, truncatePromptLeft } from "./rollout.js";
import { type RlPrompt, type RlScorer, SCORE_STREAM } from "./task.js";

/** How held-out responses are sampled (the paper evaluates at T 0.6, top-p 0.95). */
export interface HeldOutSampling {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  /** Prompts longer than this lose their oldest tokens (0 = no limit), as in training. */
  maxPromptTokens?: number;
}

export interface HeldOutResult {
  /** Fraction of prompts whose response the task scores correct. */
  accuracy: number;
  /** One eval sample per prompt, at step 0 (the caller sets the step). */
  records: SampleRecord[];
}

/** Held-out accuracy: one response per prompt, scored by the task. */
export async function evaluateRlPolicy(
  sampler: Generator,
  tokenizer: Tokenizer,
  prompts: readonly RlPrompt[],
  score: RlScorer,
  opts: HeldOutSampling,
): Promise<HeldOutResult> {
  if (prompts.length === 0) return { accuracy: 0, records: [] };
  const completions = await sampler.generate(
    prompts.map((p) => truncatePromptLeft(p.tokens, opts.maxPromptTokens ?? 0)),
    {
      temperature: opts.temperature,
      topP: opts.topP,
      maxNewTokens: opts.maxNewTokens,
      stopTokenIds: [tokenizer.eosTokenId],
      decode: (ids) => tokenizer.decode(ids),
      seed: opts.seed,
    },
  );
  const scores = await mapConcurrent(completions, SCORE_CONCURRENCY, async (c) =>
    score(prompts[c.promptIndex], c.text ?? "", {
      seed: completionSeed(opts.seed ^ SCORE_STREAM, c.promptIndex, c.sampleIndex),
    }),
  );
  let correct = 0;
  const records = completions.map((c, i): SampleRecord => {
    const prompt = prompts[c.promptIndex];
    const s = scores[i];
    if (s.correct) correct++;
    return {
      step: 0,
      kind: "eval",
      problemId: prompt.id,
      prompt: prompt.text,
      completion: c.text ?? "",
      reward: s.reward,
      correct: s.correct,
      finishReason: c.finishReason,
      numTokens: c.tokens.length,
    };
  });
  return { accuracy: correct / prompts.length, records };
}
