import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { extractMathAnswer, verifyMath } from "../../../src/rewards/math/index.js";

/**
 * Random and malformed LaTeX must never throw, never hang and never report a timeout as a verdict.
 * Each check runs with a 200 ms budget; the whole property must stay well under that per run.
 */

const TOKENS = [
  "\\frac",
  "\\dfrac",
  "\\sqrt",
  "\\boxed",
  "\\fbox",
  "\\left(",
  "\\right)",
  "\\left[",
  "\\right]",
  "{",
  "}",
  "(",
  ")",
  "[",
  "]",
  "\\{",
  "\\}",
  "^",
  "_",
  "+",
  "-",
  "*",
  "/",
  "=",
  "<",
  ">",
  "\\le",
  "\\ge",
  "\\neq",
  "\\pm",
  "\\cdot",
  "\\times",
  "\\div",
  "\\pi",
  "\\infty",
  "e",
  "i",
  "x",
  "y",
  "n",
  "0",
  "1",
  "2",
  "3.5",
  "10",
  "999999999999",
  ",",
  ";",
  "\\cup",
  "\\in",
  "%",
  "\\%",
  "^\\circ",
  "\\text{cm}",
  "\\text{ and }",
  "$",
  "$$",
  "\\[",
  "\\]",
  "\\(",
  "\\)",
  "\\begin{pmatrix}",
  "\\end{pmatrix}",
  "&",
  "\\\\",
  "\\sin",
  "\\log_",
  "!",
  "|",
  "\\sum_{k=1}^{",
  "\\approx",
  ":",
  "</think>",
  "<think>",
  "Final Answer: The final answer is ",
  "I hope",
  "answer:",
  " ",
  "\n",
  "\\",
  "\\unknowncmd",
];

const latexish = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((ts) => ts.join(""));
const anyText = fc.oneof(
  latexish,
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "grapheme", maxLength: 80 }),
);

function assertSane(r: ReturnType<typeof verifyMath>): void {
  assert.equal(typeof r.correct, "boolean");
  assert.equal(typeof r.reason, "string");
  if (r.timedOut) assert.equal(r.correct, false);
  // An internal error is a bug: a parse failure must surface as "could not be parsed", not an exception.
  assert.equal(r.reason === "internal error", false, `internal error: ${r.error}`);
}

test("fuzz: random and malformed LaTeX never crashes or hangs", () => {
  fc.assert(
    fc.property(anyText, anyText, (gold, response) => {
      const t0 = performance.now();
      const r = verifyMath(gold, response, { timeoutMs: 200 });
      assert.ok(performance.now() - t0 < 1500, "check ran far past its budget");
      assertSane(r);
      const w = verifyMath(gold, `\\boxed{${response}}`, { timeoutMs: 200 });
      assertSane(w);
    }),
    { numRuns: 600, seed: 20241128 },
  );
});

test("fuzz: a response always equals itself when it parses", () => {
  fc.assert(
    fc.property(latexish, (s) => {
      const r = verifyMath(s, `\\boxed{${s}}`, { timeoutMs: 200, goldTargets: "auto" });
      assertSane(r);
      const ex = extractMathAnswer(`\\boxed{${s}}`, { timeoutMs: 200 });
      assert.ok(ex.answer === null || typeof ex.answer === "string");
    }),
    { numRuns: 300, seed: 7 },
  );
});

test("fuzz: numbers written two ways agree (fraction vs decimal, exact)", () => {
  fc.assert(
    fc.property(fc.integer({ min: -10_000, max: 10_000 }), fc.integer({ min: 1, max: 64 }), (a, b) => {
      // b a power of two keeps the decimal exact.
      const d = 2 ** Math.floor(Math.log2(b));
      const dec = (a / d).toString();
      const r = verifyMath(`\\frac{${a}}{${d}}`, `\\boxed{${dec}}`);
      assert.equal(r.correct, true, `${a}/${d} vs ${dec}`);
      const wrong = verifyMath(`\\frac{${a}}{${d}}`, `\\boxed{${a / d + 1}}`);
      assert.equal(wrong.correct, false);
    }),
    { numRuns: 300, seed: 11 },
  );
});
