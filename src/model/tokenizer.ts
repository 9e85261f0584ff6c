/**
 * Tokenizers behind one interface: a byte tokenizer for tiny models and Hugging Face `tokenizer.json`
 * (byte-level BPE as Qwen uses) through @huggingface/tokenizers.
 *
 * The byte tokenizer saves itself as a real HF tokenizer.json (byte-level BPE with the 256 byte symbols and no
 * merges), so a klear checkpoint is self-contained and HF transformers tokenizes it identically.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { KlearError } from "../util/errors.js";

export interface TokenizerAddedToken {
  id: number;
  content: string;
  /** Special tokens are dropped by `decode(ids, { skipSpecialTokens: true })`; Qwen's <think> is added but not special. */
  special: boolean;
}

export interface TokenizerEncodeOptions {
  /**
   * Apply the tokenizer's post-processor (e.g. a BOS token some tokenizers prepend). Default false: klear renders
   * special tokens through chat templates, as HF's apply_chat_template does.
   */
  addSpecialTokens?: boolean;
}

export interface TokenizerDecodeOptions {
  skipSpecialTokens?: boolean;
}

/** The files that recreate a tokenizer: contents of tokenizer.json and tokenizer_config.json. */
export interface TokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

export interface Tokenizer {
  readonly kind: "byte" | "bpe";
  /** One more than the largest id the tokenizer can emit: a model's vocab_size must be at least this. */
  readonly vocabSize: number;
  readonly eosTokenId: number;
  readonly bosTokenId?: number;
  readonly padTokenId: number;
  /** Added tokens (special or not) by content. */
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly addedTokens: readonly TokenizerAddedToken[];
  /** Jinja chat template from tokenizer_config.json, if any. */
  readonly chatTemplate?: string;
  readonly eosToken: string;
  readonly bosToken?: string;
  encode(text: string, opts?: TokenizerEncodeOptions): number[];
  decode(ids: readonly number[], opts?: TokenizerDecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  toFiles(): TokenizerFiles;
}

// ---- byte tokenizer ---------------------------------------------------------------------------------------

/** GPT-2's byte → printable character map used by every byte-level BPE vocab. */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const out = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return out;
}
const BYTE_SYMBOLS = bytesToUnicode();

export interface ByteTokenizerOptions {
  /** Added tokens after the 256 byte ids, in id order. Default: Qwen's chat tokens. */
  addedTokens?: { content: string; special: boolean }[];
  eosToken?: string;
  padToken?: string;
  bosToken?: string;
  chatTemplate?: string;
  modelMaxLength?: number;
}

export const BYTE_TOKENIZER_DEFAULT_ADDED_TOKENS: readonly { content: string; special: boolean }[] = [
  { content: "<|endoftext|>", special: true },
  { content: "<|im_start|>", special: true },
  { content: "<|im_end|>", special: true },
  { content: "<think>", special: false },
  { content: "</think>", special: false },
];

function addedTokenSplitter(tokens: readonly TokenizerAddedToken[]): RegExp | undefined {
  if (tokens.length === 0) return undefined;
  // Longest first so "<|im_start|>" wins over any shorter added token it contains.
  const alternatives = [...tokens]
    .sort((a, b) => b.content.length - a.content.length)
    .map((t) => t.content.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`(${alternatives.join("|")})`, "u");
}

function lookupAdded(
  tokens: readonly TokenizerAddedToken[],
  content: string | undefined,
  what: string,
  source: string,
) {
  if (content === undefined) return undefined;
  const t = tokens.find((x) => x.content === content);
  if (!t) {
    throw new KlearError(
      "TOKENIZER_INVALID",
      `${source}: ${what} "${content}" is not one of the tokenizer's added tokens`,
      `add "${content}" to the added tokens, or choose another ${what}`,
    );
  }
  return t.id;
}

