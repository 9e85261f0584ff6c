import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { KlearError } from "../util/errors.js";

/** Why a row was set aside; every malformed row is counted under one of these and reported. */
export type MalformedReason =
  | "bad-json"
  | "not-object"
  | "invalid-utf8"
  | "missing-field"
  | "empty-response"
  | "bad-row";

export interface MalformedRow {
  file: string;
  /** 1-based line number in a jsonl file, or 1-based row number in a parquet file. */
  line: number;
  reason: MalformedReason;
  detail: string;
}

/** One parsed row and where it came from. */
export interface DataRecord {
  value: Record<string, unknown>;
  file: string;
  line: number;
  /** The exact source line (jsonl only), so unchanged rows are written back byte for byte. */
  raw?: string;
}

export interface ReadDataOptions {
  /** Called for every row that could not be read as a JSON object; it is not yielded. */
  onMalformed?: (m: MalformedRow) => void;
  /** Called as input bytes are consumed (progress bars). */
  onBytes?: (n: number) => void;
}

export type DataFormat = "jsonl" | "parquet";

/** The on-disk format of a path, from its extension: `.parquet` is parquet, anything else jsonl. */
export function dataFormatOf(path: string): DataFormat {
  return path.toLowerCase().endsWith(".parquet") ? "parquet" : "jsonl";
}

async function openError(path: string, e: unknown): Promise<never> {
  throw new KlearError(
    "FILE_NOT_READABLE",
    `cannot read ${path}: ${(e as Error).message}`,
    "check the path and permissions",
    { cause: e },
  );
}

/**
 * Streams rows from a jsonl or parquet file in constant memory (jsonl: one chunk; parquet: one row
 * group). Unlike util/jsonl's reader this works on bytes, so invalid UTF-8 is detected and reported
 * per line instead of being replaced by U+FFFD without a trace.
 */
export async function* readDataRows(path: string, opts: ReadDataOptions = {}): AsyncGenerator<DataRecord> {
  if (dataFormatOf(path) === "parquet") yield* readParquetRows(path, opts);
  else yield* readJsonlRows(path, opts);
}

const decoder = new TextDecoder("utf-8", { fatal: true });

async function* readJsonlRows(path: string, opts: ReadDataOptions): AsyncGenerator<DataRecord> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, "r");
  } catch (e) {
    return openError(path, e);
  }
  const chunkSize = 1 << 20;
  let buf = Buffer.allocUnsafe(chunkSize * 2);
  let start = 0;
  let end = 0;
  let lineNo = 0;
  let eof = false;
  const handle = function* (lineBytes: Buffer): Generator<DataRecord> {
    lineNo++;
    let len = lineBytes.length;
    if (len > 0 && lineBytes[len - 1] === 0x0d) len--;
    if (len === 0) return;
    let text: string;
    try {
      text = decoder.decode(lineBytes.subarray(0, len));
    } catch {
      opts.onMalformed?.({
        file: path,
        line: lineNo,
        reason: "invalid-utf8",
        detail: "the line is not valid UTF-8",
      });
      return;
    }
    if (text.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      opts.onMalformed?.({ file: path, line: lineNo, reason: "bad-json", detail: (e as Error).message });
      return;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      opts.onMalformed?.({
        file: path,
        line: lineNo,
        reason: "not-object",
        detail: `expected a JSON object, got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`,
      });
      return;
    }
    yield { value: value as Record<string, unknown>, file: path, line: lineNo, raw: text };
  };
  try {
    while (!eof) {
      if (buf.length - end < chunkSize) {
        // Compact, or grow when one line is longer than the buffer.
        const pending = end - start;
        const next = pending + chunkSize > buf.length ? Buffer.allocUnsafe((pending + chunkSize) * 2) : buf;
        buf.copy(next, 0, start, end);
        buf = next;
        start = 0;
        end = pending;
      }
      const { bytesRead } = await fh.read(buf, end, chunkSize, null);
      if (bytesRead === 0) eof = true;
      const scanFrom = end;
      end += bytesRead;
      opts.onBytes?.(bytesRead);
      let nl = buf.indexOf(0x0a, scanFrom);
      while (nl !== -1 && nl < end) {
        yield* handle(buf.subarray(start, nl));
        start = nl + 1;
        nl = buf.indexOf(0x0a, start);
      }
    }
    if (end > start) yield* handle(buf.subarray(start, end));
  } finally {
    await fh.close();
  }
}

