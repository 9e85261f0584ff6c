/**
 * SFT rows → tokenized training examples. Files are read by the one row reader (src/rows); this module only
 * knows the turn shapes SFT needs beyond it: `reasoning_content` on assistant turns and configurable role /
 * content / from / value keys (a thin adapter over the reader's field lookup), then renders each conversation
 * with the checkpoint's chat template and its assistant-only loss mask.
 */
import { type ChatTemplateMessage, renderTrainingConversation, type TrainOnTurns } from "../model/chat.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { type MalformedRow, readRows, rowFieldAt, rowLocation } from "../rows/index.js";
import { KlearError } from "../util/errors.js";
import type { SftConfig, SftFormat, SftSource } from "./config.js";

export type SftFields = SftConfig["data"]["fields"];

/** Why a row was not trained on: the reader's causes, and what SFT itself checks. */
export type SftDropCause =
  | MalformedRow["reason"]
  | "no-turns"
  | "bad-turn"
  | "no-assistant-turn"
  | "template-error"
  | "too-long"
  | "no-loss-tokens";

/** A conversation ready to train on: token ids and which of them carry loss. */
export interface SftExample {
  ids: Int32Array;
  /** 1 where the token is one the assistant generates in a trained turn. */
  lossMask: Uint8Array;
  /** The source's name (for per-source counts). */
  source: string;
  /** `file:line` of the row. */
  where: string;
}

export interface SftDropped {
  where: string;
  cause: SftDropCause;
  detail: string;
}

/** What reading the data did: rows kept, truncated and dropped by cause (and the first drops, for errors). */
export interface SftDataSummary {
  rows: number;
  kept: number;
  truncated: number;
  dropped: Partial<Record<SftDropCause, number>>;
  firstDropped: SftDropped[];
  perSource: Record<string, { rows: number; kept: number }>;
}

export function emptySummary(): SftDataSummary {
  return { rows: 0, kept: 0, truncated: 0, dropped: {}, firstDropped: [], perSource: {} };
}

class RowProblem extends Error {
  constructor(
    readonly dropCause: SftDropCause,
    detail: string,
  ) {
    super(detail);
  }
}

const SHAREGPT_ROLES: Record<string, string> = {
  human: "user",
  user: "user",
  gpt: "assistant",
  assistant: "assistant",
  system: "system",
  tool: "tool",
};

/** A turn's text: a string, or the text parts of a content list ([{type: "text", text}]). */
function textOf(v: unknown, where: string): string {
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.every((p) => p && typeof p === "object" && typeof p.text === "string")) {
    return v.map((p) => p.text).join("");
  }
  throw new RowProblem("bad-turn", `${where} is ${v === undefined ? "missing" : `not text (${typeof v})`}`);
}

function turnsFrom(
  list: unknown,
  shape: "chat" | "sharegpt",
  f: SftFields,
  what: string,
): ChatTemplateMessage[] {
  if (!Array.isArray(list) || list.length === 0) {
    throw new RowProblem("no-turns", `${what} is ${Array.isArray(list) ? "empty" : "not a list of turns"}`);
  }
  return list.map((t, i) => {
    if (!t || typeof t !== "object" || Array.isArray(t))
      throw new RowProblem("bad-turn", `${what}[${i}] is not an object`);
    const turn = t as Record<string, unknown>;
    const speaker = turn[shape === "chat" ? f.role : f.from];
    if (typeof speaker !== "string") {
      throw new RowProblem("bad-turn", `${what}[${i}] has no "${shape === "chat" ? f.role : f.from}" string`);
    }
    const role = shape === "chat" ? speaker : (SHAREGPT_ROLES[speaker] ?? speaker);
    const msg: ChatTemplateMessage = {
      role,
      content: textOf(
        turn[shape === "chat" ? f.content : f.value],
        `${what}[${i}].${shape === "chat" ? f.content : f.value}`,
      ),
    };
    const reasoning = turn[f.reasoning];
    if (role === "assistant" && typeof reasoning === "string" && reasoning !== "")
      msg.reasoning_content = reasoning;
    return msg;
  });
}

/** JSON can spell an unpaired surrogate (\\ud800) that no UTF-8 encodes: such text is not valid Unicode. */
function hasLoneSurrogate(s: string): boolean {
  return /\p{Surrogate}/u.test(s);
}

function sniffFormat(row: Record<string, unknown>, f: SftFields): Exclude<SftFormat, "auto"> | null {
  if (rowFieldAt(row, f.messages) !== undefined) return "messages";
  if (rowFieldAt(row, f.conversations) !== undefined) return "conversations";
  if (rowFieldAt(row, f.prompt) !== undefined) return "prompt-completion";
  return null;
}