/** UTF-8 bytes as ids 0–255, then added tokens. Any text round-trips exactly. */
export class ByteTokenizer implements Tokenizer {
  readonly kind = "byte" as const;
  readonly vocabSize: number;
  readonly eosTokenId: number;
  readonly bosTokenId?: number;
  readonly padTokenId: number;
  readonly eosToken: string;
  readonly bosToken?: string;
  readonly padToken: string;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly addedTokens: readonly TokenizerAddedToken[];
  readonly chatTemplate?: string;
  readonly modelMaxLength: number;
  private readonly splitter?: RegExp;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(opts: ByteTokenizerOptions = {}, sourcePath = "ByteTokenizer options") {
    const added = opts.addedTokens ?? BYTE_TOKENIZER_DEFAULT_ADDED_TOKENS;
    this.addedTokens = added.map((t, i) => ({ id: 256 + i, content: t.content, special: t.special }));
    const seen = new Set<string>();
    for (const t of this.addedTokens) {
      if (t.content.length === 0 || seen.has(t.content)) {
        throw new KlearError(
          "TOKENIZER_INVALID",
          `${sourcePath}: added token ${JSON.stringify(t.content)} is empty or repeated`,
          "give each added token a distinct non-empty content",
        );
      }
      seen.add(t.content);
    }
    this.vocabSize = 256 + this.addedTokens.length;
    this.specialTokens = new Map(this.addedTokens.map((t) => [t.content, t.id]));
    const fallbackEos = this.addedTokens.find((t) => t.content === "<|im_end|>") ?? this.addedTokens[0];
    const eosToken = opts.eosToken ?? fallbackEos?.content;
    if (eosToken === undefined) {
      throw new KlearError(
        "TOKENIZER_INVALID",
        `${sourcePath}: a byte tokenizer needs an end-of-sequence token`,
        "add one added token (e.g. <|endoftext|>) and name it as eosToken",
      );
    }
    this.eosToken = eosToken;
    this.eosTokenId = lookupAdded(this.addedTokens, eosToken, "eos token", sourcePath)!;
    const padToken =
      opts.padToken ?? this.addedTokens.find((t) => t.content === "<|endoftext|>")?.content ?? eosToken;
    this.padToken = padToken;
    this.padTokenId = lookupAdded(this.addedTokens, padToken, "pad token", sourcePath)!;
    this.bosToken = opts.bosToken;
    this.bosTokenId = lookupAdded(this.addedTokens, opts.bosToken, "bos token", sourcePath);
    this.chatTemplate = opts.chatTemplate;
    this.modelMaxLength = opts.modelMaxLength ?? 131072;
    this.splitter = addedTokenSplitter(this.addedTokens);
  }

  encode(text: string, _opts?: TokenizerEncodeOptions): number[] {
    const ids: number[] = [];
    const pieces = this.splitter ? text.split(this.splitter) : [text];
    // split() with one capture group alternates plain text (even indexes) and added tokens (odd indexes).
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i % 2 === 1) ids.push(this.specialTokens.get(piece)!);
      else for (const b of this.encoder.encode(piece)) ids.push(b);
    }
    return ids;
  }

  decode(ids: readonly number[], opts: TokenizerDecodeOptions = {}): string {
    let out = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length > 0) out += this.decoder.decode(new Uint8Array(bytes));
      bytes = [];
    };
    for (const id of ids) {
      if (id >= 0 && id < 256) {
        bytes.push(id);
        continue;
      }
      const t = this.addedTokens[id - 256];
      // Ids past the vocabulary (a model's vocab_size may be padded beyond the tokenizer) decode to nothing,
      // as HF's tokenizers do, so sampling an untrained id never crashes a rollout.
      if (!t || (opts.skipSpecialTokens && t.special)) continue;
      flush();
      out += t.content;
    }
    flush();
    return out;
  }

  tokenToId(token: string): number | undefined {
    const added = this.specialTokens.get(token);
    if (added !== undefined) return added;
    const b = BYTE_SYMBOLS.indexOf(token);
    return b >= 0 ? b : undefined;
  }

  idToToken(id: number): string | undefined {
    if (id >= 0 && id < 256) return BYTE_SYMBOLS[id];
    return this.addedTokens[id - 256]?.content;
  }

  toFiles(): TokenizerFiles {
    const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
    const vocab: Record<string, number> = {};
    for (let b = 0; b < 256; b++) vocab[BYTE_SYMBOLS[b]] = b;
    const addedTokens = this.addedTokens.map((t) => ({
      id: t.id,
      content: t.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: t.special,
    }));
    const tokenizerJson = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: byteLevel,
      decoder: byteLevel,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
    const tokenizerConfig: Record<string, unknown> = {
      tokenizer_class: "PreTrainedTokenizerFast",
      added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
      bos_token: this.bosToken ?? null,
      eos_token: this.eosToken,
      pad_token: this.padToken,
      unk_token: null,
      clean_up_tokenization_spaces: false,
      model_max_length: this.modelMaxLength,
      add_bos_token: false,
      errors: "replace",
    };
    if (this.chatTemplate !== undefined) tokenizerConfig.chat_template = this.chatTemplate;
    return { tokenizerJson, tokenizerConfig };
  }
}

