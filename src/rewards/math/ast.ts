import type { Rational } from "./rational.js";

export type RelOp = "=" | "<" | "<=" | ">" | ">=" | "!=";

/**
 * The answer AST. Division is `mul` with a `pow(…, -1)` factor and subtraction is `mul(-1, …)`, so the
 * evaluator has few cases. `float` on a number marks a decimal literal: Math-Verify rounds when one
 * side holds a float, and compares exactly otherwise.
 */
export type MathNode =
  | { k: "num"; v: Rational; float: boolean }
  | { k: "sym"; name: string }
  | { k: "const"; name: "pi" | "e" | "i" | "inf" }
  | { k: "add"; args: MathNode[] }
  | { k: "mul"; args: MathNode[] }
  | { k: "pow"; base: MathNode; exp: MathNode }
  | { k: "fn"; name: string; args: MathNode[] }
  | { k: "call"; name: string; args: MathNode[] }
  | { k: "sum"; prod: boolean; v: string; lo: MathNode; hi: MathNode; body: MathNode }
  | { k: "word"; text: string }
  | { k: "rel"; ops: RelOp[]; terms: MathNode[] }
  | { k: "tuple"; items: MathNode[] }
  | { k: "set"; items: MathNode[]; pm?: boolean }
  | { k: "interval"; lo: MathNode; hi: MathNode; loOpen: boolean; hiOpen: boolean }
  | { k: "union"; items: MathNode[] }
  | { k: "matrix"; rows: MathNode[][] }
  | { k: "in"; elem: MathNode; set: MathNode };

export const num = (v: Rational, float = false): MathNode => ({ k: "num", v, float });
export const int = (n: number | bigint): MathNode => ({ k: "num", v: { n: BigInt(n), d: 1n }, float: false });
export const MINUS_ONE = int(-1);

export function neg(x: MathNode): MathNode {
  if (x.k === "num") return { k: "num", v: { n: -x.v.n, d: x.v.d }, float: x.float };
  return { k: "mul", args: [MINUS_ONE, x] };
}

export const recip = (x: MathNode): MathNode => ({ k: "pow", base: x, exp: MINUS_ONE });

/** A canonical text form: commutative arguments sorted, so `ab` and `ba` print alike. */
export function show(n: MathNode): string {
  switch (n.k) {
    case "num":
      return n.v.d === 1n ? n.v.n.toString() : `${n.v.n}/${n.v.d}`;
    case "sym":
      return n.name;
    case "const":
      return `#${n.name}`;
    case "add":
      return `(${n.args.map(show).sort().join("+")})`;
    case "mul":
      return `(${n.args.map(show).sort().join("*")})`;
    case "pow":
      return `(${show(n.base)})^(${show(n.exp)})`;
    case "fn":
    case "call":
      return `${n.name}(${n.args.map(show).join(",")})`;
    case "sum":
      return `${n.prod ? "prod" : "sum"}[${n.v},${show(n.lo)},${show(n.hi)}](${show(n.body)})`;
    case "word":
      return `"${n.text}"`;
    case "rel":
      return n.terms.map((t, i) => (i === 0 ? show(t) : `${n.ops[i - 1]}${show(t)}`)).join("");
    case "tuple":
      return `tuple(${n.items.map(show).join(",")})`;
    case "set":
      return `{${n.items.map(show).sort().join(",")}}`;
    case "interval":
      return `${n.loOpen ? "(" : "["}${show(n.lo)},${show(n.hi)}${n.hiOpen ? ")" : "]"}`;
    case "union":
      return n.items.map(show).sort().join("∪");
    case "matrix":
      return `mat[${n.rows.map((r) => r.map(show).join(",")).join(";")}]`;
    case "in":
      return `${show(n.elem)}∈${show(n.set)}`;
  }
}

/** True when a decimal literal occurs anywhere in the tree. */
export function hasFloat(n: MathNode): boolean {
  switch (n.k) {
    case "num":
      return n.float;
    case "add":
    case "mul":
    case "fn":
    case "call":
      return n.args.some(hasFloat);
    case "pow":
      return hasFloat(n.base) || hasFloat(n.exp);
    case "sum":
      return hasFloat(n.lo) || hasFloat(n.hi) || hasFloat(n.body);
    default:
      return false;
  }
}

/** Free symbols (bound summation variables excluded). */
export function freeSymbols(n: MathNode, out = new Set<string>(), bound: string[] = []): Set<string> {
  switch (n.k) {
    case "sym":
      if (!bound.includes(n.name)) out.add(n.name);
      break;
    case "add":
    case "mul":
    case "fn":
    case "call":
      for (const a of n.args) freeSymbols(a, out, bound);
      break;
    case "pow":
      freeSymbols(n.base, out, bound);
      freeSymbols(n.exp, out, bound);
      break;
    case "sum":
      freeSymbols(n.lo, out, bound);
      freeSymbols(n.hi, out, bound);
      freeSymbols(n.body, out, [...bound, n.v]);
      break;
    case "rel":
      for (const t of n.terms) freeSymbols(t, out, bound);
      break;
    case "tuple":
    case "set":
    case "union":
      for (const t of n.items) freeSymbols(t, out, bound);
      break;
    case "interval":
      freeSymbols(n.lo, out, bound);
      freeSymbols(n.hi, out, bound);
      break;
    case "matrix":
      for (const r of n.rows) for (const c of r) freeSymbols(c, out, bound);
      break;
    case "in":
      freeSymbols(n.elem, out, bound);
      freeSymbols(n.set, out, bound);
      break;
    default:
      break;
  }
  return out;
}

/** Scalar expressions: everything the numeric evaluator understands. */
export function isScalar(n: MathNode): boolean {
  return !["rel", "tuple", "set", "interval", "union", "matrix", "in", "word"].includes(n.k);
}