/** prompt/completion where either side is text or a list of turns (TRL's conversational prompt-completion). */
function promptCompletionTurns(row: Record<string, unknown>, f: SftFields): ChatTemplateMessage[] {
  const prompt = rowFieldAt(row, f.prompt);
  const completion = rowFieldAt(row, f.completion);
  if (prompt === undefined) throw new RowProblem("missing-field", `no "${f.prompt}" field`);
  if (completion === undefined) throw new RowProblem("missing-field", `no "${f.completion}" field`);
  const side = (v: unknown, role: string, name: string) =>
    Array.isArray(v) ? turnsFrom(v, "chat", f, name) : [{ role, content: textOf(v, name) }];
  return [...side(prompt, "user", f.prompt), ...side(completion, "assistant", f.completion)];
}

/** The conversation of one row, in the source's format (sniffed per row for `auto`). */
export function rowConversation(
  row: Record<string, unknown>,
  format: SftFormat,
  f: SftFields,
): ChatTemplateMessage[] {
  const kind = format === "auto" ? sniffFormat(row, f) : format;
  if (kind === null) {
    throw new RowProblem(
      "missing-field",
      `no "${f.messages}", "${f.conversations}" or "${f.prompt}" field (keys: ${Object.keys(row).slice(0, 8).join(", ")})`,
    );
  }
  let turns: ChatTemplateMessage[];
  if (kind === "prompt-completion") turns = promptCompletionTurns(row, f);
  else {
    const name = kind === "messages" ? f.messages : f.conversations;
    const list = rowFieldAt(row, name);
    if (list === undefined) throw new RowProblem("missing-field", `no "${name}" field`);
    turns = turnsFrom(list, kind === "messages" ? "chat" : "sharegpt", f, name);
  }
  const system = rowFieldAt(row, f.system);
  if (typeof system === "string" && system !== "" && turns[0]?.role !== "system") {
    turns = [{ role: "system", content: system }, ...turns];
  }
  if (!turns.some((m) => m.role === "assistant" && (m.content !== "" || m.reasoning_content))) {
    throw new RowProblem("no-assistant-turn", "no non-empty assistant turn to train on");
  }
  for (const m of turns) {
    if (hasLoneSurrogate(m.content) || (m.reasoning_content && hasLoneSurrogate(m.reasoning_content))) {
      throw new RowProblem("invalid-utf8", "a turn holds an unpaired UTF-16 surrogate (invalid Unicode)");
    }
  }
  return turns;
}

export interface EncodeOptions {
  template: "chat" | "none";
  trainOn: TrainOnTurns;
  maxTokens: number;
  overLong: "truncate" | "drop";
}

/**
 * Tokens and loss mask of a conversation. `template: "none"` is plain prompt + completion + EOS (for rows that
 * are not chats, as the arithmetic demo's), the loss on the completion and EOS.
 */
export function encodeConversation(
  tokenizer: Tokenizer,
  turns: readonly ChatTemplateMessage[],
  opts: EncodeOptions,
): { ids: Int32Array; lossMask: Uint8Array; truncated: boolean } {
  let ids: number[];
  let mask: Uint8Array;
  if (opts.template === "none") {
    if (turns.length !== 2 || turns[0].role !== "user" || turns[1].role !== "assistant") {
      throw new RowProblem("bad-turn", 'render.template "none" needs one prompt and one completion');
    }
    const prompt = tokenizer.encode(turns[0].content);
    const completion = [...tokenizer.encode(turns[1].content), tokenizer.eosTokenId];
    ids = [...prompt, ...completion];
    mask = new Uint8Array(ids.length).fill(1, prompt.length);
  } else {
    try {
      const r = renderTrainingConversation(tokenizer, turns, { trainOn: opts.trainOn });
      ids = r.ids;
      mask = r.assistantMask;
    } catch (e) {
      if (e instanceof KlearError) throw new RowProblem("template-error", e.message);
      throw e;
    }
  }
  let truncated = false;
  if (ids.length > opts.maxTokens) {
    if (opts.overLong === "drop") {
      throw new RowProblem("too-long", `${ids.length} tokens > pack.maxTokens ${opts.maxTokens}`);
    }
    ids = ids.slice(0, opts.maxTokens);
    mask = mask.slice(0, opts.maxTokens);
    truncated = true;
  }
  // Token 0 is never predicted, so a mask only there trains nothing.
  if (mask.indexOf(1, 1) < 0) {
    throw new RowProblem(
      "no-loss-tokens",
      truncated ? "no assistant token within pack.maxTokens" : "no assistant token",
    );
  }
  return { ids: Int32Array.from(ids), lossMask: mask, truncated };
}

