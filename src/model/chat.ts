/**
 * Chat templates: the Jinja template in tokenizer_config.json (`chat_template`), rendered with @huggingface/jinja
 * exactly as HF's `apply_chat_template` renders it, plus a built-in ChatML template for tiny models.
 */
import { Template } from "@huggingface/jinja";
import { KlearError } from "../util/errors.js";
import type { Tokenizer } from "./tokenizer.js";

export interface ChatTemplateMessage {
  role: "system" | "user" | "assistant" | "tool" | (string & {});
  content: string;
  /** Qwen3's template renders an assistant's reasoning inside <think> when given separately. */
  reasoning_content?: string;
  [extra: string]: unknown;
}

export interface ChatRenderOptions {
  /** Append the prompt that starts the assistant's turn (for generation). Default false. */
  addGenerationPrompt?: boolean;
  /**
   * Qwen3's switch: false makes the generation prompt end with an empty <think></think> block so the model
   * answers directly. Undefined leaves the template's default (thinking on).
   */
  enableThinking?: boolean;
  tools?: unknown[];
  /** More variables for templates that read them. */
  variables?: Record<string, unknown>;
}

/**
 * ChatML with Qwen3's thinking switch, for tiny models trained from scratch. Written in Jinja so it is saved into
 * tokenizer_config.json and HF transformers renders klear checkpoints the same way.
 */
export const SIMPLE_CHAT_TEMPLATE =
  "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}" +
  "{{- '<|im_start|>assistant\\n' }}" +
  "{%- if enable_thinking is defined and enable_thinking is false %}" +
  "{{- '<think>\\n\\n</think>\\n\\n' }}" +
  "{%- endif %}" +
  "{%- endif %}";

/** A parsed chat template: parse once, render many times. */
export class JinjaChatTemplate {
  readonly source: string;
  private readonly template: Template;

  /** `sourcePath` names where the template came from in errors (e.g. the tokenizer_config.json path). */
  constructor(
    source: string,
    readonly sourcePath = "chat template",
  ) {
    this.source = source;
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new KlearError(
        "CHAT_TEMPLATE_INVALID",
        `${sourcePath}: chat template does not parse (${(e as Error).message})`,
        "fix chat_template in tokenizer_config.json, or remove it to use klear's built-in template",
        { cause: e },
      );
    }
  }

  render(
    messages: readonly ChatTemplateMessage[],
    opts: ChatRenderOptions = {},
    specialTokens: { bosToken?: string; eosToken?: string } = {},
  ): string {
    const vars: Record<string, unknown> = {
      ...opts.variables,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: specialTokens.bosToken ?? "",
      eos_token: specialTokens.eosToken ?? "",
    };
    if (opts.enableThinking !== undefined) vars.enable_thinking = opts.enableThinking;
    if (opts.tools !== undefined) vars.tools = opts.tools;
    try {
      return this.template.render(vars);
    } catch (e) {
      throw new KlearError(
        "CHAT_TEMPLATE_RENDER",
        `${this.sourcePath}: chat template failed to render (${(e as Error).message})`,
        "check the messages' roles and fields against what the template expects",
        { cause: e },
      );
    }
  }
}

const templateCache = new WeakMap<Tokenizer, JinjaChatTemplate>();

/** The tokenizer's own chat template, or the built-in one when it has none. */
export function chatTemplateFor(tokenizer: Tokenizer): JinjaChatTemplate {
  let t = templateCache.get(tokenizer);
  if (!t) {
    t = new JinjaChatTemplate(
      tokenizer.chatTemplate ?? SIMPLE_CHAT_TEMPLATE,
      "tokenizer_config.json chat_template",
    );
    templateCache.set(tokenizer, t);
  }
  return t;
}

/** Renders messages to the prompt text, as HF's `apply_chat_template(..., tokenize=False)`. */
export function applyChatTemplate(
  tokenizer: Tokenizer,
  messages: readonly ChatTemplateMessage[],
  opts: ChatRenderOptions = {},
): string {
  return chatTemplateFor(tokenizer).render(messages, opts, {
    bosToken: tokenizer.bosToken,
    eosToken: tokenizer.eosToken,
  });
}
