import { existsSync, statSync } from "node:fs";
import type { EvalProblem } from "../benchmarks/registry.js";
import { applyChatTemplate, loadTokenizer, type Tokenizer } from "../model/index.js";
import { ConfigError, KlearError } from "../util/errors.js";

export interface EvalChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/**
 * Math prompt styles:
 * - `r1`: DeepSeek-R1's recommended evaluation prompt: no system prompt, the instruction in the user turn.
 * - `raw`: the problem text alone, exactly as Klear's benchmark files feed it (klear-spec §10.3).
 * Any other string is a template in which `{problem}` is replaced.
 */
export const MATH_PROMPT_TEMPLATES: Record<string, string> = {
  r1: "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}.",
  raw: "{problem}",
};

/** LiveCodeBench's generic system message (lcb_runner PromptConstants.SYSTEM_MESSAGE_GENERIC). */
export const LCB_SYSTEM_MESSAGE =
  "You are an expert Python programmer. You will be given a question (problem specification) and will generate a correct Python program that matches the specification and passes all tests.";
const LCB_FORMAT_WITH_STARTER =
  "You will use the following starter code to write the solution to the problem and enclose your code within delimiters.";
const LCB_FORMAT_STDIN =
  "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.";

/** LiveCodeBench's generic code-generation question template (lcb_runner prompts/code_generation.py). */
export function lcbQuestionPrompt(question: string, starterCode: string): string {
  let p = `### Question:\n${question}\n\n`;
  if (starterCode) p += `### Format: ${LCB_FORMAT_WITH_STARTER}\n\`\`\`python\n${starterCode}\n\`\`\`\n\n`;
  else p += `### Format: ${LCB_FORMAT_STDIN}\n\`\`\`python\n# YOUR CODE HERE\n\`\`\`\n\n`;
  return `${p}### Answer: (use the provided format with backticks)\n\n`;
}

export function checkPromptTemplate(template: string): void {
  if (!(template in MATH_PROMPT_TEMPLATES) && !template.includes("{problem}")) {
    throw new ConfigError(
      `prompt template "${template}" is neither a known style nor contains {problem}`,
      `use one of ${Object.keys(MATH_PROMPT_TEMPLATES).join(", ")}, or a template containing {problem}`,
    );
  }
}

/**
 * The chat messages sent for a problem. Code follows R1's advice too (no system turn): LiveCodeBench's
 * system sentence opens the user turn, as in Klear's code RL data (§10.3), followed by LiveCodeBench's
 * generic question template.
 */
export function buildMessages(problem: EvalProblem, mathTemplate = "r1"): EvalChatMessage[] {
  if (problem.kind === "code") {
    // "raw" keeps a prompt shipped with the data (QwQ's file) verbatim; otherwise LiveCodeBench's own.
    const content =
      mathTemplate === "raw" && problem.fullPrompt
        ? problem.fullPrompt
        : `${LCB_SYSTEM_MESSAGE}\n\n${lcbQuestionPrompt(problem.question, problem.starterCode ?? "")}`;
    return [{ role: "user", content }];
  }
  checkPromptTemplate(mathTemplate);
  const template = MATH_PROMPT_TEMPLATES[mathTemplate] ?? mathTemplate;
  return [{ role: "user", content: template.split("{problem}").join(problem.question) }];
}

/**
 * What eval needs from a model's chat template: messages in, the prompt text out (for /v1/completions and
 * the local engine). The rendering itself is src/model's applyChatTemplate; this is only its shape here.
 */
export interface ChatTemplate {
  apply(messages: readonly EvalChatMessage[]): string;
}

export interface EvalChatTemplateOptions {
  /** Qwen3's thinking switch; undefined leaves the template's default (thinking on). */
  enableThinking?: boolean;
  /** Eval prompts are for generation, so the assistant turn is opened unless this is false. */
  addGenerationPrompt?: boolean;
}

/** A tokenizer's chat template (or src/model's built-in one when it has none) as eval's ChatTemplate. */
export function evalChatTemplateFor(tokenizer: Tokenizer, opts: EvalChatTemplateOptions = {}): ChatTemplate {
  const render = {
    addGenerationPrompt: opts.addGenerationPrompt ?? true,
    enableThinking: opts.enableThinking,
  };
  return {
    // ChatTemplateMessage takes extra fields, which EvalChatMessage (an interface) cannot be assigned to.
    apply: (messages) =>
      applyChatTemplate(
        tokenizer,
        messages.map((m) => ({ role: m.role, content: m.content })),
        render,
      ),
  };
}

/**
 * The chat template of a model folder (tokenizer.json, tokenizer_config.json, maybe chat_template.jinja), for
 * `--api completions --chat-template DIR`. Unlike the local engine, a server's model has no built-in fallback:
 * a folder without a template is an error rather than a silently different prompt.
 */
export async function loadEvalChatTemplate(
  dir: string,
  opts: EvalChatTemplateOptions = {},
): Promise<ChatTemplate> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ConfigError(
      `--chat-template ${dir} is not a folder`,
      "point it at the model folder (with tokenizer.json)",
    );
  }
  const tokenizer = await loadTokenizer(dir);
  if (!tokenizer.chatTemplate) {
    throw new KlearError(
      "NO_CHAT_TEMPLATE",
      `${dir} has no chat template (neither tokenizer_config.json chat_template nor chat_template.jinja)`,
      "use --api chat so the server applies its template, or a model folder with a chat template",
    );
  }
  return evalChatTemplateFor(tokenizer, opts);
}
