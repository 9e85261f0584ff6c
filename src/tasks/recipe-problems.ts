import type { CodeTest } from "../rewards/code/types.js";
import { Rng } from "../util/rng.js";

/**
 * The demo's two synthetic task families, small enough for a tiny model to learn on a CPU in minutes and
 * shaped like the paper's data: math word problems answered in `\boxed{}`, and stdin/stdout programs
 * checked by tests in the sandbox. A programmatic teacher writes each solution as a `<think>` trace plus an
 * answer, and with probability `noise` makes one mistake (a wrong step, an off-by-one program), as distilled
 * data has wrong traces. Every problem has a key; the held-out split is a pure function of the key, so a
 * problem is held out for SFT, RL and evaluation alike, by construction.
 */

export type RecipeKind = "math" | "code";

export interface RecipeProblem {
  /** Stable identity: equal keys are the same problem (the split hashes it). */
  key: string;
  kind: RecipeKind;
  /** 1 (one step) … 3 (three steps / a loop over a list). */
  level: number;
  /** What the user asks. */
  prompt: string;
  /** Math: the gold answer. */
  answer?: string;
  /** Code: stdin/stdout tests. */
  tests?: CodeTest[];
}

/** One teacher solution: the `<think>` reasoning, the visible answer, and whether the teacher erred. */
export interface TeacherSolution {
  reasoning: string;
  content: string;
  correct: boolean;
}

export interface RecipeProblemOptions {
  /** Fraction of code problems (default 0.5). */
  codeFraction?: number;
  /** Difficulty levels drawn from (default [1, 2, 3]). */
  levels?: readonly number[];
  /** Tests per code problem (default 6). */
  testsPerProblem?: number;
}

const NAMES = ["Ann", "Bob", "Cy", "Dee", "Eve", "Max"];
const ITEMS = ["apple", "pen", "card", "shell", "book", "coin"];

// ---- math word problems ------------------------------------------------------------------------------------

interface MathStep {
  op: "+" | "-" | "*";
  operand: number;
}

interface MathSpec {
  name: string;
  item: string;
  start: number;
  steps: MathStep[];
}

// Short prompts: a tiny byte-level model must copy every number into its reasoning, and each prompt byte costs.
function mathPrompt(s: MathSpec): string {
  const [first, ...rest] = s.steps;
  const verb = (st: MathStep) => (st.op === "+" ? "gets" : "loses");
  let text =
    first.op === "*"
      ? `${s.name} has ${s.start} bags of ${first.operand} ${s.item}s`
      : `${s.name} has ${s.start} ${s.item}s and ${verb(first)} ${first.operand}`;
  for (const st of rest) text += `, then ${verb(st)} ${st.operand}`;
  return `${text}. How many now?`;
}

function applyStep(value: number, st: MathStep): number {
  return st.op === "+" ? value + st.operand : st.op === "-" ? value - st.operand : value * st.operand;
}

function randomMath(rng: Rng, level: number): MathSpec {
  const name = NAMES[rng.int(NAMES.length)];
  const item = ITEMS[rng.int(ITEMS.length)];
  const steps: MathStep[] = [];
  let start = 1 + rng.int(9);
  if (level >= 3) steps.push({ op: "*", operand: 2 + rng.int(8) });
  let value = steps.length ? start * steps[0].operand : start;
  const more = level >= 3 ? 1 : level;
  for (let i = 0; i < more; i++) {
    const sub = value > 1 && rng.uniform() < 0.5;
    const operand = sub ? 1 + rng.int(Math.min(9, value - 1)) : 1 + rng.int(9);
    steps.push({ op: sub ? "-" : "+", operand });
    value = applyStep(value, steps[steps.length - 1]);
  }
  if (steps.length === 0) start = 1 + rng.int(9);
  return { name, item, start, steps };
}

function mathTeacher(s: MathSpec, rng: Rng, noise: number): TeacherSolution {
  const wrongStep = rng.uniform() < noise ? rng.int(s.steps.length) : -1;
  let value = s.start;
  const lines: string[] = [];
  s.steps.forEach((st, i) => {
    let next = applyStep(value, st);
    if (i === wrongStep) next += rng.uniform() < 0.5 ? 1 : -1;
    lines.push(`${value}${st.op}${st.operand}=${next}`);
    value = next;
  });
  const truth = s.steps.reduce(applyStep, s.start);
  return { reasoning: lines.join("\n"), content: `\\boxed{${value}}`, correct: value === truth };
}

// ---- stdin/stdout programs ---------------------------------------------------------------------------------

interface CodeFamily {
  id: string;
  level: number;
  prompt: (k: number) => string;
  plan: string;
  program: (k: number) => string;
  /** A plausible wrong program (the teacher's mistake). */
  wrong: (k: number) => string;
  input: (rng: Rng) => string;
  output: (input: string, k: number) => string;
}

const ints = (s: string) => s.trim().split(/\s+/).map(Number);
const twoInts = (rng: Rng) => `${rng.int(50)} ${rng.int(50)}`;

