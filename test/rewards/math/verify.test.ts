import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { extractMathAnswer, mathReward, verifyMath } from "../../../src/rewards/math/index.js";
import { KlearError } from "../../../src/util/errors.js";

type Row = [gold: string, response: string, expected: boolean];

function check(rows: Row[]): void {
  for (const [gold, response, expected] of rows) {
    const r = verifyMath(gold, response);
    assert.equal(
      r.correct,
      expected,
      `gold ${JSON.stringify(gold)} vs ${JSON.stringify(response)}: expected ${expected}, got ${r.correct} (${r.reason}; pred ${JSON.stringify(r.extractedPred)})`,
    );
    assert.ok(!r.timedOut && !r.error, `unexpected error: ${r.error}`);
  }
}

describe("extraction", () => {
  test("boxed: nested braces, \\fbox, the last of several boxes, joined boxes", () => {
    check([
      ["\\frac{1}{2}", "first \\boxed{3} then \\boxed{\\frac{1}{2}}", true],
      ["\\frac{1}{2}", "so $\\boxed{\\frac{\\sqrt{4}}{4}}$", true],
      ["7", "the answer is \\fbox{7}", true],
      ["\\{1,2\\}", "\\boxed{1} and \\boxed{2}", true],
      ["2", "\\boxed{1} no no no no no \\boxed{2}", true],
      ["5", "unterminated \\boxed{5", true],
    ]);
  });
  test("final-answer phrases and answer: prefixes", () => {
    check([
      ["34", "Final Answer: The largest $n$ is 34.", true],
      ["12", "Final Answer: The final answer is $12$. I hope it is correct.", true],
      ["9", "Answer: 9", true],
      ["9", "Answer: $9$ (not 10)", true],
    ]);
  });
  test("LaTeX environments: $…$, $$…$$, \\[…\\], \\(…\\); inline ones do not span lines", () => {
    check([
      ["9", "Answer \\[ 9 \\]", true],
      ["9", "Answer $$ 9 $$", true],
      ["9", "Answer \\( 9 \\)", true],
      ["9", "Answer $ 9 $", true],
      ["9", "Answer \\[ \n 9 \n \\]", true],
    ]);
    assert.equal(
      verifyMath("$9$", "Answer $ \n 9 \n $", { predTargets: [{ type: "latex" }] }).correct,
      false,
    );
  });
  test("plain-number fallback: thousands separators, decimal comma, currency, leading dot", () => {
    check([
      ["7425000", "it is 7,425,000", true],
      ["1000.99", "costs $1,000.99 in total", true],
      ["0.4", "probability .4", true],
      ["1000.99", "the number is not 10 which is 1,000.99€", true],
      ["2", "AZYUK2A", false],
    ]);
  });
  test("only the text after </think> is read (configurable)", () => {
    const resp = "<think>maybe \\boxed{3}</think> The answer is \\boxed{4}.";
    assert.equal(verifyMath("4", resp).correct, true);
    assert.equal(verifyMath("4", "<think>\\boxed{4}</think> I give up").correct, false);
    assert.equal(verifyMath("4", "<think>\\boxed{4}</think> I give up", { stripThink: false }).correct, true);
  });
  test("multiple-choice letters", () => {
    const r = extractMathAnswer("The answer is (C).", {
      targets: [{ type: "string", strings: ["A", "B", "C", "D"], lowercase: false }],
    });
    assert.equal(r.choice, "C");
    check([["\\text{C}", "$\\boxed{\\text{(C)}}$", true]]);
  });
  test("extractMathAnswer returns the answer text as written", () => {
    assert.equal(extractMathAnswer("so $x = \\boxed{\\dfrac{3}{4}}$").answer, "\\dfrac{3}{4}");
    assert.equal(extractMathAnswer("no numbers here").answer, null);
  });
});

