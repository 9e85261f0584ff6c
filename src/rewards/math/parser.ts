import { int, type MathNode, MINUS_ONE, neg, num, type RelOp, recip } from "./ast.js";
import { type Budget, BudgetExceeded } from "./budget.js";
import { rat } from "./rational.js";

/**
 * A recursive-descent parser for the LaTeX (and plain-text) answers models write, producing the AST
 * in ast.ts. It is deliberately forgiving (unknown commands become symbols, `\text{}` becomes a word)
 * and deliberately bounded: nesting depth is capped and every token consumed costs a budget step.
 */

export class MathParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MathParseError";
  }
}

type Tok =
  | { t: "num"; v: string }
  | { t: "id"; v: string }
  | { t: "cmd"; v: string }
  | { t: "op"; v: string }
  | { t: "text"; v: string }
  | { t: "eof"; v: "" };

const TEXT_CMDS = new Set([
  "text",
  "textbf",
  "textit",
  "textnormal",
  "mbox",
  "textrm",
  "texttt",
  "operatorname",
]);
const MAX_DEPTH = 200;

function tokenize(s: string, budget: Budget): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    budget.step();
    const c = s[i];
    if (c === " " || c === "\n" || c === "\t" || c === "\r") {
      i++;
      continue;
    }
    if ((c >= "0" && c <= "9") || (c === "." && s[i + 1] >= "0" && s[i + 1] <= "9")) {
      let j = i;
      while (j < s.length && s[j] >= "0" && s[j] <= "9") j++;
      if (s[j] === "." && s[j + 1] >= "0" && s[j + 1] <= "9") {
        j++;
        while (j < s.length && s[j] >= "0" && s[j] <= "9") j++;
      }
      out.push({ t: "num", v: s.slice(i, j) });
      i = j;
      continue;
    }
    if (c === "\\") {
      const m = /^\\([A-Za-z]+)/.exec(s.slice(i, i + 40));
      if (m) {
        const name = m[1];
        i += m[0].length;
        if (TEXT_CMDS.has(name) || name === "mathrm") {
          while (s[i] === " ") i++;
          if (s[i] === "{") {
            const end = matchBrace(s, i, budget);
            const inner = s.slice(i + 1, end < 0 ? s.length : end);
            i = end < 0 ? s.length : end + 1;
            out.push({ t: "text", v: inner });
            continue;
          }
        }
        out.push({ t: "cmd", v: name });
        continue;
      }
      const next = s[i + 1] ?? "";
      if (next === "\\") {
        out.push({ t: "op", v: "\\\\" });
        i += 2;
        continue;
      }
      if (next === "{" || next === "}") {
        out.push({ t: "op", v: next === "{" ? "\\{" : "\\}" });
        i += 2;
        continue;
      }
      if (next === "|") {
        out.push({ t: "op", v: "|" });
        i += 2;
        continue;
      }
      i += 2;
      continue;
    }
    if (/[A-Za-z]/.test(c)) {
      out.push({ t: "id", v: c });
      i++;
      continue;
    }
    const two = s.slice(i, i + 2);
    if (two === "<=" || two === ">=" || two === "!=" || two === "==") {
      out.push({ t: "op", v: two === "==" ? "=" : two });
      i += 2;
      continue;
    }
    if (c === "≤" || c === "≥" || c === "≠") {
      out.push({ t: "op", v: c === "≤" ? "<=" : c === "≥" ? ">=" : "!=" });
      i++;
      continue;
    }
    if (c === "−" || c === "–") {
      out.push({ t: "op", v: "-" });
      i++;
      continue;
    }
    if (c === "×" || c === "·") {
      out.push({ t: "op", v: "*" });
      i++;
      continue;
    }
    if (c === "π") {
      out.push({ t: "cmd", v: "pi" });
      i++;
      continue;
    }
    if (c === "√") {
      out.push({ t: "cmd", v: "sqrt" });
      i++;
      continue;
    }
    if (c === "∞") {
      out.push({ t: "cmd", v: "infty" });
      i++;
      continue;
    }
    out.push({ t: "op", v: c });
    i++;
  }
  out.push({ t: "eof", v: "" });
  return out;
}

/** Index of the `}` matching the `{` at `open`, or -1. */
export function matchBrace(s: string, open: number, budget?: Budget): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    budget?.step();
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