const CODE_FAMILIES: readonly CodeFamily[] = [
  {
    id: "add-k",
    level: 1,
    prompt: (k) => `Read n, print n plus ${k}.`,
    plan: "add",
    program: (k) => `print(int(input())+${k})`,
    wrong: (k) => `print(int(input())+${k + 1})`,
    input: (rng) => String(rng.int(100)),
    output: (i, k) => String(ints(i)[0] + k),
  },
  {
    id: "mul-k",
    level: 1,
    prompt: (k) => `Read n, print n times ${k}.`,
    plan: "multiply",
    program: (k) => `print(int(input())*${k})`,
    wrong: (k) => `print(int(input())+${k})`,
    input: (rng) => String(rng.int(100)),
    output: (i, k) => String(ints(i)[0] * k),
  },
  {
    id: "sum2-k",
    level: 2,
    prompt: (k) => `Read a b, print a+b+${k}.`,
    plan: "add both",
    program: (k) => `a,b=map(int,input().split())\nprint(a+b+${k})`,
    wrong: (k) => `a,b=map(int,input().split())\nprint(a-b+${k})`,
    input: twoInts,
    output: (i, k) => String(ints(i)[0] + ints(i)[1] + k),
  },
  {
    id: "max2-k",
    level: 2,
    prompt: (k) => `Read a b, print the larger plus ${k}.`,
    plan: "max",
    program: (k) => `print(max(map(int,input().split()))+${k})`,
    wrong: (k) => `print(min(map(int,input().split()))+${k})`,
    input: twoInts,
    output: (i, k) => String(Math.max(...ints(i)) + k),
  },
  {
    id: "sumlist-k",
    level: 3,
    prompt: (k) => `Read a list, print its sum times ${k}.`,
    plan: "sum, multiply",
    program: (k) => `print(sum(map(int,input().split()))*${k})`,
    wrong: (k) => `print(max(map(int,input().split()))*${k})`,
    input: (rng) => Array.from({ length: 2 + rng.int(4) }, () => rng.int(20)).join(" "),
    output: (i, k) => String(ints(i).reduce((a, b) => a + b, 0) * k),
  },
  {
    id: "repeat-k",
    level: 3,
    prompt: (k) => `Read a word, print it ${k} times.`,
    plan: "repeat",
    program: (k) => `print(input()*${k})`,
    wrong: (k) => `print(input()*${k + 1})`,
    input: (rng) => Array.from({ length: 1 + rng.int(4) }, () => "abcxyz"[rng.int(6)]).join(""),
    output: (i, k) => i.trim().repeat(k),
  },
];

function codeTeacher(f: CodeFamily, k: number, rng: Rng, noise: number): TeacherSolution {
  const correct = rng.uniform() >= noise;
  const program = correct ? f.program(k) : f.wrong(k);
  return { reasoning: f.plan, content: `\`\`\`python\n${program}\n\`\`\``, correct };
}

// ---- the problem stream ------------------------------------------------------------------------------------

/** FNV-1a of the key: the held-out split depends on nothing else. */
export function problemHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Whether a problem belongs to the held-out set (`fraction` of all keys, e.g. 0.1). */
export function isHeldOut(key: string, fraction: number): boolean {
  return problemHash(key) % 10_000 < Math.round(fraction * 10_000);
}

interface Drawn {
  problem: RecipeProblem;
  teach: (rng: Rng, noise: number) => TeacherSolution;
}

function draw(rng: Rng, opts: RecipeProblemOptions): Drawn {
  const levels = opts.levels ?? [1, 2, 3];
  const level = levels[rng.int(levels.length)];
  if (rng.uniform() < (opts.codeFraction ?? 0.5)) {
    const fams = CODE_FAMILIES.filter((f) => f.level === level);
    const f = fams[rng.int(fams.length)];
    const k = 2 + rng.int(18);
    // Tests come from a stream of their own keyed by the problem, so a problem always has the same tests.
    const testRng = new Rng(problemHash(`${f.id}:${k}`));
    const tests: CodeTest[] = Array.from({ length: opts.testsPerProblem ?? 6 }, () => {
      const input = f.input(testRng);
      return { input: `${input}\n`, output: `${f.output(input, k)}\n`, testtype: "stdin" };
    });
    return {
      problem: { key: `code:${f.id}:${k}`, kind: "code", level, prompt: f.prompt(k), tests },
      teach: (r, noise) => codeTeacher(f, k, r, noise),
    };
  }
  const spec = randomMath(rng, level);
  const prompt = mathPrompt(spec);
  return {
    problem: {
      key: `math:${prompt}`,
      kind: "math",
      level,
      prompt,
      answer: String(spec.steps.reduce(applyStep, spec.start)),
    },
    teach: (r, noise) => mathTeacher(spec, r, noise),
  };
}

export interface RecipeSplit {
  /** Held-out problems, distinct, in a fixed order. */
  heldOut: RecipeProblem[];
  /** Training problem i (never a held-out one) with a teacher solution; a pure function of (seed, i). */
  train(index: number, noise: number): { problem: RecipeProblem; teacher: TeacherSolution };
}

/**
 * The split every phase uses: held-out problems are the first `heldOutSize` distinct held-out keys of the
 * seed's stream; training problems are drawn from the rest. Training index i is reproducible alone (its own
 * seeded stream), so a resumed run sees exactly the problems it would have.
 */
export function recipeSplit(
  seed: number,
  heldOutSize: number,
  opts: RecipeProblemOptions & { heldOutFraction?: number } = {},
): RecipeSplit {
  const fraction = opts.heldOutFraction ?? 0.15;
  const heldOut: RecipeProblem[] = [];
  const seen = new Set<string>();
  const rng = new Rng(seed ^ 0x4e1d);
  for (let tries = 0; heldOut.length < heldOutSize && tries < heldOutSize * 2000; tries++) {
    const { problem } = draw(rng, opts);
    if (isHeldOut(problem.key, fraction) && !seen.has(problem.key)) {
      seen.add(problem.key);
      heldOut.push(problem);
    }
  }
  return {
    heldOut,
    train(index, noise) {
      const r = new Rng((seed * 1_000_003 + index) ^ 0x7a11);
      for (;;) {
        const d = draw(r, opts);
        if (!isHeldOut(d.problem.key, fraction)) return { problem: d.problem, teacher: d.teach(r, noise) };
      }
    },
  };
}
