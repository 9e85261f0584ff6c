import { freeSymbols, hasFloat, isScalar, type MathNode, neg, type RelOp, show } from "./ast.js";
import type { Budget } from "./budget.js";
import { type Complex, exactValue, numericValue } from "./evaluate.js";
import { ratEq } from "./rational.js";

/**
 * Math-Verify's comparison rules (grader.py) over our AST. Gold decides the format: an assignment in
 * gold is unwrapped only when its left side is a bare name, an equation in the prediction is reduced to
 * its last right-hand side when gold is not an equation, sets are unordered, tuples ordered, intervals
 * need the same open/closed ends. Numbers compare exactly unless a decimal literal is present, in
 * which case both sides are rounded to `floatRounding` decimals.
 */
export interface CompareOptions {
  floatRounding: number;
  strict: boolean;
  allowSetRelationComp: boolean;
}

export function mathEqual(gold: MathNode, pred: MathNode, opts: CompareOptions, budget: Budget): boolean {
  return new Comparer(opts, budget).equal(gold, pred);
}

const SAMPLE_POINTS = [
  [1.3137, 0.7219, 2.1553, 1.8871, 0.4127, 2.6341],
  [0.8243, 1.9317, 1.1171, 2.4517, 1.5923, 0.6037],
  [2.2719, 1.4483, 0.5561, 1.0297, 2.8811, 1.7743],
  [1.6871, 2.7187, 1.3359, 0.9461, 1.2113, 2.0579],
  // Small and negative values keep functions with narrow domains (arcsin) comparable and tell |x| from x.
  [0.3119, 0.5483, 0.2671, 0.4457, 0.6329, 0.1877],
  [-0.4271, -0.6619, 0.7433, -0.2357, 0.5171, -0.8123],
];
const INT_POINTS = [
  [3, 5, 2, 7, 4, 6],
  [6, 2, 5, 3, 8, 4],
];

class Comparer {
  constructor(
    private readonly o: CompareOptions,
    private readonly budget: Budget,
  ) {}

  equal(g: MathNode, p: MathNode): boolean {
    this.budget.step();
    if (show(g) === show(p)) return true;
    if (g.k === "matrix" && (p.k === "add" || p.k === "mul")) p = foldMatrix(p) ?? p;
    if (g.k === "in") return this.equal(g.set, p);
    if (p.k === "in") return this.equal(g, p.set);

    if (g.k === "rel" && p.k === "rel") return this.relEqual(g, p);
    if (g.k === "rel") {
      if (isAssignment(g)) return this.equal(g.terms[g.terms.length - 1], p);
      const asSet = relationAsSet(g);
      if (asSet && (p.k === "interval" || p.k === "union" || p.k === "tuple" || p.k === "set")) {
        return this.equal(asSet, p);
      }
      return false;
    }
    if (p.k === "rel") {
      if (p.ops.every((op) => op === "=")) return this.equal(g, p.terms[p.terms.length - 1]);
      if (this.o.allowSetRelationComp && (g.k === "interval" || g.k === "union")) {
        const asSet = relationAsSet(p);
        return asSet ? this.equal(g, asSet) : false;
      }
      return false;
    }

    if (g.k === "set") {
      const gi = this.dedupeValues(g.items);
      // A set is not answered by a tuple: {1,2} vs (1,2) is a hard negative.
      if (p.k === "set") return this.unorderedEqual(gi, this.dedupeValues(p.items));
      if (gi.length === 1) return this.equal(gi[0], p);
      return false;
    }
    if (p.k === "set") {
      const pi = this.dedupeValues(p.items);
      if (g.k === "tuple") return this.orderedEqual(g.items, pi);
      if (g.k === "interval" && g.loOpen && g.hiOpen) return this.orderedEqual([g.lo, g.hi], pi);
      if (pi.length === 1) return this.equal(g, pi[0]);
      return false;
    }
    if (g.k === "tuple") {
      if (p.k === "tuple") return this.orderedEqual(g.items, p.items);
      if (p.k === "interval" && p.loOpen && p.hiOpen) return this.orderedEqual(g.items, [p.lo, p.hi]);
      return false;
    }
    if (g.k === "interval") {
      if (p.k === "interval") {
        return (
          g.loOpen === p.loOpen && g.hiOpen === p.hiOpen && this.equal(g.lo, p.lo) && this.equal(g.hi, p.hi)
        );
      }
      if (p.k === "tuple" && g.loOpen && g.hiOpen) return this.orderedEqual([g.lo, g.hi], p.items);
      if (p.k === "union" && p.items.length === 1) return this.equal(g, p.items[0]);
      return false;
    }
    if (g.k === "union") {
      if (p.k === "union") return this.unorderedEqual(g.items, p.items);
      return g.items.length === 1 ? this.equal(g.items[0], p) : false;
    }
    if (g.k === "matrix") {
      if (p.k === "matrix") {
        if (g.rows.length !== p.rows.length) return false;
        return g.rows.every((r, i) => this.orderedEqual(r, p.rows[i]));
      }
      return false;
    }
    if (p.k === "tuple" || p.k === "interval" || p.k === "union" || p.k === "matrix") return false;
    if (g.k === "word" || p.k === "word") return wordEqual(g, p);
    if (!isScalar(g) || !isScalar(p)) return false;
    return this.scalarEqual(g, p);
  }

