/**
 * Chat templates: the Jinja template in tokenizer_config.json (`chat_template`), rendered with @huggingface/jinja
 * exactly as HF's `apply_chat_template` renders it, plus a built-in ChatML template for tiny models.
 */
import { Environment, Template } from "@huggingface/jinja";
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

/** Python's `str.strip(chars)` family: with `chars`, only those characters go; without, whitespace. */
function pythonStrip(s: string, chars: string | undefined, left: boolean, right: boolean): string {
  if (chars === undefined) return left && right ? s.trim() : left ? s.trimStart() : s.trimEnd();
  let a = 0;
  let b = s.length;
  if (left) while (a < b && chars.includes(s[a])) a++;
  if (right) while (b > a && chars.includes(s[b - 1])) b--;
  return s.slice(a, b);
}

/**
 * @huggingface/jinja (0.5.x) ignores the argument of `strip` / `lstrip` / `rstrip`, so Qwen3's
 * `reasoning_content.strip('\\n')` also strips spaces, and a trained assistant turn would differ from what
 * transformers renders. Its string class is not exported; this wraps the three methods of every string value
 * once, with Python's semantics, for all templates in the process.
 */
function patchJinjaStringStrip(): void {
  const env = new Environment();
  env.set("s", "");
  const sample = env.lookupVariable("s") as unknown as { builtins: Map<string, { value: unknown }> };
  const proto = Object.getPrototypeOf(sample) as object;
  const desc = Object.getOwnPropertyDescriptor(proto, "builtins");
  const StringValue = sample.constructor as new (v: string) => unknown;
  const FunctionValue = sample.builtins.get("strip")?.constructor as
    | (new (
        fn: (args: { type: string; value: unknown }[]) => unknown,
      ) => { value: unknown })
    | undefined;
  if (!desc?.get || !FunctionValue || (proto as { klearStripPatched?: boolean }).klearStripPatched) return;
  const original = desc.get;
  const sides: Record<string, [boolean, boolean]> = {
    strip: [true, true],
    lstrip: [true, false],
    rstrip: [false, true],
  };
  Object.defineProperty(proto, "builtins", {
    configurable: true,
    get(this: { value: string }) {
      const map = original.call(this) as Map<string, unknown> & { klearStrip?: boolean };
      if (!map.klearStrip) {
        for (const [name, [left, right]] of Object.entries(sides)) {
          map.set(
            name,
            new FunctionValue((args) => {
              const chars = args[0]?.type === "StringValue" ? (args[0].value as string) : undefined;
              return new StringValue(pythonStrip(this.value, chars, left, right));
            }),
          );
        }
        map.klearStrip = true;
      }
      return map;
    },
  });
  (proto as { klearStripPatched?: boolean }).klearStripPatched = true;
}
patchJinjaStringStrip();

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

// ---- rendering for training: the assistant-only loss mask ---------------------------------------------

/** Which assistant turns carry loss: every one (TRL's assistant_only_loss) or only the final one. */
export type TrainOnTurns = "all-assistant" | "last-assistant";

export interface TrainingRenderOptions {
  trainOn?: TrainOnTurns;
  /** More variables for templates that read them. */
  variables?: Record<string, unknown>;
}

/** A conversation rendered and tokenized for supervised training. */
export interface TrainingRender {
  /** The whole conversation as the template renders it (no generation prompt). */
  text: string;
  /** `tokenizer.encode(text)`: exactly the ids inference would see. */
  ids: number[];
  /** 1 for every token the assistant generates in a trained turn (its reasoning and end-of-turn token), else 0. */
  assistantMask: Uint8Array;
  /** The trained character ranges of `text`, [start, end). */
  spans: { start: number; end: number }[];
}

/**
 * What the template appends after an assistant message's text when it ends the conversation, and the part of it
 * the assistant generates: the leading added token (Qwen's "<|im_end|>" of "<|im_end|>\n"), or the whole closer
 * up to trailing whitespace for templates whose closer is plain text.
 */
function turnCloser(
  tokenizer: Tokenizer,
  template: JinjaChatTemplate,
  vars: TrainingRenderOptions,
): { marker: string; raw: string } {
  const probe = "klear-probe-7c1e";
  const special = { bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken };
  const text = template.render(
    [
      { role: "user", content: "q" },
      { role: "assistant", content: probe },
    ],
    { variables: vars.variables },
    special,
  );
  const at = text.lastIndexOf(probe);
  if (at < 0) {
    throw new KlearError(
      "CHAT_MASK_UNDERIVABLE",
      `${template.sourcePath}: the chat template does not render an assistant message's content`,
      "use a template that renders each assistant message's content (HF chat templates do)",
    );
  }
  const closer = text.slice(at + probe.length);
  const added = [...tokenizer.addedTokens]
    .sort((a, b) => b.content.length - a.content.length)
    .find((t) => closer.startsWith(t.content));
  return { marker: added ? added.content : closer.trimEnd(), raw: closer };
}

/**
 * The added token that ends an assistant turn in the tokenizer's chat template (Qwen's "<|im_end|>"), or undefined
 * when turns end with plain text. A base model's EOS is often another token (Qwen3-Base: "<|endoftext|>"), so a
 * model fine-tuned on the template must stop generating at this one.
 */