/** True when a tokenizer.json is exactly the byte tokenizer's layout (256 byte symbols with ids 0–255, no merges). */
function isByteTokenizerJson(json: Record<string, unknown>): boolean {
  const model = json.model as Record<string, unknown> | undefined;
  if (!model || model.type !== "BPE" || !Array.isArray(model.merges) || model.merges.length !== 0)
    return false;
  const vocab = model.vocab as Record<string, number> | undefined;
  if (!vocab || Object.keys(vocab).length !== 256) return false;
  for (let b = 0; b < 256; b++) if (vocab[BYTE_SYMBOLS[b]] !== b) return false;
  const added = (json.added_tokens ?? []) as { id: number }[];
  return added.every((t, i) => t.id === 256 + i);
}

// ---- HF tokenizer.json ------------------------------------------------------------------------------------

function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** A Hugging Face `tokenizer.json` (byte-level BPE and the other models @huggingface/tokenizers supports). */
export class HfTokenizer implements Tokenizer {
  readonly kind = "bpe" as const;
  readonly vocabSize: number;
  readonly eosTokenId: number;
  readonly bosTokenId?: number;
  readonly padTokenId: number;
  readonly eosToken: string;
  readonly bosToken?: string;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly addedTokens: readonly TokenizerAddedToken[];
  readonly chatTemplate?: string;
  private readonly impl: HfTokenizerImpl;
  private readonly files: TokenizerFiles;

  constructor(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    sourcePath = "tokenizer.json",
  ) {
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new KlearError(
        "TOKENIZER_INVALID",
        `${sourcePath}: cannot build the tokenizer (${(e as Error).message})`,
        "use a tokenizer.json written by HF tokenizers (save_pretrained)",
        { cause: e },
      );
    }
    this.files = { tokenizerJson, tokenizerConfig };
    const added = (Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : []) as {
      id: number;
      content: string;
      special?: boolean;
    }[];
    this.addedTokens = added.map((t) => ({ id: t.id, content: t.content, special: Boolean(t.special) }));
    this.specialTokens = new Map(this.addedTokens.map((t) => [t.content, t.id]));
    let maxId = -1;
    for (const id of this.impl.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    const resolve = (what: string, content: string | undefined): number | undefined => {
      if (content === undefined) return undefined;
      const id = this.impl.token_to_id(content);
      if (id === undefined) {
        throw new KlearError(
          "TOKENIZER_INVALID",
          `${sourcePath}: ${what} "${content}" from tokenizer_config.json is not in the vocabulary`,
          `fix ${what} in tokenizer_config.json`,
        );
      }
      return id;
    };
    const eos =
      tokenContent(tokenizerConfig.eos_token) ??
      ["<|endoftext|>", "</s>", "<|end_of_text|>"].find((t) => this.impl.token_to_id(t) !== undefined);
    if (eos === undefined) {
      throw new KlearError(
        "TOKENIZER_INVALID",
        `${sourcePath}: no end-of-sequence token (tokenizer_config.json has no eos_token)`,
        'set "eos_token" in tokenizer_config.json',
      );
    }
    this.eosToken = eos;
    this.eosTokenId = resolve("eos_token", eos)!;
    this.bosToken = tokenContent(tokenizerConfig.bos_token);
    this.bosTokenId = resolve("bos_token", this.bosToken);
    this.padTokenId = resolve("pad_token", tokenContent(tokenizerConfig.pad_token)) ?? this.eosTokenId;
    const template = tokenizerConfig.chat_template;
    if (typeof template === "string") this.chatTemplate = template;
    else if (Array.isArray(template)) {
      // HF allows a list of named templates; "default" is what apply_chat_template uses.
      const named = template.find((t) => t && t.name === "default") ?? template[0];
      if (named && typeof named.template === "string") this.chatTemplate = named.template;
    }
  }