const FUNCS: Record<string, string> = {
  sin: "sin",
  cos: "cos",
  tan: "tan",
  sec: "sec",
  csc: "csc",
  cot: "cot",
  arcsin: "asin",
  arccos: "acos",
  arctan: "atan",
  sinh: "sinh",
  cosh: "cosh",
  tanh: "tanh",
  ln: "ln",
  log: "log",
  lg: "log10",
  exp: "exp",
  det: "det",
  gcd: "gcd",
  lcm: "lcm",
  max: "max",
  min: "min",
};

const REL_CMDS: Record<string, RelOp> = {
  le: "<=",
  leq: "<=",
  leqslant: "<=",
  ge: ">=",
  geq: ">=",
  geqslant: ">=",
  lt: "<",
  gt: ">",
  ne: "!=",
  neq: "!=",
};

const GREEK = new Set([
  "alpha",
  "beta",
  "gamma",
  "delta",
  "epsilon",
  "varepsilon",
  "zeta",
  "eta",
  "theta",
  "vartheta",
  "iota",
  "kappa",
  "lambda",
  "mu",
  "nu",
  "xi",
  "rho",
  "sigma",
  "tau",
  "upsilon",
  "phi",
  "varphi",
  "chi",
  "psi",
  "omega",
  "Gamma",
  "Delta",
  "Theta",
  "Lambda",
  "Xi",
  "Sigma",
  "Phi",
  "Psi",
  "Omega",
]);

/** Commands that carry no value for grading and are skipped together with nothing else. */
const IGNORED_CMDS = new Set([
  "mathbb",
  "mathcal",
  "mathfrak",
  "overline",
  "vec",
  "hat",
  "bar",
  "tilde",
  "dot",
]);

class Parser {
  private p = 0;
  private depth = 0;
  private absDepth = 0;

  constructor(
    private readonly toks: Tok[],
    private readonly budget: Budget,
    private readonly malformedOperators: boolean,
  ) {}