describe("normalisation and parsing", () => {
  test("fractions, roots, powers, constants", () => {
    check([
      ["\\frac{1}{2}", "\\boxed{\\dfrac12}", true],
      ["\\frac{1}{2}", "\\boxed{\\tfrac{1}{2}}", true],
      ["\\frac{1}{2}", "\\boxed{0.5}", true],
      ["2\\sqrt{3}", "\\boxed{\\sqrt{12}}", true],
      ["3", "\\boxed{\\sqrt[3]{27}}", true],
      ["2^{10}", "\\boxed{1024}", true],
      ["\\frac{\\pi}{2}", "\\boxed{\\pi/2}", true],
      ["e^2", "\\boxed{e\\cdot e}", true],
      ["\\infty", "\\boxed{\\infty}", true],
      ["6", "\\boxed{2 \\times 3}", true],
      ["2", "\\boxed{6 \\div 3}", true],
      ["2^{25} \\cdot 26!", "\\boxed{2^{25}\\cdot 26!}", true],
    ]);
  });
  test("implicit multiplication, mixed numbers, \\left/\\right", () => {
    check([
      ["6x", "\\boxed{2 \\cdot 3x}", true],
      ["\\frac{5}{2}", "\\boxed{2\\frac{1}{2}}", true],
      ["\\frac{1}{3}", "$\\left( \\frac{1}{3} \\right)$", true],
    ]);
  });
  test("thousands separators, scientific notation, percentages, degrees", () => {
    check([
      ["10000", "\\boxed{10{,}000}", true],
      ["11111111100", "\\boxed{11,\\!111,\\!111,\\!100}", true],
      ["32349", "\\boxed{32, 349}", false],
      ["1500", "\\boxed{1.5 \\times 10^{3}}", true],
      ["28\\%", "\\boxed{28\\%}", true],
      ["28\\%", "28 percent", true],
      ["28\\%", "\\boxed{28}", false],
      ["90^\\circ", "\\boxed{90}", true],
      ["90", "\\boxed{90^{\\circ}}", true],
    ]);
  });
  test("\\text{} and units", () => {
    check([
      ["125", "The distance is $\\boxed{125\\textnormal{ miles}}$.", true],
      ["15", "$\\boxed{15\\mbox{ cm}^2}$", true],
      ["\\text{Evelyn}", "\\boxed{\\text{Evelyn}}", true],
      ["\\text{Even}", "$\\boxed{Even}$", true],
      ["\\text{odd}", "$\\boxed{\\text{even}}$", false],
    ]);
  });
  test("matrices", () => {
    check([
      [
        "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
        "$\\begin{bmatrix}1 & 2 \\\\ 3 & 4\\end{bmatrix}$",
        true,
      ],
      [
        "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
        "$\\begin{pmatrix}1 & 2 \\\\ 3 & 5\\end{pmatrix}$",
        false,
      ],
      [
        "\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}",
        "$\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}$",
        true,
      ],
    ]);
  });
  test("sets, tuples, intervals and unions", () => {
    check([
      ["\\{1,2\\}", "\\boxed{\\{2,1\\}}", true],
      ["(1,2)", "\\boxed{(2,1)}", false],
      ["(1,2)", "\\boxed{(1,2)}", true],
      ["[0,1)", "\\boxed{[0,1)}", true],
      ["(-\\infty, -3] \\cup [2, \\infty)", "\\boxed{[2,\\infty) \\cup (-\\infty,-3]}", true],
      ["1, 2, 3", "\\boxed{3, 2, 1}", true],
      ["\\pm 2", "\\boxed{\\{-2, 2\\}}", true],
      ["1 \\pm \\sqrt{19}", "$x = \\boxed{1 \\pm \\sqrt{19}}$", true],
    ]);
  });
  test("equations and inequalities", () => {
    check([
      // Math-Verify unwraps an assignment in gold when the left side only names the answer.
      ["x = 3", "\\boxed{3}", true],
      ["2x + z = 1", "\\boxed{1}", false],
      ["3", "\\boxed{x = 3}", true],
      ["k = 1", "\\boxed{1}", true],
      ["2x + 4y - 3 = 0", "$\\boxed{y = -\\frac{1}{2}x + \\frac{3}{4}}$", true],
      ["x \\leq 5", "$\\boxed{5 \\geq x}$", true],
      ["x < 1", "$\\boxed{-x > -1}$", true],
      ["x < 1", "$\\boxed{x > -1}$", false],
      ["-793 < a < 10", "$\\boxed{(-793, 10)}$", true],
    ]);
  });
});

