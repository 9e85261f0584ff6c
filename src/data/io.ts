import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileNotReadable, type MalformedRow, readRows } from "../rows/read.js";
import { writeParquetFile } from "./parquet.js";

export type { MalformedReason, MalformedRow } from "../rows/read.js";

/** One parsed row and where it came from (rows/'s `RowRecord`, with the row under `value`). */
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

/** The format a path is written in, from its extension: `.parquet` is parquet, anything else jsonl. */
export function dataFormatOf(path: string): DataFormat {
  return path.toLowerCase().endsWith(".parquet") ? "parquet" : "jsonl";
}

function openError(path: string, e: unknown): never {
  throw fileNotReadable(path, e);
}

/**
 * Streams rows through rows/'s reader (jsonl, .jsonl.gz, parquet, shard folders) in constant memory.
 * Malformed rows go to `onMalformed` (the pipeline counts and reports them), or are skipped.
 */
export async function* readDataRows(path: string, opts: ReadDataOptions = {}): AsyncGenerator<DataRecord> {
  const onMalformed = opts.onMalformed ?? (() => {});
  for await (const r of readRows(path, { onMalformed, onBytes: opts.onBytes })) {
    yield { value: r.row, file: r.file, line: r.line, raw: r.raw };
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

/**
 * Writes the rows of a jsonl file as parquet at `outPath` (atomically): one pass infers the shape,
 * a second streams row groups, so memory is bounded by the row group size.
 */
export function writeParquetFromJsonl(
  jsonlPath: string,
  outPath: string,
  opts: { rowGroupSize?: number } = {},
): Promise<void> {
  return atomicStreamFile(outPath, (tmp) => writeParquetFile(jsonlPath, tmp, outPath, opts));
}
