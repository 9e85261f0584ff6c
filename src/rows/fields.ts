/**
 * The one place that knows where a row keeps its prompt, response, answer, tests and source, across
 * the formats klear meets:
 * - chat rows (HF `messages: [{role, content}]`), long-CoT SFT data;
 * - ShareGPT rows (`conversations: [{from, value}]`, roles human/gpt/system);
 * - prompt/completion rows (`{prompt, completion}`, or response/output/generation);
 * - verl/Klear RL rows (`{prompt: [{role, content}], reward_model: {ground_truth}, data_source, ability}`);
 * - problem rows (`{problem | question | ..., answer}`) and benchmark rows (`meta.answer`, `meta.solution`).
 * Every lookup takes an optional dotted path that overrides the detection, for rows in other shapes.
 */

export interface ChatMessage {
  role: string;
  content: string;
}

/** Dotted paths (e.g. `meta.question`) that override where a field is looked for. */
export interface RowFieldNames {
  /** The prompt: a string, or chat messages (their user turns). */
  prompt?: string;
  /** The response: a string, or chat messages (their last assistant turn). */
  response?: string;
  /** The whole conversation (chat or ShareGPT turns). */
  messages?: string;
  /** The reference answer (math) or ground truth. */
  answer?: string;
  /** A code row's tests. */
  tests?: string;
  /** The data source, for per-source statistics and mixing. */
  source?: string;
}

const PROMPT_KEYS = ["problem", "question", "query", "instruction", "input", "Problem"] as const;
const RESPONSE_KEYS = ["response", "completion", "output", "generation"] as const;
/** ShareGPT's speaker names, as chat roles. */
const SHAREGPT_ROLES: Record<string, string> = { human: "user", gpt: "assistant", system: "system" };

export function getPath(row: Record<string, unknown>, dotted: string): unknown {
  let v: unknown = row;
  for (const k of dotted.split(".")) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/**
 * Chat turns from `{role, content}` or ShareGPT `{from, value}` lists (roles mapped to user/assistant),
 * or null when `v` is not a list of turns.
 */
export function asChatMessages(v: unknown): ChatMessage[] | null {
  if (!Array.isArray(v) || v.length === 0) return null;
  const out: ChatMessage[] = [];
  for (const m of v) {
    if (typeof m !== "object" || m === null) return null;
    const t = m as Record<string, unknown>;
    if (typeof t.role === "string") {
      out.push({ role: t.role, content: typeof t.content === "string" ? t.content : "" });
    } else if (typeof t.from === "string") {
      out.push({
        role: SHAREGPT_ROLES[t.from] ?? t.from,
        content: typeof t.value === "string" ? t.value : "",
      });
    } else return null;
  }
  return out;
}

function userText(messages: readonly ChatMessage[]): string {
  return messages
    .filter((m) => m.role === "user" || m.role === "human")
    .map((m) => m.content)
    .join("\n");
}

function lastAssistant(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const r = messages[i].role;
    if (r === "assistant" || r === "gpt") return i;
  }
  return -1;
}

/** The conversation turns of a chat or ShareGPT row, as they are (not built from other fields). */
function turnsOf(row: Record<string, unknown>, field?: string): ChatMessage[] | null {
  if (field !== undefined) return asChatMessages(getPath(row, field));
  return asChatMessages(row.messages) ?? asChatMessages(row.conversations);
}

/**
 * The prompt text of a row in any supported format (the user turns joined by newlines, or the prompt
 * string), or null when it has none.
 */
export function rowPromptText(row: Record<string, unknown>, field?: string): string | null {
  if (field !== undefined) {
    const v = getPath(row, field);
    if (typeof v === "string") return v;
    const m = asChatMessages(v);
    return m ? userText(m) : null;
  }
  if (typeof row.prompt === "string") return row.prompt;
  const turns = asChatMessages(row.prompt) ?? turnsOf(row);
  if (turns) return userText(turns);
  for (const k of PROMPT_KEYS) if (typeof row[k] === "string") return row[k] as string;
  const meta = row.meta;
  if (typeof meta === "object" && meta !== null) {
    const p = (meta as Record<string, unknown>).problem;
    if (typeof p === "string") return p;
  }
  return null;
}

/**
 * The prompt as chat turns: verl's prompt list, the turns before a chat row's last assistant turn, or
 * one user turn holding the prompt text; null when the row has no prompt.
 */
export function rowPromptMessages(
  row: Record<string, unknown>,
  names: RowFieldNames = {},
): ChatMessage[] | null {
  if (names.prompt === undefined) {
    const listed = asChatMessages(row.prompt);
    if (listed) return listed;
    const turns = turnsOf(row, names.messages);
    if (turns) {
      const a = lastAssistant(turns);
      const before = a >= 0 ? turns.slice(0, a) : turns;
      if (before.some((m) => m.role === "user")) return before;
    }
  } else {
    const listed = asChatMessages(getPath(row, names.prompt));
    if (listed) return listed;
  }
  const text = rowPromptText(row, names.prompt);
  return text === null ? null : [{ role: "user", content: text }];
}