  encode(text: string, opts: TokenizerEncodeOptions = {}): number[] {
    return this.impl.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: readonly number[], opts: TokenizerDecodeOptions = {}): string {
    return this.impl.decode(ids as number[], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.impl.id_to_token(id);
  }

  toFiles(): TokenizerFiles {
    return this.files;
  }
}

// ---- loading ----------------------------------------------------------------------------------------------

async function readJsonFile(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new KlearError(
      "TOKENIZER_MISSING",
      `${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code})`,
      "save the checkpoint with its tokenizer, or copy tokenizer.json into the folder",
      { cause: e },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new KlearError(
      "TOKENIZER_INVALID",
      `${path}: not valid JSON (${(e as Error).message})`,
      `re-create ${what}`,
      {
        cause: e,
      },
    );
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new KlearError("TOKENIZER_INVALID", `${path}: ${what} is not a JSON object`, `re-create ${what}`);
  }
  return parsed as Record<string, unknown>;
}

/** Builds the right tokenizer for a tokenizer.json (+ tokenizer_config.json) pair already parsed. */
export function tokenizerFromFiles(files: TokenizerFiles, sourcePath = "tokenizer.json"): Tokenizer {
  const { tokenizerJson, tokenizerConfig } = files;
  if (isByteTokenizerJson(tokenizerJson)) {
    const added = (tokenizerJson.added_tokens ?? []) as { content: string; special?: boolean }[];
    return new ByteTokenizer(
      {
        addedTokens: added.map((t) => ({ content: t.content, special: Boolean(t.special) })),
        eosToken: tokenContent(tokenizerConfig.eos_token),
        padToken: tokenContent(tokenizerConfig.pad_token),
        bosToken: tokenContent(tokenizerConfig.bos_token),
        chatTemplate:
          typeof tokenizerConfig.chat_template === "string" ? tokenizerConfig.chat_template : undefined,
        modelMaxLength:
          typeof tokenizerConfig.model_max_length === "number" ? tokenizerConfig.model_max_length : undefined,
      },
      sourcePath,
    );
  }
  return new HfTokenizer(tokenizerJson, tokenizerConfig, sourcePath);
}

/**
 * Loads the tokenizer of a checkpoint folder: tokenizer.json, with tokenizer_config.json and chat_template.jinja
 * when present.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const jsonPath = join(dir, "tokenizer.json");
  if (!existsSync(jsonPath)) {
    throw new KlearError(
      "TOKENIZER_MISSING",
      `${jsonPath}: tokenizer.json not found`,
      "save the checkpoint with its tokenizer (klear always writes one), or copy the base model's tokenizer.json into the folder",
    );
  }
  const tokenizerJson = await readJsonFile(jsonPath, "tokenizer.json");
  const configPath = join(dir, "tokenizer_config.json");
  const tokenizerConfig = existsSync(configPath)
    ? await readJsonFile(configPath, "tokenizer_config.json")
    : {};
  // transformers >= 4.43 saves the template as its own file, which then takes precedence over the config's.
  // Folding it into the config keeps it when klear saves the tokenizer again.
  const templatePath = join(dir, "chat_template.jinja");
  if (existsSync(templatePath)) tokenizerConfig.chat_template = await readFile(templatePath, "utf8");
  return tokenizerFromFiles({ tokenizerJson, tokenizerConfig }, jsonPath);
}

/** Throws unless every id the tokenizer can emit is below the model's vocab_size. */
export function checkTokenizerFitsVocab(
  tokenizer: Tokenizer,
  modelVocabSize: number,
  sourcePath: string,
): void {
  if (tokenizer.vocabSize > modelVocabSize) {
    throw new KlearError(
      "TOKENIZER_VOCAB_MISMATCH",
      `${sourcePath}: the tokenizer has ${tokenizer.vocabSize} ids but the model's vocab_size is ${modelVocabSize}`,
      "use the tokenizer the model was trained with, or a model whose vocab_size is at least the tokenizer's",
    );
  }
}
