import { createReadStream } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import { KlearError } from "../util/errors.js";
import { readParquetRecords } from "./parquet.js";
import { fileNotReadable, type MalformedRow, type RowRecord } from "./record.js";

export { fileNotReadable, type MalformedReason, type MalformedRow, type RowRecord } from "./record.js";

/**
 * The row reader every stage uses (data curation, eval benchmarks, RL task files, SFT chat sets):
 * JSON lines, gzipped JSON lines, parquet, JSON arrays, or a folder of such shards, streamed in
 * constant memory, with the file and line (row number for parquet and JSON arrays) of every row and
 * in every error.
 */

export interface ReadRowsOptions {
  /**
   * Called for every row that could not be read as a JSON object; it is not yielded. When absent the
   * first such row throws a `ROW_MALFORMED` KlearError naming its file and line.
   */
  onMalformed?: (m: MalformedRow) => void;
  /** Called as input bytes are consumed (progress bars; compressed bytes for `.gz`). */
  onBytes?: (n: number) => void;
}

export type RowFileFormat = "jsonl" | "jsonl.gz" | "parquet" | "json";

/** File names a folder of shards is read from, in this order of preference per file. */
const SHARD_SUFFIXES = [".jsonl", ".jsonl.gz", ".parquet", ".json", ".ndjson"] as const;

/**
 * The format of a path from its name: `.parquet`, `.gz` (gzipped JSON lines), `.json` (a JSON array, or
 * JSON lines when the file does not start with `[`), anything else JSON lines.
 */
export function rowFileFormat(path: string): RowFileFormat {
  const p = path.toLowerCase();
  if (p.endsWith(".parquet")) return "parquet";
  if (p.endsWith(".gz")) return "jsonl.gz";
  if (p.endsWith(".json")) return "json";
  return "jsonl";
}

/** Where a row is, as errors print it: `file:line` for lines, `file row n` for parquet rows and arrays. */
export function rowLocation(file: string, line: number): string {
  const f = rowFileFormat(file);
  return f === "parquet" || f === "json" ? `${file} row ${line}` : `${file}:${line}`;
}

/** The error a malformed row raises when the caller does not collect them. */
export function malformedRowError(m: MalformedRow): KlearError {
  return new KlearError(
    "ROW_MALFORMED",
    `${rowLocation(m.file, m.line)}: ${m.reason} (${m.detail})`,
    m.reason === "missing-field"
      ? "add the field to that row, or name the field that holds it (row field names option)"
      : "fix or remove that row; each row must be one JSON object",
  );
}

/**
 * The files `paths` name: files as they are, folders as their shard files (sorted by name, not
 * recursive). A folder without any shard is an error naming the extensions looked for.
 */
export async function expandRowPaths(paths: string | readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of typeof paths === "string" ? [paths] : paths) {
    let isDir: boolean;
    try {
      isDir = (await stat(p)).isDirectory();
    } catch (e) {
      throw fileNotReadable(p, e);
    }
    if (!isDir) {
      out.push(p);
      continue;
    }
    const shards = (await readdir(p))
      .filter((n) => !n.startsWith(".") && SHARD_SUFFIXES.some((s) => n.toLowerCase().endsWith(s)))
      .sort();
    if (shards.length === 0) {
      throw new KlearError(
        "ROWS_NO_SHARDS",
        `${p} is a folder without row files`,
        `put ${SHARD_SUFFIXES.join(", ")} files in it, or pass the files themselves`,
      );
    }
    for (const n of shards) out.push(join(p, n));
  }
  return out;
}

/** Streams the rows of every file `paths` names (folders as their shards), in order. */
export async function* readRows(
  paths: string | readonly string[],
  opts: ReadRowsOptions = {},
): AsyncGenerator<RowRecord> {
  const onMalformed =
    opts.onMalformed ??
    ((m: MalformedRow) => {
      throw malformedRowError(m);
    });
  const o = { ...opts, onMalformed };
  for (const file of await expandRowPaths(paths)) {
    const format = rowFileFormat(file);
    if (format === "parquet") yield* readParquetRecords(file, o);
    else if (format === "json" && (await startsWithBracket(file))) yield* readJsonArray(file, o);
    else yield* readJsonLines(file, o);
  }
}