  /** Set members equal in value collapse, as in a sympy FiniteSet ({2½, 5/2} has one member). */
  private dedupeValues(items: MathNode[]): MathNode[] {
    const out: MathNode[] = [];
    for (const it of dedupe(items)) if (!out.some((o) => this.equal(o, it))) out.push(it);
    return out;
  }

  private orderedEqual(a: MathNode[], b: MathNode[]): boolean {
    return a.length === b.length && a.every((x, i) => this.equal(x, b[i]));
  }

  private unorderedEqual(a: MathNode[], b: MathNode[]): boolean {
    if (a.length !== b.length) return false;
    const used = new Array<boolean>(b.length).fill(false);
    outer: for (const x of a) {
      for (let j = 0; j < b.length; j++) {
        if (!used[j] && this.equal(x, b[j])) {
          used[j] = true;
          continue outer;
        }
      }
      return false;
    }
    return true;
  }

  private relEqual(g: Extract<MathNode, { k: "rel" }>, p: Extract<MathNode, { k: "rel" }>): boolean {
    const gc = canonicalRel(g);
    const pc = canonicalRel(p);
    if (gc.ops.length !== pc.ops.length) return false;
    if (gc.ops.length === 1) {
      if (gc.ops[0] !== pc.ops[0]) return false;
      const [gl, gr] = gc.terms;
      const [pl, pr] = pc.terms;
      const symmetric = gc.ops[0] === "=" || gc.ops[0] === "!=";
      if (this.equal(gl, pl) && this.equal(gr, pr)) return true;
      if (symmetric && this.equal(gl, pr) && this.equal(gr, pl)) return true;
      if (!isScalar(gl) || !isScalar(gr) || !isScalar(pl) || !isScalar(pr)) return false;
      const gd: MathNode = { k: "add", args: [gr, neg(gl)] };
      const pd: MathNode = { k: "add", args: [pr, neg(pl)] };
      return this.proportional(gd, pd, !symmetric);
    }
    return gc.ops.every((op, i) => op === pc.ops[i]) && this.orderedEqual(gc.terms, pc.terms);
  }

