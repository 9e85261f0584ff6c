import type { SchemaTree } from "hyparquet";
import { KlearError } from "../util/errors.js";
import { fileNotReadable, type MalformedRow, type RowRecord } from "./record.js";

/**
 * Parquet rows as JSON values: nested structs and lists (verl's and HF datasets' files) read natively,
 * klear's JSON-text leaves (what the writer falls back to for values with no faithful parquet form)
 * parsed back, so a file klear wrote reads back to the rows it was written from.
 */

/**
 * Dotted paths (lists add `[]`) of the JSON-text leaves in a parquet schema, so a reader can parse
 * them back. Works on any file's schema, not only klear's.
 */
export function jsonLeafPaths(tree: SchemaTree): Set<string> {
  const out = new Set<string>();
  const walk = (node: SchemaTree, path: string): void => {
    if (node.children.length === 0) {
      if (node.element.converted_type === "JSON") out.add(path);
    } else if (isListLike(node)) {
      walk(node.children[0].children[0], `${path}[]`);
    } else {
      for (const c of node.children) walk(c, path === "" ? c.element.name : `${path}.${c.element.name}`);
    }
  };
  walk(tree, "");
  return out;
}

function isListLike(node: SchemaTree): boolean {
  if (node.element.converted_type !== "LIST" || node.children.length !== 1) return false;
  const rep = node.children[0];
  return rep.element.repetition_type === "REPEATED" && rep.children.length === 1;
}

/** Undoes the parquet encodings: JSON leaves parsed, INT64 back to numbers, nulls dropped. */
export function decodeFromParquet(v: unknown, jsonPaths: ReadonlySet<string>, path = ""): unknown {
  if (v === null || v === undefined) return undefined;
  if (jsonPaths.has(path) && typeof v === "string") return JSON.parse(v);
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (Array.isArray(v)) {
    const p = `${path}[]`;
    return v.map((x) => {
      const y = decodeFromParquet(x, jsonPaths, p);
      return y === undefined ? null : y;
    });
  }
  if (typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const y = decodeFromParquet(x, jsonPaths, path === "" ? k : `${path}.${k}`);
      if (y !== undefined) out[k] = y;
    }
    return out;
  }
  return v;
}

/** Streams a parquet file one row group at a time; `line` is the 1-based row number. */
export async function* readParquetRecords(
  path: string,
  opts: { onMalformed: (m: MalformedRow) => void; onBytes?: (n: number) => void },
): AsyncGenerator<RowRecord> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } = await import(
    "hyparquet"
  );
  let file: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  try {
    file = await asyncBufferFromFile(path);
  } catch (e) {
    throw fileNotReadable(path, e);
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
  const jsonPaths = jsonLeafPaths(parquetSchema(metadata));
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd });
    } catch (e) {
      throw new KlearError(
        "PARQUET_INVALID",
        `${path} rows ${rowStart + 1}..${rowEnd}: cannot decode (${(e as Error).message})`,
        "check the file (a truncated download?)",
        { cause: e },
      );
    }
    opts.onBytes?.(Number(group.total_byte_size));
    for (let i = 0; i < rows.length; i++) {
      const line = rowStart + i + 1;
      let row: Record<string, unknown>;
      try {
        row = decodeFromParquet(rows[i], jsonPaths) as Record<string, unknown>;
      } catch (e) {
        opts.onMalformed({ file: path, line, reason: "bad-json", detail: (e as Error).message });
        continue;
      }
      yield { row, file: path, line };
    }
    rowStart = rowEnd;
  }
}