export function chatTurnEndToken(tokenizer: Tokenizer): string | undefined {
  const { marker } = turnCloser(tokenizer, chatTemplateFor(tokenizer), {});
  return tokenizer.specialTokens.has(marker) ? marker : undefined;
}

/**
 * Character ranges a boundary list maps onto token indexes of `ids`. Pieces between boundaries are encoded
 * alone; when their concatenation is `ids` every boundary falls between tokens. Otherwise a token straddles a
 * boundary and prefixes are encoded instead: a range then covers every token holding one of its characters,
 * as transformers' `char_to_token` does for `return_assistant_tokens_mask`.
 */
function boundaryTokens(
  tokenizer: Tokenizer,
  text: string,
  ids: readonly number[],
  cuts: number[],
): number[] {
  const pieces: number[][] = [];
  let prev = 0;
  for (const c of [...cuts, text.length]) {
    pieces.push(tokenizer.encode(text.slice(prev, c)));
    prev = c;
  }
  const joined = pieces.flat();
  if (joined.length === ids.length && joined.every((id, i) => id === ids[i])) {
    const out: number[] = [];
    let n = 0;
    for (let i = 0; i < cuts.length; i++) {
      n += pieces[i].length;
      out.push(n);
    }
    return out;
  }
  return cuts.map((c, i) => {
    const prefix = tokenizer.encode(text.slice(0, c));
    let k = 0;
    while (k < prefix.length && k < ids.length && prefix[k] === ids[k]) k++;
    const clean = k === prefix.length;
    // Even cut indexes open a range (the straddling token is in it), odd ones close it (likewise).
    return clean || i % 2 === 0 ? k : k + 1;
  });
}

/**
 * Renders a conversation with the tokenizer's own chat template and marks what the assistant generates in each
 * trained turn, derived from the rendering itself (no template markers needed):
 * - a turn starts where the template's generation prompt for the conversation up to it ends (so reasoning the
 *   template puts in the turn, Qwen3's `<think>…</think>`, is trained);
 * - it ends after the template's end-of-turn token that follows it.
 * Templates that render earlier turns differently once later turns exist (Qwen3 drops the reasoning of turns
 * before the last user query) work because every span is located in the rendering of the whole conversation;
 * a template whose prefix renderings are not prefixes of the whole is refused (CHAT_MASK_UNDERIVABLE).
 */
export function renderTrainingConversation(
  tokenizer: Tokenizer,
  messages: readonly ChatTemplateMessage[],
  opts: TrainingRenderOptions = {},
): TrainingRender {
  const template = chatTemplateFor(tokenizer);
  const special = { bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken };
  const render = (msgs: readonly ChatTemplateMessage[], addGenerationPrompt: boolean) =>
    template.render(msgs, { addGenerationPrompt, variables: opts.variables }, special);
  const text = render(messages, false);
  const { marker: closer, raw: rawCloser } = turnCloser(tokenizer, template, opts);
  const turns = messages.flatMap((m, i) => (m.role === "assistant" ? [i] : []));
  const trained = opts.trainOn === "last-assistant" ? turns.slice(-1) : turns;
  const spans: { start: number; end: number }[] = [];
  for (const i of trained) {
    const prompt = render(messages.slice(0, i), true);
    const floor = spans.length > 0 ? spans[spans.length - 1].end : 0;
    if (!text.startsWith(prompt) || prompt.length < floor) {
      throw new KlearError(
        "CHAT_MASK_UNDERIVABLE",
        `${template.sourcePath}: the conversation up to message ${i} renders differently from the start of the whole conversation, so the assistant's tokens cannot be located`,
        "train on the last assistant turn only (trainOn: last-assistant), or split the conversation into one row per assistant turn",
      );
    }
    let end: number;
    const close = closer === "" ? -1 : text.indexOf(closer, prompt.length);
    if (close >= 0) end = close + closer.length;
    else {
      // No end-of-turn marker (a template closing turns with whitespace only): the turn ends where the
      // conversation up to it does, less the closing whitespace, when that rendering is a prefix of the whole.
      const upTo = render(messages.slice(0, i + 1), false);
      if (!text.startsWith(upTo)) {
        throw new KlearError(
          "CHAT_MASK_UNDERIVABLE",
          `${template.sourcePath}: the template marks no end of an assistant turn and renders message ${i} differently once later turns follow`,
          "use a template that ends each turn with an end-of-turn token, or train on the last assistant turn only",
        );
      }
      end = upTo.endsWith(rawCloser) ? upTo.length - rawCloser.length : upTo.length;
    }
    spans.push({ start: prompt.length, end });
  }
  const ids = tokenizer.encode(text);
  const assistantMask = new Uint8Array(ids.length);
  const cuts = spans.flatMap((s) => [s.start, s.end]);
  const at = boundaryTokens(tokenizer, text, ids, cuts);
  for (let s = 0; s < spans.length; s++) assistantMask.fill(1, at[2 * s], at[2 * s + 1]);
  return { text, ids, assistantMask, spans };
}