  /** Two differences describe the same relation when their ratio is a constant (positive for <, ≤). */
  private proportional(a: MathNode, b: MathNode, positive: boolean): boolean {
    const syms = [...new Set([...freeSymbols(a), ...freeSymbols(b)])];
    let ratio: number | null = null;
    let defined = 0;
    for (const pt of [...SAMPLE_POINTS, ...INT_POINTS]) {
      const env = new Map(syms.map((s, i) => [s, pt[i % pt.length] + Math.floor(i / pt.length) * 0.173]));
      const va = numericValue(a, this.budget, env);
      const vb = numericValue(b, this.budget, env);
      if (!isFiniteC(va) || !isFiniteC(vb) || va.im !== 0 || vb.im !== 0) continue;
      if (Math.abs(vb.re) < 1e-12) {
        if (Math.abs(va.re) < 1e-12) continue;
        return false;
      }
      const r = va.re / vb.re;
      if (ratio === null) ratio = r;
      else if (Math.abs(r - ratio) > 1e-8 * Math.max(1, Math.abs(ratio))) return false;
      defined++;
    }
    if (ratio === null || defined < 2 || Math.abs(ratio) < 1e-12) return false;
    return !positive || ratio > 0;
  }

  scalarEqual(g: MathNode, p: MathNode): boolean {
    const gs = freeSymbols(g);
    const ps = freeSymbols(p);
    const floats = hasFloat(g) || hasFloat(p);
    if (gs.size === 0 && ps.size === 0) {
      if (!floats) {
        const eg = exactValue(g, this.budget);
        const ep = exactValue(p, this.budget);
        if (eg && ep) return ratEq(eg, ep);
      }
      const env = new Map<string, number>();
      return this.close(numericValue(g, this.budget, env), numericValue(p, this.budget, env), floats);
    }
    let renamed = p;
    if (!this.o.strict && gs.size === ps.size && [...gs].some((s) => !ps.has(s))) {
      renamed = renameSymbols(p, [...ps].sort(), [...gs].sort());
    }
    const syms = [...new Set([...gs, ...freeSymbols(renamed)])].sort();
    const complexAnswer = usesImaginary(g) || usesImaginary(renamed);
    let defined = 0;
    for (const [idx, pt] of [...SAMPLE_POINTS, ...INT_POINTS].entries()) {
      const env = new Map(
        syms.map((s, i) => [
          s,
          pt[i % pt.length] + (idx < SAMPLE_POINTS.length ? Math.floor(i / pt.length) * 0.173 : 0),
        ]),
      );
      const vg = numericValue(g, this.budget, env);
      const vp = numericValue(renamed, this.budget, env);
      // Off the real domain (x^{2/3} at x < 0) the branch chosen decides the value: skip such points
      // unless the answer is complex anyway.
      if ((vg.im !== 0 || vp.im !== 0) && !complexAnswer) continue;
      const dg = isFiniteC(vg);
      const dp = isFiniteC(vp);
      if (!dg && !dp) continue;
      if (dg !== dp) return false;
      if (!this.close(vg, vp, floats, true)) return false;
      defined++;
    }
    return defined >= 2;
  }

  private close(a: Complex, b: Complex, floats: boolean, sampled = false): boolean {
    if (Number.isNaN(a.re) || Number.isNaN(b.re)) return false;
    if (!Number.isFinite(a.re) || !Number.isFinite(b.re)) return a.re === b.re && a.im === b.im;
    if (floats && !sampled) {
      return (
        roundTo(a.re, this.o.floatRounding) === roundTo(b.re, this.o.floatRounding) &&
        roundTo(a.im, this.o.floatRounding) === roundTo(b.im, this.o.floatRounding)
      );
    }
    const scale = Math.max(1, Math.abs(a.re), Math.abs(b.re), Math.abs(a.im), Math.abs(b.im));
    const tol = floats ? 10 ** -this.o.floatRounding : 1e-10;
    return Math.abs(a.re - b.re) <= tol * scale && Math.abs(a.im - b.im) <= tol * scale;
  }
}

function roundTo(x: number, digits: number): number {
  const f = 10 ** digits;
  // A relative nudge absorbs binary noise (0.0833333…·1e6 must round like the decimal it came from).
  return Math.round(x * f * (1 + 1e-14 * Math.sign(x))) / f;
}

const isFiniteC = (c: Complex) => Number.isFinite(c.re) && Number.isFinite(c.im);

function dedupe(items: MathNode[]): MathNode[] {
  const seen = new Set<string>();
  const out: MathNode[] = [];
  for (const it of items) {
    const key = show(it);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(it);
    }
  }
  return out;
}