  private peek(o = 0): Tok {
    return this.toks[Math.min(this.p + o, this.toks.length - 1)];
  }
  private next(): Tok {
    this.budget.step();
    return this.toks[this.p++] ?? { t: "eof", v: "" };
  }
  private isOp(v: string, o = 0): boolean {
    const t = this.peek(o);
    return t.t === "op" && t.v === v;
  }
  private isCmd(v: string, o = 0): boolean {
    const t = this.peek(o);
    return t.t === "cmd" && t.v === v;
  }
  private expectOp(v: string): void {
    const t = this.next();
    if (t.t !== "op" || t.v !== v) throw new MathParseError(`expected "${v}", found "${t.v || "end"}"`);
  }
  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new BudgetExceeded("nesting deeper than 200");
  }
  private leave(): void {
    this.depth--;
  }

  parseTop(): MathNode {
    const node = this.parseList();
    if (this.peek().t !== "eof") throw new MathParseError(`unexpected "${this.peek().v}"`);
    return node;
  }

  /** Comma/semicolon-separated items become a set, as latex2sympy2_extended does at top level. */
  private parseList(): MathNode {
    const items: MathNode[] = [];
    const seps: string[] = [];
    for (;;) {
      if (this.peek().t === "eof") break;
      items.push(this.parseUnion());
      if (this.isOp(",") || this.isOp(";")) {
        let sep = this.next().v;
        while (this.isOp(",") || this.isOp(";")) sep = this.next().v === ";" ? ";" : sep;
        seps.push(sep);
        continue;
      }
      break;
    }
    if (items.length === 0) throw new MathParseError("empty expression");
    if (items.length === 1) return items[0];
    if (seps.includes(";") && seps.includes(",")) {
      // "p=5,q=2; p=7,q=2": semicolons separate solutions, commas their components.
      const groups: MathNode[] = [];
      let cur: MathNode[] = [items[0]];
      seps.forEach((sep, i) => {
        if (sep === ";") {
          groups.push(cur.length === 1 ? cur[0] : { k: "tuple", items: cur });
          cur = [];
        }
        cur.push(items[i + 1]);
      });
      groups.push(cur.length === 1 ? cur[0] : { k: "tuple", items: cur });
      return { k: "set", items: groups };
    }
    return { k: "set", items };
  }

  private parseUnion(): MathNode {
    const first = this.parseRelation();
    if (!this.isCmd("cup")) return first;
    const items = [first];
    while (this.isCmd("cup")) {
      this.next();
      items.push(this.parseRelation());
    }
    return { k: "union", items };
  }

  private relOp(): RelOp | null {
    const t = this.peek();
    if (t.t === "op") {
      if (t.v === "=" || t.v === "<" || t.v === ">" || t.v === "<=" || t.v === ">=" || t.v === "!=")
        return t.v;
      return null;
    }
    if (t.t === "cmd" && t.v in REL_CMDS) return REL_CMDS[t.v];
    return null;
  }

  private parseRelation(): MathNode {
    const first = this.parseExpr();
    if (this.isCmd("in")) {
      this.next();
      return { k: "in", elem: first, set: this.parseUnion() };
    }
    const ops: RelOp[] = [];
    const terms = [first];
    for (;;) {
      const op = this.relOp();
      if (!op) break;
      this.next();
      ops.push(op);
      terms.push(this.parseExpr());
    }
    return ops.length === 0 ? first : { k: "rel", ops, terms };
  }

  private parseExpr(): MathNode {
    this.enter();
    const terms: MathNode[] = [];
    let pm = false;
    if (this.isCmd("pm") || this.isCmd("mp")) {
      this.next();
      pm = true;
      terms.push(this.parseTerm());
    } else terms.push(this.parseTerm());
    let pmRest: MathNode[] | null = null;
    for (;;) {
      if (this.isOp("+")) {
        this.next();
        (pmRest ?? terms).push(this.parseTerm());
      } else if (this.isOp("-")) {
        this.next();
        (pmRest ?? terms).push(neg(this.parseTerm()));
      } else if (this.isCmd("pm") || this.isCmd("mp")) {
        this.next();
        if (pmRest) throw new MathParseError("two ± in one expression");
        pmRest = [this.parseTerm()];
      } else break;
    }
    this.leave();
    const sum = (xs: MathNode[]): MathNode => (xs.length === 1 ? xs[0] : { k: "add", args: xs });
    if (pm) {
      // "± a" alone is the pair {−a, a}.
      const a = sum(terms);
      return { k: "set", items: [neg(a), a], pm: true };
    }
    if (pmRest) {
      const a = sum(terms);
      const b = sum(pmRest);
      return {
        k: "set",
        items: [
          { k: "add", args: [a, b] },
          { k: "add", args: [a, neg(b)] },
        ],
        pm: true,
      };
    }
    return sum(terms);
  }

  private startsFactor(): boolean {
    const t = this.peek();
    if (t.t === "num" || t.t === "id" || t.t === "text") return true;
    if (t.t === "cmd") {
      return !(
        t.v in REL_CMDS ||
        [
          "cdot",
          "times",
          "div",
          "pm",
          "mp",
          "cup",
          "cap",
          "in",
          "end",
          "to",
          "rightarrow",
          "Rightarrow",
          "implies",
          "iff",
          "approx",
          "setminus",
        ].includes(t.v)
      );
    }
    if (t.t === "op") {
      if (t.v === "(" || t.v === "{" || t.v === "\\{" || t.v === "[") return true;
      if (t.v === "|") return this.absDepth === 0;
    }
    return false;
  }

  private parseTerm(): MathNode {
    this.enter();
    const factors: MathNode[] = [this.parseUnary()];
    for (;;) {
      if (this.isOp("*") || this.isCmd("cdot") || this.isCmd("times") || this.isCmd("ast")) {
        this.next();
        factors.push(this.parseUnary());
      } else if (this.isOp("/") || this.isCmd("div")) {
        this.next();
        factors.push(recip(this.parseUnary()));
      } else if (this.isOp(":") && this.peek(1).t !== "eof") {
        // A ratio "a:b" is a/b for grading, as latex2sympy2_extended reads it.
        this.next();
        factors.push(recip(this.parseUnary()));
      } else if (this.startsFactor()) {
        factors.push(this.parsePostfix());
      } else break;
    }
    this.leave();
    return joinFactors(factors);
  }

  private parseUnary(): MathNode {
    this.enter();
    try {
      if (this.isOp("-")) {
        this.next();
        return neg(this.parseUnary());
      }
      if (this.isOp("+")) {
        this.next();
        return this.parseUnary();
      }
      return this.parsePostfix();
    } finally {
      this.leave();
    }
  }

  private parsePostfix(): MathNode {
    this.enter();
    let base = this.parsePrimary();
    // Each postfix operator nests the tree one level deeper (x^x^x…, 3!!!…): count it against the depth cap.
    let applied = 0;
    for (;;) {
      if (this.isOp("^") || this.isOp("!") || this.isOp("%") || this.isOp("'")) {
        this.enter();
        applied++;
      }
      if (this.isOp("^")) {
        this.next();
        const exp = this.parseScript();
        base = { k: "pow", base, exp };
      } else if (this.isOp("!")) {
        this.next();
        base = { k: "fn", name: "factorial", args: [base] };
      } else if (this.isOp("%")) {
        this.next();
        base = { k: "mul", args: [base, { k: "num", v: rat(1n, 100n), float: false }] };
      } else if (this.isOp("'")) {
        this.next();
        if (base.k === "sym") base = { k: "sym", name: `${base.name}'` };
      } else break;
    }
    this.depth -= applied;
    this.leave();
    return base;
  }

  /** The argument of ^ or _: a braced group or a single token. */
  private parseScript(): MathNode {
    if (this.isOp("{")) return this.parseGroup();
    if (this.isOp("-")) {
      this.next();
      return neg(this.parseScript());
    }
    const t = this.peek();
    if (t.t === "num") {
      this.next();
      // "x^23" in LaTeX is x^2·3; only the first digit is the exponent.
      if (t.v.length > 1 && !t.v.includes(".")) {
        this.toks.splice(this.p, 0, { t: "num", v: t.v.slice(1) });
        return numberNode(t.v[0]);
      }
      return numberNode(t.v);
    }
    return this.parsePrimary();
  }

  private parseGroup(): MathNode {
    this.expectOp("{");
    if (this.isOp("}")) {
      this.next();
      throw new MathParseError("empty group {}");
    }
    const inner = this.parseList();
    this.expectOp("}");
    return inner;
  }

  private subscriptName(): string {
    // Subscripts become part of a symbol's name: a_1, x_{12}, S_{MBCN}.
    this.next();
    if (this.isOp("{")) {
      let depth = 0;
      let name = "";
      do {
        const t = this.next();
        if (t.t === "eof") throw new MathParseError("unclosed subscript");
        if (t.t === "op" && t.v === "{") depth++;
        else if (t.t === "op" && t.v === "}") depth--;
        name += t.t === "cmd" ? `\\${t.v}` : t.v;
      } while (depth > 0);
      return name.slice(1, -1);
    }
    const t = this.next();
    return t.t === "cmd" ? `\\${t.v}` : t.v;
  }

  private parsePrimary(): MathNode {
    this.enter();
    try {
      return this.primary();
    } finally {
      this.leave();
    }
  }

  private primary(): MathNode {
    const t = this.peek();
    if (t.t === "num") {
      this.next();
      // A mixed number: 2\frac{1}{2} means 2 + 1/2.
      if (!t.v.includes(".") && this.isCmd("frac")) {
        const save = this.p;
        const fr = this.parsePrimary();
        if (
          fr.k === "mul" &&
          fr.args.length === 2 &&
          fr.args[0].k === "num" &&
          fr.args[1].k === "pow" &&
          fr.args[1].base.k === "num" &&
          fr.args[0].v.n > 0n &&
          fr.args[0].v.n < fr.args[1].base.v.n
        ) {
          return { k: "add", args: [numberNode(t.v), fr] };
        }
        this.p = save;
      }
      // 204_5: a base subscript; the digits are the answer as written.
      if (this.isOp("_")) this.subscriptName();
      return numberNode(t.v);
    }
    if (t.t === "text") {
      this.next();
      return textNode(t.v);
    }
    if (t.t === "id") {
      this.next();
      let name = t.v;
      if (this.isOp("_")) {
        const sub = this.subscriptName();
        name = `${name}_${sub}`;
      }
      if (this.isOp("(") && /^[A-Za-z](_.*)?$/.test(name) && this.looksLikeCall(name)) {
        const args = this.parseParenArgs();
        return { k: "call", name, args };
      }
      return symbolNode(name);
    }
    if (t.t === "op") {
      if (t.v === "{") return this.parseGroup();
      if (t.v === "(" || t.v === "[") return this.parseBracketed();
      if (t.v === "\\{") return this.parseBraceSet();
      if (t.v === "|") {
        this.next();
        this.absDepth++;
        const inner = this.parseExpr();
        this.absDepth--;
        this.expectOp("|");
        return { k: "fn", name: "abs", args: [inner] };
      }
      throw new MathParseError(`unexpected "${t.v}"`);
    }
    if (t.t === "cmd") return this.parseCommand();
    throw new MathParseError("unexpected end of expression");
  }

  /** `f(x)` is an application for the usual function letters; `x(x+1)` stays a product. */
  private looksLikeCall(name: string): boolean {
    return /^[fghFGHPQpq](_.*)?$/.test(name) || name.includes("_");
  }

  private parseParenArgs(): MathNode[] {
    this.expectOp("(");
    const args: MathNode[] = [];
    if (!this.isOp(")")) {
      args.push(this.parseUnion());
      while (this.isOp(",")) {
        this.next();
        args.push(this.parseUnion());
      }
    }
    this.expectOp(")");
    return args;
  }

  /** ( … ), [ … ], and the mixed interval brackets ( … ] and [ … ). */
  private parseBracketed(): MathNode {
    const open = this.next().v;
    const items: MathNode[] = [];
    if (!this.isOp(")") && !this.isOp("]")) {
      items.push(this.parseUnion());
      while (this.isOp(",") || this.isOp(";")) {
        this.next();
        items.push(this.parseUnion());
      }
    }
    const closeTok = this.next();
    if (closeTok.t !== "op" || (closeTok.v !== ")" && closeTok.v !== "]")) {
      throw new MathParseError(`unclosed "${open}"`);
    }
    const close = closeTok.v;
    if (items.length === 1 && open === "(" && close === ")") return items[0];
    if (items.length === 1 && open === "[" && close === "]") return items[0];
    if (items.length === 2 && !(open === "(" && close === ")")) {
      return { k: "interval", lo: items[0], hi: items[1], loOpen: open === "(", hiOpen: close === ")" };
    }
    if (open === "[" && close === "]") return { k: "tuple", items };
    if (open !== "(" || close !== ")") throw new MathParseError("mismatched brackets");
    return { k: "tuple", items };
  }

  private parseBraceSet(): MathNode {
    this.next();
    const items: MathNode[] = [];
    if (!this.isOp("\\}")) {
      items.push(this.parseUnion());
      while (this.isOp(",") || this.isOp(";")) {
        this.next();
        items.push(this.parseUnion());
      }
    }
    this.expectOp("\\}");
    return { k: "set", items };
  }

  private parseCommand(): MathNode {
    const name = this.next().v;
    switch (name) {
      case "frac":
      case "over": {
        const a = this.parseGroupOrToken();
        const b = this.parseGroupOrToken();
        if (a.k === "num" && b.k === "num" && b.v.n !== 0n && !a.float && !b.float) {
          return {
            k: "mul",
            args: [a, { k: "pow", base: b, exp: MINUS_ONE }],
          };
        }
        return { k: "mul", args: [a, recip(b)] };
      }
      case "binom": {
        const a = this.parseGroupOrToken();
        const b = this.parseGroupOrToken();
        return { k: "fn", name: "binom", args: [a, b] };
      }
      case "sqrt": {
        let index: MathNode | null = null;
        if (this.isOp("[")) {
          this.next();
          index = this.parseExpr();
          this.expectOp("]");
        }
        const radicand = this.parseGroupOrToken();
        const exp = index ? recip(index) : { k: "num" as const, v: rat(1n, 2n), float: false };
        return { k: "pow", base: radicand, exp };
      }
      case "pi":
        return { k: "const", name: "pi" };
      case "infty":
      case "infin":
        return { k: "const", name: "inf" };
      case "emptyset":
      case "varnothing":
        return { k: "set", items: [] };
      case "imath":
        return { k: "const", name: "i" };
      case "begin":
        return this.parseEnvironment();
      case "boxed":
      case "fbox":
        return this.parseGroupOrToken();
      case "lfloor":
      case "lceil": {
        const inner = this.parseExpr();
        const close = this.next();
        if (close.t !== "cmd" || (close.v !== "rfloor" && close.v !== "rceil")) {
          throw new MathParseError("unclosed floor/ceiling");
        }
        return { k: "fn", name: name === "lfloor" ? "floor" : "ceil", args: [inner] };
      }
      case "lvert":
      case "vert":
      case "lVert": {
        const inner = this.parseExpr();
        const close = this.next();
        if (close.t !== "cmd" || !["rvert", "vert", "rVert"].includes(close.v)) {
          throw new MathParseError("unclosed |");
        }
        return { k: "fn", name: "abs", args: [inner] };
      }
      case "langle": {
        const items = [this.parseUnion()];
        while (this.isOp(",")) {
          this.next();
          items.push(this.parseUnion());
        }
        if (!this.isCmd("rangle")) throw new MathParseError("unclosed ⟨");
        this.next();
        return { k: "tuple", items };
      }
      case "sum":
      case "prod":
        return this.parseBigOperator(name === "prod");
      default:
        break;
    }
    if (name in FUNCS) return this.parseFunction(FUNCS[name]);
    if (IGNORED_CMDS.has(name)) {
      if (this.isOp("{")) {
        const g = this.parseGroup();
        return g.k === "sym" && name === "mathbb" ? { k: "sym", name: `\\mathbb{${g.name}}` } : g;
      }
      return this.parsePrimary();
    }
    if (GREEK.has(name)) {
      let sym = name;
      if (this.isOp("_")) sym = `${sym}_${this.subscriptName()}`;
      return symbolNode(sym);
    }
    if (name === "operatorname" || name === "mathrm") return this.parsePrimary();
    throw new MathParseError(`unsupported command \\${name}`);
  }

  private parseGroupOrToken(): MathNode {
    if (this.isOp("{")) return this.parseGroup();
    const t = this.peek();
    if (t.t === "num") {
      if (!this.malformedOperators && t.v.length > 1)
        throw new MathParseError("\\frac12-style argument without braces");
      this.next();
      // \frac12 is \frac{1}{2}: a bare digit string gives one digit per argument.
      if (t.v.length > 1 && !t.v.includes(".")) {
        this.toks.splice(this.p, 0, { t: "num", v: t.v.slice(1) });
        return numberNode(t.v[0]);
      }
      return numberNode(t.v);
    }
    return this.parsePrimary();
  }

  private parseFunction(fname: string): MathNode {
    let power: MathNode | null = null;
    let base: MathNode | null = null;
    for (let i = 0; i < 2; i++) {
      if (this.isOp("^")) {
        this.next();
        power = this.parseScript();
      } else if (this.isOp("_")) {
        this.next();
        base = this.parseScript();
      }
    }
    let args: MathNode[];
    if (this.isOp("(")) {
      args = this.parseParenArgs();
    } else if (this.isOp("{")) {
      args = [this.parseGroup()];
    } else {
      // \sin x, \log 8, \sin 2x: the argument runs over the implicit product that follows.
      const fs: MathNode[] = [this.parsePostfix()];
      while (this.peek().t === "id" || (this.peek().t === "cmd" && GREEK.has(this.peek().v))) {
        fs.push(this.parsePostfix());
      }
      args = [joinFactors(fs)];
    }
    let node: MathNode;
    if (fname === "log" && base) node = { k: "fn", name: "logb", args: [args[0], base] };
    else node = { k: "fn", name: fname, args };
    if (power) {
      // \sin^{-1} x is arcsin, not 1/sin.
      if (
        power.k === "num" &&
        power.v.n === -1n &&
        power.v.d === 1n &&
        ["sin", "cos", "tan"].includes(fname)
      ) {
        return { k: "fn", name: `a${fname}`, args };
      }
      node = { k: "pow", base: node, exp: power };
    }
    return node;
  }

  private parseBigOperator(prod: boolean): MathNode {
    let v = "";
    let lo: MathNode | null = null;
    let hi: MathNode | null = null;
    for (let i = 0; i < 2; i++) {
      if (this.isOp("_")) {
        this.next();
        const sub = this.parseScript();
        if (sub.k === "rel" && sub.ops.length === 1 && sub.ops[0] === "=" && sub.terms[0].k === "sym") {
          v = sub.terms[0].name;
          lo = sub.terms[1];
        } else throw new MathParseError("unsupported summation subscript");
      } else if (this.isOp("^")) {
        this.next();
        hi = this.parseScript();
      }
    }
    if (!lo || !hi) throw new MathParseError("summation without bounds");
    const body = this.parseTerm();
    return { k: "sum", prod, v, lo, hi, body };
  }

  private parseEnvironment(): MathNode {
    this.expectOp("{");
    let env = "";
    while (!this.isOp("}")) {
      const t = this.next();
      if (t.t === "eof") throw new MathParseError("unclosed \\begin");
      env += t.v;
    }
    this.next();
    if (env === "array" && this.isOp("{")) {
      // Column spec {cc|c}: skip it.
      let depth = 0;
      do {
        const t = this.next();
        if (t.t === "eof") throw new MathParseError("unclosed array spec");
        if (t.t === "op" && t.v === "{") depth++;
        if (t.t === "op" && t.v === "}") depth--;
      } while (depth > 0);
    }
    const rows: MathNode[][] = [];
    let row: MathNode[] = [];
    for (;;) {
      if (this.isCmd("end")) break;
      if (this.peek().t === "eof") throw new MathParseError(`unclosed \\begin{${env}}`);
      if (this.isOp("\\\\")) {
        this.next();
        if (row.length) rows.push(row);
        row = [];
        continue;
      }
      if (this.isOp("&")) {
        this.next();
        continue;
      }
      if (this.isCmd("hline")) {
        this.next();
        continue;
      }
      row.push(this.parseUnion());
    }
    if (row.length) rows.push(row);
    this.next();
    this.expectOp("{");
    while (!this.isOp("}") && this.peek().t !== "eof") this.next();
    this.next();
    if (/matrix|array/.test(env)) {
      if (rows.length === 0) throw new MathParseError("empty matrix");
      return { k: "matrix", rows };
    }
    // align / cases / gathered: read the last row, as the final line usually holds the answer.
    if (rows.length === 0) throw new MathParseError(`empty ${env}`);
    const last = rows[rows.length - 1];
    return last[last.length - 1];
  }
}

