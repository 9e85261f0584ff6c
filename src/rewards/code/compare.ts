/**
 * LiveCodeBench's comparison rules, done on the Node side so that expected outputs never enter the
 * sandbox: stdin/stdout by stripped lines with a Decimal fallback per token, and functional results
 * with Python's `==` over JSON values (ints exact, True == 1 == 1.0, a tuple is not a list).
 */

/** A Python value as the harness encodes it (see encode_value in harness.py) or as JSON decodes it. */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PyValue[]
  | { $tuple: PyValue[] }
  | { $dict: [PyValue, PyValue][] }
  | { $float: string }
  | { $repr: string; $type?: string };

/**
 * Parses JSON the way Python's json.loads does: integers stay exact (bigint beyond 2^53), objects
 * become dicts, and NaN / Infinity / -Infinity are accepted. Throws SyntaxError on bad input.
 */
export function parsePythonJson(text: string): PyValue {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r"))
      i++;
  };
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at offset ${i}`);
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const entries: [PyValue, PyValue][] = [];
      ws();
      if (text[i] === "}") {
        i++;
        return { $dict: entries };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a string key");
        const k = str();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        const v = value();
        const at = entries.findIndex((e) => e[0] === k);
        if (at >= 0) entries[at][1] = v;
        else entries.push([k, v]);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return { $dict: entries };
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items: PyValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return items;
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return items;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [
      ["true", true],
      ["false", false],
      ["null", null],
      ["NaN", Number.NaN],
      ["Infinity", Number.POSITIVE_INFINITY],
      ["-Infinity", Number.NEGATIVE_INFINITY],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 4096));
    if (!m) return fail("unexpected character");
    i += m[0].length;
    const n = Number(m[0]);
    // Only the value matters for ==, but integers beyond 2^53 must stay exact.
    return m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n) ? BigInt(m[0]) : n;
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i++;
      i++;
    }
    if (i >= text.length) fail("unterminated string");
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const v = value();
  ws();
  if (i !== text.length) fail("extra data");
  return v;
}

type Numeric = { kind: "int"; v: bigint } | { kind: "float"; v: number };

function asNumeric(v: PyValue): Numeric | null {
  if (typeof v === "boolean") return { kind: "int", v: v ? 1n : 0n };
  if (typeof v === "bigint") return { kind: "int", v };
  if (typeof v === "number") return { kind: "float", v };
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    if ("$float" in v) {
      const s = v.$float.toLowerCase();
      if (s === "nan") return { kind: "float", v: Number.NaN };
      if (s === "inf" || s === "infinity") return { kind: "float", v: Number.POSITIVE_INFINITY };
      if (s === "-inf" || s === "-infinity") return { kind: "float", v: Number.NEGATIVE_INFINITY };
      return { kind: "float", v: Number(v.$float) };
    }
    if ("$int" in v) return { kind: "int", v: BigInt((v as unknown as { $int: string }).$int) };
  }
  return null;
}

function numericEqual(a: Numeric, b: Numeric): boolean {
  if (a.kind === "int" && b.kind === "int") return a.v === b.v;
  if (a.kind === "float" && b.kind === "float") return a.v === b.v;
  const f = (a.kind === "float" ? a.v : b.v) as number;
  const n = (a.kind === "int" ? a.v : b.v) as bigint;
  return Number.isFinite(f) && Number.isInteger(f) && BigInt(f) === n;
}

/** Python's `a == b` for the values the harness and JSON can express. */
export function pythonEquals(a: PyValue, b: PyValue): boolean {
  const na = asNumeric(a);
  const nb = asNumeric(b);
  if (na || nb) return na !== null && nb !== null && numericEqual(na, nb);
  if (a === null || b === null) return a === b;
  if (typeof a === "string" || typeof b === "string") return a === b;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((x, k) => pythonEquals(x, b[k]))
    );
  }
  if (typeof a !== "object" || typeof b !== "object") return false;
  if ("$tuple" in a || "$tuple" in b) {
    return "$tuple" in a && "$tuple" in b && pythonEquals(a.$tuple, b.$tuple);
  }
  if ("$dict" in a || "$dict" in b) {
    if (!("$dict" in a && "$dict" in b) || a.$dict.length !== b.$dict.length) return false;
    return a.$dict.every(([k, v]) => b.$dict.some(([k2, v2]) => pythonEquals(k, k2) && pythonEquals(v, v2)));
  }
  // Sets and other objects only equal themselves, which a JSON expectation never is.
  return false;
}

/** The `$int` form the harness uses for integers beyond 2^53. */
export function reviveHarnessValue(v: unknown): PyValue {
  if (Array.isArray(v)) return v.map(reviveHarnessValue);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.$int === "string") return BigInt(o.$int);
    if (Array.isArray(o.$tuple)) return { $tuple: o.$tuple.map(reviveHarnessValue) };
    if (Array.isArray(o.$dict)) {
      return {
        $dict: (o.$dict as [unknown, unknown][]).map(([k, x]) => [
          reviveHarnessValue(k),
          reviveHarnessValue(x),
        ]),
      };
    }
    return o as PyValue;
  }
  return v as PyValue;
}

const DECIMAL_RE = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|s?nan\d*)$/i;

/** A Python Decimal reduced to a canonical form so that equal values compare equal as strings. */
function canonicalDecimal(token: string): string | null {
  // CPython's Decimal drops every underscore before parsing ("1__0" is 10, "_1" is 1).
  const t = token.replace(/_/g, "").toLowerCase();
  if (!DECIMAL_RE.test(t)) return null;
  const neg = t.startsWith("-");
  const body = t.replace(/^[+-]/, "");
  if (body.startsWith("inf")) return neg ? "-inf" : "inf";
  if (body.includes("nan")) return "nan";
  const [mant, expPart] = body.split("e");
  const exp = expPart === undefined ? 0 : Number.parseInt(expPart, 10);
  const [intPart, fracPart = ""] = mant.split(".");
  let digits = (intPart + fracPart).replace(/^0+/, "");
  let e = exp - fracPart.length;
  if (digits === "") return "0";
  while (digits.endsWith("0")) {
    digits = digits.slice(0, -1);
    e++;
  }
  return `${neg ? "-" : ""}${digits}e${e}`;
}

function decimalsEqual(a: string, b: string): boolean {
  const ta = a.split(PY_WHITESPACE).filter(Boolean);
  const tb = b.split(PY_WHITESPACE).filter(Boolean);
  const ca = ta.map(canonicalDecimal);
  if (ca.some((x) => x === null)) return false;
  const cb = tb.map(canonicalDecimal);
  if (cb.some((x) => x === null)) return false;
  return ca.length === cb.length && ca.every((x, k) => x !== "nan" && x === cb[k]);
}

// What Python's str.strip() and str.split() treat as whitespace: JS \s plus \x1c-\x1f and \x85.
const PY_WHITESPACE = /[\s\u001c-\u001f\u0085]+/u;
const pyStrip = (s: string) => s.replace(/^[\s\u001c-\u001f\u0085]+|[\s\u001c-\u001f\u0085]+$/gu, "");

/**
 * LiveCodeBench's stdio grading: strip both texts, split into lines, strip each line; lines must be
 * equal, or equal token by token as Decimals. Returns null when they match, else the reason.
 */
export function compareStdout(actual: string, expected: string): string | null {
  const a = pyStrip(actual).split("\n").map(pyStrip);
  const e = pyStrip(expected).split("\n").map(pyStrip);
  if (a.length !== e.length) return `mismatched output length: ${a.length} lines, expected ${e.length}`;
  for (let k = 0; k < a.length; k++) {
    if (a[k] === e[k] || decimalsEqual(a[k], e[k])) continue;
    return `line ${k + 1}: got ${clip(a[k])}, expected ${clip(e[k])}`;
  }
  return null;
}

export function clip(s: string, n = 80): string {
  const j = JSON.stringify(s);
  return j.length > n ? `${j.slice(0, n)}…` : j;
}

/** Python repr-like rendering of a value for failure details. */
export function showPyValue(v: PyValue): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x));
}