function hasNumberLiteral(n: MathNode): boolean {
  switch (n.k) {
    case "num":
      return true;
    case "add":
      return true;
    case "mul":
      return n.args.some((a) => (a.k === "num" ? !(a.v.n === -1n && a.v.d === 1n) : hasNumberLiteral(a)));
    case "pow":
      // x^{-1} is how division is stored; only the base counts.
      return hasNumberLiteral(n.base) || (n.exp.k !== "num" && hasNumberLiteral(n.exp));
    case "fn":
      return n.name === "abs" ? n.args.some(hasNumberLiteral) : true;
    case "call":
      return false;
    case "tuple":
      return n.items.some(hasNumberLiteral);
    case "sym":
    case "const":
      return false;
    default:
      return true;
  }
}

/** `k = 1`, `f(x) = 1`, `|AB| = 1`, `A:B = 1`, `(p,q) = (3,2)`: the left side only names the answer. */
function isAssignment(r: Extract<MathNode, { k: "rel" }>): boolean {
  if (!r.ops.every((op) => op === "=")) return false;
  const lhs = r.terms[r.terms.length - 2];
  return !hasNumberLiteral(lhs) && freeSymbols(lhs).size > 0;
}

/** Chains of = collapse to first = last; > and ≥ are flipped to < and ≤. */
function canonicalRel(r: Extract<MathNode, { k: "rel" }>): { ops: RelOp[]; terms: MathNode[] } {
  if (r.ops.every((op) => op === "=") && r.terms.length > 2) {
    return { ops: ["="], terms: [r.terms[0], r.terms[r.terms.length - 1]] };
  }
  if (r.ops.every((op) => op === ">" || op === ">=")) {
    return {
      ops: [...r.ops].reverse().map((op) => (op === ">" ? "<" : "<=")),
      terms: [...r.terms].reverse(),
    };
  }
  return { ops: r.ops, terms: r.terms };
}

const NEG_INF: MathNode = {
  k: "mul",
  args: [
    { k: "num", v: { n: -1n, d: 1n }, float: false },
    { k: "const", name: "inf" },
  ],
};
const POS_INF: MathNode = { k: "const", name: "inf" };

/** `a < x ≤ b` → (a, b]; `x ≥ 5` → [5, ∞); the variable side is the one with free symbols. */
function relationAsSet(r: Extract<MathNode, { k: "rel" }>): MathNode | null {
  const c = canonicalRel(r);
  if (c.ops.length === 2 && c.ops.every((op) => op === "<" || op === "<=")) {
    const [lo, mid, hi] = c.terms;
    if (mid.k === "fn" && mid.name === "abs" && freeSymbols(lo).size === 0 && freeSymbols(hi).size === 0) {
      // a ≤ |z| ≤ b  →  [−b, −a] ∪ [a, b]
      const loOpen = c.ops[0] === "<";
      const hiOpen = c.ops[1] === "<";
      return {
        k: "union",
        items: [
          { k: "interval", lo: neg(hi), hi: neg(lo), loOpen: hiOpen, hiOpen: loOpen },
          { k: "interval", lo, hi, loOpen, hiOpen },
        ],
      };
    }
    if (freeSymbols(mid).size === 0 || freeSymbols(lo).size > 0 || freeSymbols(hi).size > 0) return null;
    return { k: "interval", lo, hi, loOpen: c.ops[0] === "<", hiOpen: c.ops[1] === "<" };
  }
  if (c.ops.length !== 1) return null;
  const [l, rr] = c.terms;
  const op = c.ops[0];
  const lv = freeSymbols(l).size > 0;
  const rv = freeSymbols(rr).size > 0;
  if (lv === rv) return null;
  const bound = lv ? rr : l;
  if (op === "!=") {
    return {
      k: "union",
      items: [
        { k: "interval", lo: NEG_INF, hi: bound, loOpen: true, hiOpen: true },
        { k: "interval", lo: bound, hi: POS_INF, loOpen: true, hiOpen: true },
      ],
    };
  }
  if (op === "=") return { k: "set", items: [bound] };
  const strict = op === "<";
  // var < bound  → (−∞, bound);  bound < var → (bound, ∞)
  return lv
    ? { k: "interval", lo: NEG_INF, hi: bound, loOpen: true, hiOpen: strict }
    : { k: "interval", lo: bound, hi: POS_INF, loOpen: strict, hiOpen: true };
}