async function* readParquetRows(path: string, opts: ReadDataOptions): AsyncGenerator<DataRecord> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } = await import(
    "hyparquet"
  );
  let file: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  try {
    file = await asyncBufferFromFile(path);
  } catch (e) {
    return openError(path, e);
  }
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    throw new KlearError(
      "PARQUET_INVALID",
      `${path} is not a readable parquet file: ${(e as Error).message}`,
      "check that the file is parquet (or rename it to .jsonl if it is JSON lines)",
      { cause: e },
    );
  }
  const { decodeFromParquet, jsonLeafPaths } = await import("./parquet.js");
  const jsonPaths = jsonLeafPaths(parquetSchema(metadata));
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd });
    opts.onBytes?.(Number(group.total_byte_size));
    for (let i = 0; i < rows.length; i++) {
      const value = decodeFromParquet(rows[i], jsonPaths) as Record<string, unknown>;
      yield { value, file: path, line: rowStart + i + 1 };
    }
    rowStart = rowEnd;
  }
}

/** sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    return openError(path, e);
  }
}

function tempSiblingOf(path: string): string {
  return join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp-${basename(path)}`);
}

/** A row sink. `close()` makes the output appear atomically; `abort()` leaves no trace. */
export interface DataWriter {
  write(row: Record<string, unknown>, raw?: string): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
  readonly rows: number;
}

/**
 * Streams JSON lines to a temporary sibling and renames it over `path` on close, so readers see the
 * old file or the complete new one, never a torn one, however large the output.
 */
export async function openJsonlWriter(path: string): Promise<DataWriter> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempSiblingOf(path);
  const fh = await open(tmp, "w");
  let pending: string[] = [];
  let pendingBytes = 0;
  let rows = 0;
  let closed = false;
  const flush = async () => {
    if (pending.length === 0) return;
    const data = pending.join("");
    pending = [];
    pendingBytes = 0;
    await fh.write(data);
  };
  return {
    get rows() {
      return rows;
    },
    async write(row, raw) {
      const line = `${raw ?? JSON.stringify(row)}\n`;
      pending.push(line);
      pendingBytes += line.length;
      rows++;
      if (pendingBytes >= 1 << 20) await flush();
    },
    async close() {
      if (closed) return;
      closed = true;
      await flush();
      await fh.sync();
      await fh.close();
      await rename(tmp, path);
    },
    async abort() {
      if (closed) return;
      closed = true;
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
    },
  };
}

/**
 * Parquet needs its schema before the first row, so rows are spooled to a temporary jsonl, the
 * schema is inferred over all of them, and the parquet file is then written one row group at a time
 * (memory bounded by the row group, not the file) and renamed into place.
 */
export async function openParquetWriter(
  path: string,
  opts: { rowGroupSize?: number } = {},
): Promise<DataWriter> {
  const spoolPath = tempSiblingOf(`${path}.spool.jsonl`);
  const spool = await openJsonlWriter(spoolPath);
  let closed = false;
  return {
    get rows() {
      return spool.rows;
    },
    write: (row) => spool.write(row),
    async close() {
      if (closed) return;
      closed = true;
      await spool.close();
      try {
        const { writeParquetFromJsonl } = await import("./parquet.js");
        await writeParquetFromJsonl(spoolPath, path, opts);
      } finally {
        await rm(spoolPath, { force: true });
      }
    },
    async abort() {
      if (closed) return;
      closed = true;
      await spool.abort();
    },
  };
}

/** A writer for `path` in the format its extension names. */
export function openDataWriter(path: string): Promise<DataWriter> {
  return dataFormatOf(path) === "parquet" ? openParquetWriter(path) : openJsonlWriter(path);
}

/** Makes a streamed output appear at `path` atomically: `build` writes a temporary sibling first. */
export async function atomicStreamFile(
  path: string,
  build: (tmpPath: string) => Promise<void>,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempSiblingOf(path);
  try {
    await build(tmp);
    const fh = await open(tmp, "r+");
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
