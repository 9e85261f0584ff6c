import {
  asChatMessages,
  type ChatMessage,
  rowAnswer,
  rowMessages,
  rowPromptText,
  rowResponseText,
  rowSource,
} from "../rows/fields.js";
import type { MalformedReason } from "../rows/read.js";
import { ConfigError } from "../util/errors.js";

/**
 * Row formats klear reads and writes:
 * - chat rows (HF "messages"): `{messages: [{role, content}...], ...}`, long-CoT SFT data;
 * - verl/Klear RL rows: `{data_source, prompt: [{role, content}], ability, reward_model: {ground_truth, style}, extra_info?}`;
 * - problem rows: `{problem | question, answer?, data_source?, ability?, ...}`, as most public sets ship.
 * The text that dedup and decontamination look at is the prompt (the user turns), as in the paper.
 */

export type { ChatMessage };

export interface VerlRow {
  data_source: string;
  prompt: ChatMessage[];
  ability: string;
  reward_model: { ground_truth: string; style: string };
  extra_info?: Record<string, unknown>;
  [key: string]: unknown;
}

export { rowAnswer, rowPromptText, rowResponseText, rowSource };

function isMessages(v: unknown): v is ChatMessage[] {
  return asChatMessages(v) !== null;
}

export interface RowCheckOptions {
  /** Dotted path of the prompt text; detected when absent. */
  textField?: string;
  /** Rows must carry a response (SFT data); RL prompt rows need not. */
  requireResponse?: boolean;
}

/**
 * Why a parsed row is unusable, or null when it is fine: no prompt text, an empty prompt, or a
 * present-but-empty response (a failed generation that would train the model to say nothing).
 */
export function checkDataRow(
  row: Record<string, unknown>,
  opts: RowCheckOptions = {},
): { reason: MalformedReason; detail: string } | null {
  const prompt = rowPromptText(row, opts.textField);
  if (prompt === null) {
    return {
      reason: "missing-field",
      detail: opts.textField
        ? `no text at "${opts.textField}"`
        : "no prompt: expected prompt, messages (user turn), problem or question",
    };
  }
  if (prompt.trim() === "") return { reason: "missing-field", detail: "the prompt is empty" };
  const response = rowResponseText(row);
  if (response === undefined && opts.requireResponse) {
    return {
      reason: "missing-field",
      detail: "no response: expected an assistant message or a response field",
    };
  }
  if (response !== undefined && response.trim() === "") {
    return { reason: "empty-response", detail: "the response is empty" };
  }
  return null;
}

export interface ToVerlOptions {
  /** data_source when the row has none. */
  dataSource?: string;
  /** ability when the row has none ("math" or "code"). */
  ability?: string;
  /** Adds `extra_info.split`, as verl's example preprocessors do. */
  split?: string;
  /** Adds `extra_info.index`. */
  index?: number;
}

const PROBLEM_ROW_USED = new Set(["problem", "question", "answer", "data_source", "ability", "style"]);

/**
 * A verl/Klear RL row from a problem row, a chat row or a benchmark row. Fields the RL row has no
 * slot for are kept under `extra_info`, so {@link fromVerlRow} restores a problem row exactly.
 */
export function toVerlRow(row: Record<string, unknown>, opts: ToVerlOptions = {}): VerlRow {
  if (isMessages(row.prompt) && typeof row.reward_model === "object" && row.reward_model !== null) {
    return row as VerlRow;
  }
  const prompt = rowPromptText(row);
  const answer = rowAnswer(row);
  if (prompt === null || answer === undefined) {
    throw new ConfigError(
      `cannot make a verl row: ${prompt === null ? "no prompt text" : "no answer (answer, reward_model.ground_truth or meta.answer)"}`,
      "give rows a problem/question (or messages) and an answer",
    );
  }
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) if (!PROBLEM_ROW_USED.has(k)) extra[k] = v;
  if (typeof row.question === "string" && typeof row.problem !== "string")
    extra.klear_prompt_key = "question";
  if (opts.split !== undefined) extra.split = opts.split;
  if (opts.index !== undefined) extra.index = opts.index;
  const out: VerlRow = {
    data_source: typeof row.data_source === "string" ? row.data_source : (opts.dataSource ?? "unknown"),
    prompt: [{ role: "user", content: prompt }],
    ability: typeof row.ability === "string" ? row.ability : (opts.ability ?? "math"),
    reward_model: { ground_truth: answer, style: typeof row.style === "string" ? row.style : "rule" },
  };
  if (Object.keys(extra).length > 0) out.extra_info = extra;
  return out;
}

/** The problem row a verl row was made from (the inverse of {@link toVerlRow} on problem rows). */
export function fromVerlRow(row: VerlRow): Record<string, unknown> {
  const extra = { ...(row.extra_info ?? {}) };
  const promptKey = extra.klear_prompt_key === "question" ? "question" : "problem";
  delete extra.klear_prompt_key;
  const out: Record<string, unknown> = {
    [promptKey]: rowPromptText(row) ?? "",
    answer: row.reward_model.ground_truth,
    data_source: row.data_source,
    ability: row.ability,
  };
  if (row.reward_model.style !== "rule") out.style = row.reward_model.style;
  return { ...out, ...extra };
}

/** A chat row (HF "messages") from any supported row; the response, when present, is the assistant turn. */
export function toChatRow(row: Record<string, unknown>): Record<string, unknown> {
  if (isMessages(row.messages)) return row;
  const messages = rowMessages(row);
  if (messages === null) {
    throw new ConfigError(
      "cannot make a chat row: the row has no prompt text",
      "give rows a prompt or problem",
    );
  }
  const out: Record<string, unknown> = { messages };
  const source = rowSource(row);
  if (source !== "unknown") out.data_source = source;
  return out;
}

export const ROW_FORMATS = ["verl", "chat", "problem", "same"] as const;
export type RowFormat = (typeof ROW_FORMATS)[number];

/** Converts a row to `format` ("same" keeps it as it is). */
export function convertRow(row: Record<string, unknown>, format: RowFormat, opts: ToVerlOptions = {}) {
  switch (format) {
    case "verl":
      return toVerlRow(row, opts) as Record<string, unknown>;
    case "chat":
      return toChatRow(row);
    case "problem":
      return isMessages(row.prompt) && typeof row.reward_model === "object"
        ? fromVerlRow(row as VerlRow)
        : row;
    default:
      return row;
  }
}