/**
 * The response of a row (the last assistant turn, or a response-like field); `undefined` when the
 * row carries no response at all (an RL prompt row), as opposed to an empty one.
 */
export function rowResponseText(row: Record<string, unknown>, names: RowFieldNames = {}): string | undefined {
  if (names.response !== undefined) {
    const v = getPath(row, names.response);
    if (typeof v === "string") return v;
    const m = asChatMessages(v);
    if (m) {
      const a = lastAssistant(m);
      return a >= 0 ? m[a].content : undefined;
    }
    return undefined;
  }
  const turns = turnsOf(row, names.messages);
  if (turns) {
    const a = lastAssistant(turns);
    if (a >= 0) return turns[a].content;
  }
  for (const k of RESPONSE_KEYS) if (k in row) return typeof row[k] === "string" ? (row[k] as string) : "";
  return undefined;
}

/**
 * The whole conversation for SFT: a chat/ShareGPT row's turns, or the prompt turns followed by the
 * response as an assistant turn (prompt/completion and problem/response rows); null without a prompt.
 */
export function rowMessages(row: Record<string, unknown>, names: RowFieldNames = {}): ChatMessage[] | null {
  const turns =
    names.prompt === undefined && names.response === undefined ? turnsOf(row, names.messages) : null;
  if (turns) return turns;
  const prompt = rowPromptMessages(row, names);
  if (prompt === null) return null;
  const response = rowResponseText(row, names);
  return response === undefined ? prompt : [...prompt, { role: "assistant", content: response }];
}

/** A value as answer text: numbers as written (27.0 → "27"), structures as JSON. */
export function answerText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

/** The reference answer of a row (verl ground truth, `answer`, or a benchmark's `meta.answer` / `meta.solution`). */
export function rowAnswer(row: Record<string, unknown>, field?: string): string | undefined {
  if (field !== undefined) return answerText(getPath(row, field));
  const rm = row.reward_model as Record<string, unknown> | undefined;
  if (rm && typeof rm === "object" && rm.ground_truth !== undefined && rm.ground_truth !== null) {
    return answerText(rm.ground_truth);
  }
  if (row.answer !== undefined && row.answer !== null) return answerText(row.answer);
  const meta = row.meta as Record<string, unknown> | undefined;
  if (meta && typeof meta === "object") return answerText(meta.answer) ?? answerText(meta.solution);
  return undefined;
}

/**
 * A code row's tests as stored (parse them with `codeTestsFromGroundTruth`): `tests`, `input_output`
 * (APPS/TACO), or a code row's `reward_model.ground_truth`; undefined when the row has none.
 */
export function rowTests(row: Record<string, unknown>, field?: string): unknown {
  if (field !== undefined) return getPath(row, field);
  if (row.tests !== undefined && row.tests !== null) return row.tests;
  if (row.input_output !== undefined && row.input_output !== null) return row.input_output;
  const rm = row.reward_model as Record<string, unknown> | undefined;
  if (String(row.ability ?? "").toLowerCase() === "code" && rm && typeof rm === "object")
    return rm.ground_truth;
  return undefined;
}

/** The source a row came from, for per-source statistics, ranking and mixing. */
export function rowSource(row: Record<string, unknown>, field?: string): string {
  const v = field !== undefined ? getPath(row, field) : (row.data_source ?? row.source ?? row.dataset);
  return typeof v === "string" && v !== "" ? v : "unknown";
}

/** Every field of a row, found once. */
export interface RowFields {
  /** The prompt text (user turns joined), or null when the row has none. */
  prompt: string | null;
  /** The prompt as chat turns (see {@link rowPromptMessages}). */
  promptMessages: ChatMessage[] | null;
  /** The conversation including the response (see {@link rowMessages}). */
  messages: ChatMessage[] | null;
  /** Undefined when the row has no response; "" when it has an empty one. */
  response: string | undefined;
  answer: string | undefined;
  tests: unknown;
  source: string;
}

/** All of a row's fields, found with the default detection or at the paths `names` gives. */
export function sniffRowFields(row: Record<string, unknown>, names: RowFieldNames = {}): RowFields {
  return {
    prompt: rowPromptText(row, names.prompt),
    promptMessages: rowPromptMessages(row, names),
    messages: rowMessages(row, names),
    response: rowResponseText(row, names),
    answer: rowAnswer(row, names.answer),
    tests: rowTests(row, names.tests),
    source: rowSource(row, names.source),
  };
}