/** All rows of `paths` in memory (benchmarks, RL task files: small sets read whole). */
export async function collectRows(
  paths: string | readonly string[],
  opts: ReadRowsOptions = {},
): Promise<RowRecord[]> {
  const out: RowRecord[] = [];
  for await (const r of readRows(paths, opts)) out.push(r);
  return out;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

type Resolved = ReadRowsOptions & { onMalformed: (m: MalformedRow) => void };

function asObject(
  value: unknown,
  file: string,
  line: number,
  opts: Resolved,
): value is Record<string, unknown> {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return true;
  opts.onMalformed({
    file,
    line,
    reason: "not-object",
    detail: `expected a JSON object, got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`,
  });
  return false;
}

async function openRowFile(path: string) {
  try {
    return await open(path, "r");
  } catch (e) {
    throw fileNotReadable(path, e);
  }
}

async function startsWithBracket(path: string): Promise<boolean> {
  const fh = await openRowFile(path);
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString("latin1").trimStart();
    return text.startsWith("[");
  } finally {
    await fh.close();
  }
}

async function* readJsonArray(path: string, opts: Resolved): AsyncGenerator<RowRecord> {
  const fh = await openRowFile(path);
  let bytes: Buffer;
  try {
    bytes = await fh.readFile();
  } finally {
    await fh.close();
  }
  opts.onBytes?.(bytes.length);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (e) {
    const utf8 = e instanceof TypeError;
    throw new KlearError(
      "ROW_MALFORMED",
      `${path}: ${utf8 ? "not valid UTF-8" : `not valid JSON (${(e as Error).message})`}`,
      "fix the file: a JSON array of row objects, or one JSON object per line (.jsonl)",
    );
  }
  const rows = value as unknown[];
  for (let i = 0; i < rows.length; i++) {
    if (asObject(rows[i], path, i + 1, opts))
      yield { row: rows[i] as Record<string, unknown>, file: path, line: i + 1 };
  }
}

/** The file's bytes as chunks: read directly, or through gunzip for `.gz`. */
async function* byteChunks(path: string, opts: ReadRowsOptions): AsyncGenerator<Buffer> {
  if (rowFileFormat(path) === "jsonl.gz") {
    const raw = createReadStream(path);
    await new Promise<void>((resolve, reject) => {
      raw.once("open", () => resolve());
      raw.once("error", (e) => reject(fileNotReadable(path, e)));
    });
    raw.on("data", (c) => opts.onBytes?.(c.length));
    const gz = raw.pipe(createGunzip());
    raw.once("error", (e) => gz.destroy(e));
    try {
      for await (const chunk of gz) yield chunk as Buffer;
    } catch (e) {
      if (e instanceof KlearError) throw e;
      throw new KlearError(
        "ROW_FILE_CORRUPT",
        `${path}: not a readable gzip file (${(e as Error).message})`,
        "check the download, or rename the file if it is not gzipped",
        { cause: e },
      );
    } finally {
      raw.destroy();
    }
    return;
  }
  const fh = await openRowFile(path);
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(1 << 20);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      opts.onBytes?.(bytesRead);
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/**
 * JSON lines from bytes rather than text, so invalid UTF-8 is detected and reported per line instead of
 * being replaced by U+FFFD without a trace.
 */
async function* readJsonLines(path: string, opts: Resolved): AsyncGenerator<RowRecord> {
  let lineNo = 0;
  const handle = (lineBytes: Buffer): RowRecord | null => {
    lineNo++;
    let len = lineBytes.length;
    if (len > 0 && lineBytes[len - 1] === 0x0d) len--;
    if (len === 0) return null;
    let text: string;
    try {
      text = decoder.decode(lineBytes.subarray(0, len));
    } catch {
      opts.onMalformed({
        file: path,
        line: lineNo,
        reason: "invalid-utf8",
        detail: "the line is not valid UTF-8",
      });
      return null;
    }
    if (text.trim() === "") return null;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      opts.onMalformed({ file: path, line: lineNo, reason: "bad-json", detail: (e as Error).message });
      return null;
    }
    if (!asObject(value, path, lineNo, opts)) return null;
    return { row: value, file: path, line: lineNo, raw: text };
  };
  // A line split across chunks is joined once at its end (every chunk is a fresh buffer, so the parts
  // held are views, and a line of any length costs one copy).
  let carry: Buffer[] = [];
  for await (const chunk of byteChunks(path, opts)) {
    let start = 0;
    let nl = chunk.indexOf(0x0a);
    while (nl !== -1) {
      const part = chunk.subarray(start, nl);
      const r = handle(carry.length === 0 ? part : Buffer.concat([...carry, part]));
      carry = [];
      if (r) yield r;
      start = nl + 1;
      nl = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.length) carry.push(chunk.subarray(start));
  }
  if (carry.length > 0) {
    const r = handle(Buffer.concat(carry));
    if (r) yield r;
  }
}