function sourceName(s: SftSource): string {
  return s.name || (typeof s.path === "string" ? s.path : (s.path[0] ?? "(none)"));
}

export interface ReadSftOptions extends EncodeOptions {
  onBadRow: "skip" | "error";
  maxRows: number;
  fields: SftFields;
  summary: SftDataSummary;
  /** Called as input bytes are read (progress). */
  onBytes?: (n: number) => void;
}

function drop(summary: SftDataSummary, d: SftDropped): void {
  summary.dropped[d.cause] = (summary.dropped[d.cause] ?? 0) + 1;
  if (summary.firstDropped.length < 5) summary.firstDropped.push(d);
}

function badRowError(d: SftDropped): KlearError {
  return new KlearError(
    "SFT_BAD_ROW",
    `${d.where}: ${d.cause} (${d.detail})`,
    d.cause === "missing-field" || d.cause === "bad-turn"
      ? "fix the row, or name the fields that hold the turns (data.fields.* or the source's fields); data.onBadRow=skip skips such rows"
      : "fix or remove the row, or pass --data.onBadRow=skip to skip and count such rows",
  );
}

/** Reads, renders and tokenizes every row of one source, counting what was dropped and why. */
export async function readSftSource(
  tokenizer: Tokenizer,
  source: SftSource,
  opts: ReadSftOptions,
): Promise<SftExample[]> {
  const name = sourceName(source);
  const f = { ...opts.fields, ...source.fields };
  const { summary } = opts;
  const per = (summary.perSource[name] ??= { rows: 0, kept: 0 });
  const out: SftExample[] = [];
  const onMalformed = (m: MalformedRow) => {
    summary.rows++;
    per.rows++;
    const d = { where: rowLocation(m.file, m.line), cause: m.reason, detail: m.detail };
    if (opts.onBadRow === "error") throw badRowError(d);
    drop(summary, d);
  };
  for await (const rec of readRows(source.path, { onMalformed, onBytes: opts.onBytes })) {
    if (opts.maxRows > 0 && per.rows >= opts.maxRows) break;
    summary.rows++;
    per.rows++;
    const where = rowLocation(rec.file, rec.line);
    try {
      const turns = rowConversation(rec.row, source.format, f);
      const { ids, lossMask, truncated } = encodeConversation(tokenizer, turns, opts);
      if (truncated) summary.truncated++;
      out.push({ ids, lossMask, source: name, where });
      summary.kept++;
      per.kept++;
    } catch (e) {
      if (!(e instanceof RowProblem)) throw e;
      const d = { where, cause: e.dropCause, detail: e.message };
      if (opts.onBadRow === "error") throw badRowError(d);
      drop(summary, d);
    }
  }
  return out;
}

/** One line per cause, for logs: "12 rows: 9 kept (1 truncated); dropped: 2 bad-json, 1 no-assistant-turn". */
export function describeSummary(s: SftDataSummary): string {
  const dropped = Object.entries(s.dropped).map(([cause, n]) => `${n} ${cause}`);
  return `${s.rows} rows: ${s.kept} kept (${s.truncated} truncated)${dropped.length ? `; dropped: ${dropped.join(", ")}` : ""}`;
}

/** Throws when no row survived, naming the first failures and what to change. */
export function checkSomeRowsKept(s: SftDataSummary, what: string): void {
  if (s.kept > 0) return;
  const first = s.firstDropped.map((d) => `  ${d.where}: ${d.cause} (${d.detail})`).join("\n");
  const causes = Object.keys(s.dropped);
  const fix =
    causes.includes("missing-field") || causes.includes("bad-turn") || causes.includes("no-turns")
      ? "name the fields that hold the turns (data.fields.messages / conversations / prompt / completion / role / content) or set the source's format"
      : causes.includes("too-long") || causes.includes("no-loss-tokens")
        ? "raise pack.maxTokens, or use data.overLong=truncate"
        : "check that the files are the chat rows you meant (jsonl, .jsonl.gz or parquet)";
  throw new KlearError(
    "SFT_NO_ROWS",
    `${what}: none of the ${s.rows} rows can be trained on (${describeSummary(s)}); first failures:\n${first || "  (the files hold no rows)"}`,
    fix,
  );
}