function renameSymbols(n: MathNode, from: string[], to: string[]): MathNode {
  const map = new Map(from.map((f, i) => [f, to[i]]));
  const walk = (x: MathNode): MathNode => {
    switch (x.k) {
      case "sym":
        return map.has(x.name) ? { k: "sym", name: map.get(x.name) as string } : x;
      case "add":
      case "mul":
        return { k: x.k, args: x.args.map(walk) };
      case "fn":
      case "call":
        return { ...x, args: x.args.map(walk) };
      case "pow":
        return { k: "pow", base: walk(x.base), exp: walk(x.exp) };
      default:
        return x;
    }
  };
  return walk(n);
}

/** `\text{Even}` matches `Even` read as E·v·e·n; `\text{e}` matches the constant e. */
function wordEqual(g: MathNode, p: MathNode): boolean {
  const asWord = (n: MathNode): string | null => {
    if (n.k === "word") return n.text.replace(/\s+/g, "");
    if (n.k === "sym") return n.name.toLowerCase();
    if (n.k === "const") return n.name === "e" || n.name === "i" ? n.name : null;
    if (n.k === "mul") {
      let s = "";
      for (const a of n.args) {
        const w = asWord(a);
        if (w === null) return null;
        s += w;
      }
      return s;
    }
    return null;
  };
  const a = asWord(g);
  const b = asWord(p);
  return a !== null && a === b;
}

type Matrix = MathNode[][];

/** Sums and products of explicit matrices (`A + B`, `A B`, `2A`), built symbolically element by element. */
function foldMatrix(n: MathNode): MathNode | null {
  const val = (x: MathNode): Matrix | MathNode | null => {
    if (x.k === "matrix") return x.rows;
    if (x.k === "add") {
      const parts = x.args.map(val);
      if (!parts.every((q) => Array.isArray(q))) return null;
      const ms = parts as Matrix[];
      const [r, c] = [ms[0].length, ms[0][0].length];
      if (!ms.every((m) => m.length === r && m.every((row) => row.length === c))) return null;
      return ms[0].map((row, i) =>
        row.map((_, j) => ({ k: "add", args: ms.map((m) => m[i][j]) }) as MathNode),
      );
    }
    if (x.k === "mul") {
      let acc: Matrix | null = null;
      const scalars: MathNode[] = [];
      for (const a of x.args) {
        const v = val(a);
        if (v === null) return null;
        if (Array.isArray(v)) {
          if (acc === null) acc = v;
          else {
            const A: Matrix = acc;
            if (A[0].length !== v.length) return null;
            acc = A.map((row) =>
              v[0].map(
                (_, j) =>
                  ({
                    k: "add",
                    args: row.map((aik, kk) => ({ k: "mul", args: [aik, v[kk][j]] })),
                  }) as MathNode,
              ),
            );
          }
        } else scalars.push(v);
      }
      if (acc === null) return x;
      return scalars.length
        ? acc.map((row) => row.map((e) => ({ k: "mul", args: [...scalars, e] }) as MathNode))
        : acc;
    }
    return isScalar(x) ? x : null;
  };
  const v = val(n);
  return Array.isArray(v) ? { k: "matrix", rows: v } : null;
}

function usesImaginary(n: MathNode): boolean {
  switch (n.k) {
    case "const":
      return n.name === "i";
    case "add":
    case "mul":
    case "fn":
    case "call":
      return n.args.some(usesImaginary);
    case "pow":
      return usesImaginary(n.base) || usesImaginary(n.exp);
    case "sum":
      return usesImaginary(n.lo) || usesImaginary(n.hi) || usesImaginary(n.body);
    default:
      return false;
  }
}
