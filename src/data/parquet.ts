import type { SchemaElement } from "hyparquet";
import { readRows } from "../rows/read.js";
import { KlearError } from "../util/errors.js";

/**
 * The shape klear infers for a JSON field so it can be written as native parquet (nested structs and
 * lists, as verl's and HF datasets' parquet files are) and read back to the same JSON value. Anything
 * that has no faithful native form (explicit nulls, mixed types, empty objects, lists that are always
 * empty) falls back to a JSON-string leaf, so the round trip is lossless in every case.
 */
export type ParquetShape =
  | { kind: "string" | "bool" | "int" | "double" | "json" }
  | { kind: "struct"; fields: Map<string, ParquetShape> }
  | { kind: "list"; element: ParquetShape | null };

const JSON_SHAPE: ParquetShape = { kind: "json" };

function shapeOfValue(v: unknown): ParquetShape {
  if (v === null) return JSON_SHAPE;
  switch (typeof v) {
    case "string":
      return { kind: "string" };
    case "boolean":
      return { kind: "bool" };
    case "number":
      return { kind: Number.isSafeInteger(v) ? "int" : "double" };
    case "object": {
      if (Array.isArray(v)) {
        let element: ParquetShape | null = null;
        for (const x of v)
          element = element === null ? shapeOfValue(x) : mergeShapes(element, shapeOfValue(x));
        return { kind: "list", element };
      }
      const fields = new Map<string, ParquetShape>();
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x !== undefined) fields.set(k, shapeOfValue(x));
      }
      return fields.size === 0 ? JSON_SHAPE : { kind: "struct", fields };
    }
    default:
      return JSON_SHAPE;
  }
}

export function mergeShapes(a: ParquetShape, b: ParquetShape): ParquetShape {
  if (a.kind === "json" || b.kind === "json") return JSON_SHAPE;
  if (a.kind === "struct" && b.kind === "struct") {
    const fields = new Map(a.fields);
    for (const [k, s] of b.fields) {
      const prev = fields.get(k);
      fields.set(k, prev ? mergeShapes(prev, s) : s);
    }
    return { kind: "struct", fields };
  }
  if (a.kind === "list" && b.kind === "list") {
    const element =
      a.element === null ? b.element : b.element === null ? a.element : mergeShapes(a.element, b.element);
    return { kind: "list", element };
  }
  if (a.kind === b.kind) return a;
  if ((a.kind === "int" && b.kind === "double") || (a.kind === "double" && b.kind === "int")) {
    return { kind: "double" };
  }
  return JSON_SHAPE;
}

/** Finalises a shape: lists that never held an element become JSON leaves. */
function settle(s: ParquetShape): ParquetShape {
  if (s.kind === "list")
    return s.element === null ? JSON_SHAPE : { kind: "list", element: settle(s.element) };
  if (s.kind === "struct") {
    const fields = new Map<string, ParquetShape>();
    for (const [k, x] of s.fields) fields.set(k, settle(x));
    return { kind: "struct", fields };
  }
  return s;
}

/** Incrementally infers the row shape of a stream of rows. */
export class ParquetShapeBuilder {
  private shape: ParquetShape | null = null;
  add(row: Record<string, unknown>): void {
    const s = shapeOfValue(row);
    // A row that is `{}` is a struct with no fields, which shapeOfValue turns into JSON; keep rows structs.
    const rowShape: ParquetShape = s.kind === "struct" ? s : { kind: "struct", fields: new Map() };
    this.shape = this.shape === null ? rowShape : mergeShapes(this.shape, rowShape);
  }
  build(): ParquetShape & { kind: "struct" } {
    const s = this.shape === null ? { kind: "struct" as const, fields: new Map() } : settle(this.shape);
    if (s.kind !== "struct") throw new Error("row shape must be a struct");
    return s;
  }
}

function leaf(name: string, kind: ParquetShape["kind"]): SchemaElement {
  const base = { name, repetition_type: "OPTIONAL" as const };
  switch (kind) {
    case "string":
      return { ...base, type: "BYTE_ARRAY", converted_type: "UTF8" };
    case "bool":
      return { ...base, type: "BOOLEAN" };
    case "int":
      return { ...base, type: "INT64" };
    case "double":
      return { ...base, type: "DOUBLE" };
    default:
      return { ...base, type: "BYTE_ARRAY", converted_type: "JSON" };
  }
}

function schemaOf(name: string, s: ParquetShape, out: SchemaElement[]): void {
  if (s.kind === "struct") {
    out.push({ name, repetition_type: "OPTIONAL", num_children: s.fields.size });
    for (const [k, x] of s.fields) schemaOf(k, x, out);
  } else if (s.kind === "list" && s.element !== null) {
    out.push({ name, repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 });
    out.push({ name: "list", repetition_type: "REPEATED", num_children: 1 });
    schemaOf("element", s.element, out);
  } else {
    out.push(leaf(name, s.kind));
  }
}

/** The flattened parquet schema (the three-level LIST layout pyarrow and verl's files use). */
export function parquetSchemaOf(shape: ParquetShape & { kind: "struct" }): SchemaElement[] {
  const out: SchemaElement[] = [{ name: "root", num_children: shape.fields.size }];
  for (const [k, s] of shape.fields) schemaOf(k, s, out);
  return out;
}

/** Encodes one JSON value for the writer: ints as bigint, fallbacks as JSON text, missing as null. */
export function encodeForParquet(s: ParquetShape, v: unknown): unknown {
  if (v === undefined) return null;
  switch (s.kind) {
    case "json":
      return JSON.stringify(v);
    case "int":
      return BigInt(v as number);
    case "struct": {
      const out: Record<string, unknown> = {};
      const obj = v as Record<string, unknown>;
      for (const [k, x] of s.fields) out[k] = encodeForParquet(x, obj[k]);
      return out;
    }
    case "list":
      return (v as unknown[]).map((x) => encodeForParquet(s.element as ParquetShape, x));
    default:
      return v;
  }
}

/**
 * Writes the rows of a (valid) jsonl file as parquet at `path`, not atomically: data/io's
 * `writeParquetFromJsonl` wraps it in a temporary sibling and a rename. One pass infers the shape, a
 * second streams row groups, so memory is bounded by the row group size. `outName` names the output
 * in errors.
 */
export async function writeParquetFile(
  jsonlPath: string,
  path: string,
  outName: string,
  opts: { rowGroupSize?: number } = {},
): Promise<void> {
  const builder = new ParquetShapeBuilder();
  for await (const r of readRows(jsonlPath)) builder.add(r.row);
  const shape = builder.build();
  if (shape.fields.size === 0) {
    throw new KlearError(
      "PARQUET_EMPTY",
      `cannot write ${outName}: no rows (or rows without fields) to write`,
      "parquet needs at least one column; write .jsonl for empty outputs",
    );
  }
  const schema = parquetSchemaOf(shape);
  const { fileWriter, parquetWriteRows } = await import("hyparquet-writer");
  const fields = [...shape.fields];
  const writer = fileWriter(path);
  async function* encoded() {
    for await (const r of readRows(jsonlPath)) {
      const out: Record<string, unknown> = {};
      for (const [k, s] of fields) out[k] = encodeForParquet(s, r.row[k]);
      yield out;
    }
  }
  await parquetWriteRows({
    writer,
    rows: encoded(),
    columns: fields.map(([name]) => ({ name })),
    schema: schema as Parameters<typeof parquetWriteRows>[0]["schema"],
    rowGroupSize: opts.rowGroupSize ?? 10_000,
  });
  writer.finish();
}
