/**
 * Token layouts. Every objective works on one flat float64 buffer of response tokens plus row offsets,
 * so callers may pass either rows (`[batch][tokens]`, any mix of number[] and typed arrays) or one flat
 * array with `lengths`; the result comes back flat in the same token order, with row views beside it.
 */
import { ConfigError } from "../../util/errors.js";

/** A list of numbers: number[], Float32Array, Float64Array, … */
export type NumberList = ArrayLike<number>;
/** Per-token values as rows ([batch][tokens]) or flat (then `lengths` gives the rows). */
export type TokenValues = NumberList | readonly NumberList[];
/** A loss mask: 1/true = the token counts, 0/false = it gets no loss and exactly zero gradient. */
export type TokenMask = TokenValues | ArrayLike<boolean> | readonly ArrayLike<boolean>[];

/** Row structure shared by every per-token array of one call. */
export interface TokenLayout {
  /** offsets[i]..offsets[i+1] are row i's tokens in the flat buffers; length = rows + 1. */
  readonly offsets: Int32Array;
  readonly rows: number;
  readonly tokens: number;
}

function isRows(values: unknown): values is readonly ArrayLike<unknown>[] {
  if (!Array.isArray(values)) return false;
  if (values.length === 0) return false;
  const first = values[0];
  return (
    typeof first === "object" && first !== null && typeof (first as ArrayLike<unknown>).length === "number"
  );
}

/** Builds the layout from rows or from flat values with explicit lengths. */
export function tokenLayout(
  values: TokenValues,
  lengths: NumberList | undefined,
  field: string,
): TokenLayout {
  if (isRows(values)) {
    const offsets = new Int32Array(values.length + 1);
    for (let i = 0; i < values.length; i++) offsets[i + 1] = offsets[i] + values[i].length;
    if (lengths !== undefined) checkLengths(lengths, offsets, field);
    return { offsets, rows: values.length, tokens: offsets[values.length] };
  }
  const flat = values as NumberList;
  if (lengths === undefined) {
    // A flat array without lengths is one sequence: the common single-response case.
    return { offsets: Int32Array.of(0, flat.length), rows: 1, tokens: flat.length };
  }
  const offsets = new Int32Array(lengths.length + 1);
  for (let i = 0; i < lengths.length; i++) {
    const n = lengths[i];
    if (!Number.isInteger(n) || n < 0) {
      throw new ConfigError(
        `lengths[${i}] = ${n} is not a non-negative integer`,
        "pass token counts per row",
      );
    }
    offsets[i + 1] = offsets[i] + n;
  }
  if (offsets[lengths.length] !== flat.length) {
    throw new ConfigError(
      `${field} has ${flat.length} values but lengths sum to ${offsets[lengths.length]}`,
      `make lengths add up to the number of tokens in ${field}, or pass ${field} as rows`,
    );
  }
  return { offsets, rows: lengths.length, tokens: flat.length };
}

function checkLengths(lengths: NumberList, offsets: Int32Array, field: string): void {
  const rows = offsets.length - 1;
  let same = lengths.length === rows;
  for (let i = 0; same && i < rows; i++) same = lengths[i] === offsets[i + 1] - offsets[i];
  if (!same) {
    throw new ConfigError(
      `${field} is given as rows whose lengths disagree with the lengths option`,
      "drop lengths when passing rows, or make them match",
    );
  }
}

/** Copies per-token values into a flat float64 buffer, checking they match the layout. */
export function flattenTokens(values: TokenValues, layout: TokenLayout, field: string): Float64Array {
  const out = new Float64Array(layout.tokens);
  if (isRows(values)) {
    if (values.length !== layout.rows) {
      throw new ConfigError(`${field} has ${values.length} rows, expected ${layout.rows}`, rowsFix(field));
    }
    for (let i = 0; i < layout.rows; i++) {
      const row = values[i] as NumberList;
      const start = layout.offsets[i];
      const n = layout.offsets[i + 1] - start;
      if (row.length !== n) {
        throw new ConfigError(`${field}[${i}] has ${row.length} tokens, expected ${n}`, rowsFix(field));
      }
      for (let t = 0; t < n; t++) out[start + t] = row[t];
    }
    return out;
  }
  const flat = values as NumberList;
  if (flat.length !== layout.tokens) {
    throw new ConfigError(`${field} has ${flat.length} values, expected ${layout.tokens}`, rowsFix(field));
  }
  for (let k = 0; k < flat.length; k++) out[k] = flat[k];
  return out;
}

function rowsFix(field: string): string {
  return `give ${field} the same shape as logp (rows of equal lengths, or flat with the same lengths)`;
}

/** The mask as 0/1 bytes; absent means every token counts. */
export function flattenMask(mask: TokenMask | undefined, layout: TokenLayout): Uint8Array {
  const out = new Uint8Array(layout.tokens);
  if (mask === undefined) return out.fill(1);
  const values = flattenTokens(
    mapMask(mask as TokenValues | readonly ArrayLike<boolean>[] | ArrayLike<boolean>),
    layout,
    "mask",
  );
  for (let k = 0; k < out.length; k++) out[k] = values[k] !== 0 ? 1 : 0;
  return out;
}

function mapMask(mask: unknown): TokenValues {
  const toNumbers = (row: ArrayLike<unknown>): NumberList =>
    typeof row[0] === "boolean" ? Array.from(row, (v) => (v ? 1 : 0)) : (row as NumberList);
  if (isRows(mask)) return (mask as ArrayLike<unknown>[]).map(toNumbers);
  return toNumbers(mask as ArrayLike<unknown>);
}

/**
 * Advantages per sequence (one per row) or per token (same shape as logp), returned per token.
 * Flat input of length `rows` is per sequence; of length `tokens` it is per token (when the two coincide
 * every row has one token and both readings agree).
 */
export function broadcastPerSequence(values: TokenValues, layout: TokenLayout, field: string): Float64Array {
  if (isRows(values)) return flattenTokens(values, layout, field);
  const flat = values as NumberList;
  if (flat.length === layout.tokens) return flattenTokens(flat, layout, field);
  if (flat.length !== layout.rows) {
    throw new ConfigError(
      `${field} has ${flat.length} values; expected ${layout.rows} (one per sequence) or ${layout.tokens} (one per token)`,
      `pass ${field} per sequence or per token`,
    );
  }
  const out = new Float64Array(layout.tokens);
  for (let i = 0; i < layout.rows; i++) out.fill(flat[i], layout.offsets[i], layout.offsets[i + 1]);
  return out;
}

/** Zero-copy row views over a flat buffer, in the caller's row order. */
export function rowViews(flat: Float64Array, layout: TokenLayout): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let i = 0; i < layout.rows; i++) rows.push(flat.subarray(layout.offsets[i], layout.offsets[i + 1]));
  return rows;
}