function numberNode(text: string): MathNode {
  const dot = text.indexOf(".");
  if (dot < 0) return int(BigInt(text));
  const whole = text.slice(0, dot) || "0";
  const frac = text.slice(dot + 1);
  return num(rat(BigInt(whole + frac), 10n ** BigInt(frac.length)), true);
}

function symbolNode(name: string): MathNode {
  if (name === "e") return { k: "const", name: "e" };
  if (name === "i") return { k: "const", name: "i" };
  if (name === "\\pi") return { k: "const", name: "pi" };
  return { k: "sym", name };
}

/** `\text{…}`: a number or expression written as text is parsed; prose becomes a lowercase word. */
function textNode(inner: string): MathNode {
  const trimmed = inner.trim().replace(/^\((.*)\)$/, "$1");
  if (/^-?\d+(\.\d+)?$/.test(trimmed))
    return trimmed.startsWith("-") ? neg(numberNode(trimmed.slice(1))) : numberNode(trimmed);
  if (trimmed === "") return { k: "word", text: "" };
  return { k: "word", text: trimmed.toLowerCase().replace(/\s+/g, " ") };
}

/** Builds a product: units written as words next to a value are dropped; words alone join up. */
function joinFactors(factors: MathNode[]): MathNode {
  const words = factors.filter((f) => f.k === "word");
  if (words.length > 0) {
    const rest = factors.filter((f) => f.k !== "word");
    if (rest.length === 0) {
      const text = words
        .map((w) => (w as { text: string }).text)
        .filter((t) => t !== "")
        .join(" ");
      return { k: "word", text };
    }
    factors = rest;
  }
  if (factors.length === 1) return factors[0];
  return { k: "mul", args: factors };
}

export function parseLatex(
  src: string,
  budget: Budget,
  opts: { malformedOperators?: boolean } = {},
): MathNode {
  const toks = tokenize(src, budget);
  return new Parser(toks, budget, opts.malformedOperators !== false).parseTop();
}