describe("comparison", () => {
  test("hard negatives", () => {
    check([
      ["\\frac{1}{3}", "\\boxed{0.33}", false],
      ["2\\pi", "\\boxed{6.28}", false],
      ["\\{1,2\\}", "\\boxed{(1,2)}", false],
      ["[0,1)", "\\boxed{[0,1]}", false],
      ["(0,1)", "\\boxed{[0,1)}", false],
      ["\\sqrt{2}", "\\boxed{1.414}", false],
      ["\\frac{2}{3}", "\\boxed{\\frac{3}{2}}", false],
      ["x+1", "\\boxed{x+2}", false],
      ["-5", "\\boxed{5}", false],
    ]);
  });
  test("exact rationals and the 6-digit rounding rule", () => {
    check([
      ["\\frac{1}{3}", "\\boxed{0.333333}", true],
      ["\\frac{1}{12}", "$0.0833333333333333$", true],
      ["1", "\\boxed{\\frac{3}{3}}", true],
      ["123456789012345678901234567890", "\\boxed{123456789012345678901234567891}", false],
      ["123456789012345678901234567890", "\\boxed{123456789012345678901234567890}", true],
    ]);
    assert.equal(verifyMath("\\frac{1}{3}", "\\boxed{0.3333}", { floatRounding: 4 }).correct, true);
    assert.equal(verifyMath("f(x)", "\\boxed{f(y)}", { strict: false }).correct, true);
  });
  test("free variables: evaluation at random points", () => {
    check([
      ["\\frac{x+2}{7}", "$\\boxed{\\frac{x}{7}+\\frac{2}{7}}$", true],
      ["\\tan^2(y)+1", "$\\boxed{\\sec^2(y)}$", true],
      ["(x+1)^2", "\\boxed{x^2+2x+1}", true],
      ["(x+1)^2", "\\boxed{x^2+1}", false],
      ["2 \\sin b \\cos a", "\\boxed{\\sin(a+b) - \\sin(a-b)}", true],
      ["\\arccos x", "\\boxed{\\frac{\\pi}{2} - \\arcsin x}", true],
      ["\\sqrt{x^2}", "\\boxed{|x|}", true],
      ["\\sqrt{x^2}", "\\boxed{x}", false],
      ["f(x)", "\\boxed{f(y)}", false],
    ]);
  });
});

describe("mathReward", () => {
  test("klear mode: ±1 and the format rules", () => {
    assert.equal(mathReward("4", "<think>hm</think> \\boxed{4}").score, 1);
    assert.equal(mathReward("4", "<think>hm</think> \\boxed{5}").score, -1);
    assert.equal(mathReward("4", "<think>hm, still thinking \\boxed{4}").score, -0.5);
    assert.equal(mathReward("4", "no open tag</think> \\boxed{4}").score, -2);
    assert.equal(mathReward("4", "<think>x</think> nothing here").score, -1);
  });
  test("klear fast path: the extracted string equals the ground truth", () => {
    const r = mathReward("\\text{Friday}", "<think>x</think> \\boxed{\\text{Friday}}");
    assert.equal(r.score, 1);
  });
  test("binary mode: 1 / 0 without format rules", () => {
    assert.equal(mathReward("4", "\\boxed{4}", { mode: "binary" }).score, 1);
    assert.equal(mathReward("4", "\\boxed{5}", { mode: "binary" }).score, 0);
  });
  test("an unknown mode is a ConfigError naming the choices", () => {
    assert.throws(() => mathReward("4", "4", { mode: "strict" as "klear" }), KlearError);
  });
});

describe("bounded time", () => {
  test("huge exponents, deep nesting and megabyte responses finish within the budget", () => {
    const cases: [string, string][] = [
      ["1", "\\boxed{2^{10^{10}}}"],
      ["1", "\\boxed{10^{10^{10^{10}}}}"],
      ["1", `\\boxed{${"(".repeat(5000)}1${")".repeat(5000)}}`],
      ["1", `\\boxed{${"\\frac{1}{".repeat(3000)}2${"}".repeat(3000)}}`],
      ["1", `${"$x$ and ".repeat(100_000)} \\boxed{1}`],
      ["1", "9".repeat(1_000_000)],
      ["1", `\\boxed{${"x+".repeat(50_000)}1}`],
      ["1", "\\boxed{1000000!}"],
      ["1", "\\boxed{\\sum_{k=1}^{10^{12}} k}"],
      ["1", `\\boxed{${"x^".repeat(50_000)}2}`],
      ["1", `\\boxed{3${"!".repeat(100_000)}}`],
      ["1", `\\boxed{${"-".repeat(100_000)}1}`],
      ["1", `\\boxed{${"|".repeat(100_000)}}`],
      ["1", `$${"\\begin{pmatrix}".repeat(20_000)}$`],
    ];
    for (const [gold, response] of cases) {
      const t0 = performance.now();
      const r = verifyMath(gold, response, { timeoutMs: 300 });
      const ms = performance.now() - t0;
      assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms on ${response.slice(0, 40)}`);
      if (r.timedOut) assert.equal(r.reason, "timed out");
      assert.notEqual(r.reason, "internal error", `${response.slice(0, 40)}: ${r.error}`);
    }
  });
  test("a timed-out check says so instead of reporting a plain wrong answer", () => {
    const r = verifyMath("1", "\\boxed{\\sum_{a=1}^{2000}\\sum_{b=1}^{2000}\\sum_{c=1}^{2000} abc}", {
      timeoutMs: 1,
    });
    assert.equal(r.timedOut, true);
    assert.equal(r.correct, false);
    assert.match(r.error ?? "", /budget/);
  });
});
