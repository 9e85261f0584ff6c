/**
 * The recipe demo's RL task and its shared pieces: the byte tokenizer with a small chat template, prompts
 * rendered by that template (as SFT rendered them), and rewards from the one scorer (`scoreResponse`: the
 * math verifier, the code sandbox) under Klear's RL rules, counting every verifier and sandbox call.
 */
import { applyChatTemplate } from "../model/chat.js";
import { type Tokenizer, tokenizerFromFiles } from "../model/tokenizer.js";
import { verifyMath } from "../rewards/math/verify.js";
import { KLEAR_RL_RULES, type ScoredResponse, type ScoreProblem, scoreResponse } from "../rewards/score.js";
import { PROMPT_STREAM, type RlPrompt, type RlTask, type RlTaskFactory } from "../rl/task.js";
import { type RecipeProblem, type RecipeProblemOptions, recipeSplit } from "./recipe-problems.js";
import { demoTokenizer } from "./tiny-model.js";

/**
 * A chat template as short as a byte-level model needs: the user's text and a newline, then the assistant's
 * `<think>` reasoning, its answer and EOS. The generation prompt adds nothing, so a prompt is the user's
 * text plus "\n" — every prompt byte is a position the tiny model must attend over.
 */
export const RECIPE_CHAT_TEMPLATE =
  "{%- for message in messages %}" +
  "{%- if message.role == 'assistant' %}" +
  "{%- if message.reasoning_content %}{{- '<think>' + message.reasoning_content + '</think>\\n' }}{%- endif %}" +
  "{{- message.content + eos_token }}" +
  "{%- else %}{{- message.content + '\\n' }}{%- endif %}" +
  "{%- endfor %}";

/** The demo's byte tokenizer with {@link RECIPE_CHAT_TEMPLATE} (saved into the checkpoint's tokenizer_config). */
export function recipeTokenizer(): Tokenizer {
  const files = demoTokenizer().toFiles();
  return tokenizerFromFiles({
    ...files,
    tokenizerConfig: { ...files.tokenizerConfig, chat_template: RECIPE_CHAT_TEMPLATE },
  });
}

/** The prompt text of a problem as the checkpoint's chat template renders it for generation. */
export function recipePromptText(tokenizer: Tokenizer, problem: RecipeProblem): string {
  return applyChatTemplate(tokenizer, [{ role: "user", content: problem.prompt }], {
    addGenerationPrompt: true,
  });
}

/** How many times the math verifier and the code sandbox were called (cumulative). */
export interface RewardCallCounts {
  verifierCalls: number;
  sandboxCalls: number;
}

/** Counts of checker calls, shared by the RL task and the evaluation's scorer of one demo process. */
export class RewardCallCounter implements RewardCallCounts {
  verifierCalls = 0;
  sandboxCalls = 0;
  snapshot(): RewardCallCounts {
    return { verifierCalls: this.verifierCalls, sandboxCalls: this.sandboxCalls };
  }
  /** Records what one scored response called: the verifier when an answer section reached it, the sandbox when a program ran. */
  record(kind: "math" | "code", r: Pick<ScoredResponse, "run">, verifierCalled: boolean): void {
    if (kind === "math" && verifierCalled) this.verifierCalls++;
    if (kind === "code" && r.run !== undefined) this.sandboxCalls++;
  }
}

/** A recipe problem as the scorer reads it. */
export function recipeScoreProblem(p: RecipeProblem): ScoreProblem {
  return p.kind === "math" ? { kind: "math", answer: p.answer } : { kind: "code", tests: p.tests };
}

export interface RecipeTaskOptions extends RecipeProblemOptions {
  /** The split's seed (the demo's): held-out problems and the training stream. */
  seed: number;
  heldOutSize: number;
  /** Counts checker calls when given. */
  counter?: RewardCallCounter;
  /** Where code runs (default: the sandbox's defaults). */
  sandboxTimeoutMs?: number;
}

/**
 * RL training prompts start this far into the split's training stream, so RL draws problems the SFT rows
 * (stream positions 0…) did not show verbatim; any position is still a pure function of (seed, index).
 */
export const RL_STREAM_OFFSET = 50_000_000;

/**
 * The recipe RL task: held-out problems (math and code) from `recipeSplit`, training prompts from its
 * training stream, each rendered with the policy's chat template, and Klear's RL reward through
 * `scoreResponse` (±1 math behind the think gate, soft 2·passRate − 1 code over the sandbox's tests).
 */
export function recipeRlTask(opts: RecipeTaskOptions): RlTaskFactory {
  return ({ config, tokenizer }) => {
    const split = recipeSplit(opts.seed, opts.heldOutSize, opts);
    const byId = new Map<string, RecipeProblem>();
    const toPrompt = (p: RecipeProblem): RlPrompt => {
      byId.set(p.key, p);
      const text = recipePromptText(tokenizer, p);
      return {
        id: p.key,
        text,
        tokens: tokenizer.encode(text),
        answer: p.kind === "math" ? (p.answer ?? "") : JSON.stringify(p.tests ?? []),
      };
    };
    const heldOut = split.heldOut.map(toPrompt);
    // The run's own seed moves the training stream (an experiment's seeds see different prompts).
    const streamBase = RL_STREAM_OFFSET + ((config.seed ^ PROMPT_STREAM) % 1_000_000) * 1000;
    const task: RlTask = {
      name: "recipe",
      heldOut,
      prompts(cursor, count) {
        return Array.from({ length: count }, (_, i) =>
          toPrompt(split.train(streamBase + cursor + i, 0).problem),
        );
      },
      async score(prompt, response, ctx) {
        const problem = byId.get(prompt.id);
        if (!problem) throw new Error(`recipe task: ${prompt.id} is not one of its prompts`);
        let verifierCalled = false;
        const r = await scoreResponse(recipeScoreProblem(problem), response, {
          rules: KLEAR_RL_RULES,
          testSeed: ctx.seed,
          verifyMath: (gold, answer) => {
            verifierCalled = true;
            // As scoreResponse's own default check (the section is already past </think>).
            return verifyMath(gold, answer, { stripThink: false, timeoutMs: 5000 });
          },
          code: opts.sandboxTimeoutMs ? { timeoutMs: opts.sandboxTimeoutMs } : undefined,
        });
        opts.counter?.record(problem.kind, r, verifierCalled);
        return { reward: r.reward, correct: r.correct };
      },
    };
    return task;
  };
}
