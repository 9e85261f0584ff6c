import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { KlearError } from "./errors.js";

/** One line of a JSONL file: the parsed value, or why it could not be parsed. */
export type JsonlLine =
  | { ok: true; line: number; value: unknown }
  | { ok: false; line: number; error: string; text: string };

/**
 * Streams a JSONL file line by line (constant memory), reporting malformed lines with their line
 * number instead of throwing, so callers can count and report them rather than drop them silently.
 * Blank lines are skipped.
 */
export async function* readJsonl(path: string): AsyncGenerator<JsonlLine> {
  let stream: ReturnType<typeof createReadStream>;
  try {
    stream = createReadStream(path, { encoding: "utf8" });
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve());
      stream.once("error", reject);
    });
  } catch (e) {
    throw new KlearError(
      "FILE_NOT_READABLE",
      `cannot read ${path}: ${(e as Error).message}`,
      "check the path and permissions",
      { cause: e },
    );
  }
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const text of lines) {
    n++;
    if (text.trim() === "") continue;
    try {
      yield { ok: true, line: n, value: JSON.parse(text) };
    } catch (e) {
      yield { ok: false, line: n, error: (e as Error).message, text: text.slice(0, 200) };
    }
  }
}

/** Reads a whole JSONL file of objects, throwing a KlearError naming the first malformed line. */
export async function readJsonlObjects<T = Record<string, unknown>>(path: string): Promise<T[]> {
  const out: T[] = [];
  for await (const l of readJsonl(path)) {
    if (!l.ok) {
      throw new KlearError(
        "JSONL_MALFORMED",
        `${path}:${l.line}: not valid JSON (${l.error})`,
        "fix or remove that line; each line must be one JSON object",
      );
    }
    if (typeof l.value !== "object" || l.value === null || Array.isArray(l.value)) {
      throw new KlearError(
        "JSONL_MALFORMED",
        `${path}:${l.line}: expected a JSON object, got ${Array.isArray(l.value) ? "an array" : typeof l.value}`,
        "each line must be one JSON object",
      );
    }
    out.push(l.value as T);
  }
  return out;
}

export function toJsonl(rows: Iterable<unknown>): string {
  let s = "";
  for (const r of rows) s += `${JSON.stringify(r)}\n`;
  return s;
}
