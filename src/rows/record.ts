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
  /** 1-based line number in a jsonl file, or 1-based row number in a parquet file or JSON array. */
  line: number;
  reason: MalformedReason;
  detail: string;
}

/** One parsed row and where it came from. */
export interface RowRecord {
  row: Record<string, unknown>;
  file: string;
  line: number;
  /** The exact source line (jsonl only), so unchanged rows are written back byte for byte. */
  raw?: string;
}

export function fileNotReadable(path: string, e: unknown): KlearError {
  return new KlearError(
    "FILE_NOT_READABLE",
    `cannot read ${path}: ${(e as Error).message}`,
    "check the path and permissions",
    { cause: e },
  );
}
