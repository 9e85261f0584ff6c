/**
 * String-level LaTeX clean-up before parsing, following latex2sympy2_extended's NormalizationConfig
 * (basic_latex, units, malformed operators): what is removed here carries no mathematical meaning
 * for grading (spacing, sizing, units, degree marks, `\$`), or is a spelling variant (`\dfrac`).
 */

const UNIT_WORDS = [
  "meters?",
  "metres?",
  "centimeters?",
  "centimetres?",
  "kilometers?",
  "kilometres?",
  "millimeters?",
  "inch(?:es)?",
  "feet",
  "foot",
  "ft",
  "yards?",
  "miles?",
  "mph",
  "km",
  "cm",
  "mm",
  "kg",
  "grams?",
  "kilograms?",
  "pounds?",
  "lbs?",
  "ounces?",
  "oz",
  "seconds?",
  "secs?",
  "minutes?",
  "mins?",
  "hours?",
  "hrs?",
  "days?",
  "weeks?",
  "months?",
  "years?",
  "dollars?",
  "cents?",
  "yuan",
  "euros?",
  "units?",
  "square",
  "sq",
  "cubic",
  "liters?",
  "litres?",
  "ml",
  "degrees?",
  "radians?",
  "people",
  "persons?",
  "students?",
  "ways",
  "times",
  "points?",
];
const UNIT_RE = new RegExp(
  `(?<=[\\d}])\\s*(?:${UNIT_WORDS.join("|")})(?:\\^\\{?[23]\\}?|²|³)?(?![A-Za-z])`,
  "g",
);

const SPACING =
  /(?<!\\)\\q?quad|(?<!\\)\\(?:[,;:! ]|displaystyle|textstyle|scriptstyle|limits|nolimits)(?![A-Za-z])|~/g;
const SIZING =
  /\\(?:left|right|big|Big|bigg|Bigg|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|middle)(?![A-Za-z])\s*/g;

export interface NormalizeOptions {
  /** Repair `\frac12` and `\sqrt3` (latex2sympy2_extended's `malformed_operators`). Default true. */
  malformedOperators?: boolean;
}

export function normalizeLatex(input: string, opts: NormalizeOptions = {}): string {
  let s = input;
  // Raw-string test inputs carry `\\frac`: a doubled backslash directly before a command name.
  s = s.replace(/\\\\(?=(?!begin|end|hline)[A-Za-z]{2,})/g, "\\");
  s = s.replace(/\\(?:dfrac|tfrac|cfrac)(?![A-Za-z])/g, "\\frac");
  s = s.replace(/\\(?:dbinom|tbinom)(?![A-Za-z])/g, "\\binom");
  s = s.replace(/(\d),\\!\s*(?=\d)/g, "$1");
  s = s.replace(/(\d)\s*\{\s*,\s*\}\s*(?=\d)/g, "$1");
  s = s.replace(SIZING, "");
  // 1,234,567 and a lone 10,455 are thousands separators; "1, 234" (with a space) stays a list.
  s = s.replace(/(?<![\d.,])[1-9]\d{0,2}(?:,\d{3}){2,}(?![\d,])/g, (m) => m.replace(/,/g, ""));
  if (/^\s*-?[1-9]\d{0,2},\d{3}(?:\.\d+)?\s*$/.test(s)) s = s.replace(/,/g, "");
  s = s.replace(SPACING, " ");
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°/g, "");
  s = s.replace(/\\%/g, "%");
  s = s.replace(/\\\$/g, "");
  s = s.replace(/\$/g, "");
  s = s.replace(/\\(?:mathbf|mathit|mathsf|boldsymbol|bm|mathnormal)\s*\{([^{}]*)\}/g, "$1");
  // Prose joiners between answers become list separators.
  s = s.replace(/\\(?:text|textbf|textit|textnormal|mbox|mathrm|rm)\s*\{\s*(?:and|or|,)\s*\}/g, ",");
  s = s.replace(/(^|[\s,})])(?:and|or)(?=[\s{\\(]|$)/g, "$1,");
  s = s.replace(/\\(?:text|textbf|textit|textnormal|mbox|mathrm|rm)\s*\{\s*(?:and|or)\s/g, ",\\text{");
  s = s.replace(UNIT_RE, "");
  s = s.replace(
    /\\(?:text|textbf|textit|textnormal|mbox|mathrm)\s*\{\s*(?:[a-z]+\s*)?(?:\\\w+)?\}\s*\^\s*\{?[23]\}?/g,
    "",
  );
  if (opts.malformedOperators !== false) {
    s = s.replace(/\\frac\s*(\d)\s*(\d)/g, "\\frac{$1}{$2}");
    s = s.replace(/\\frac\s*(\d)\s*(?=\{)/g, "\\frac{$1}");
    s = s.replace(/\\frac\s*(\{[^{}]*\})\s*(\d)/g, "\\frac$1{$2}");
    s = s.replace(/\\frac\s*([A-Za-z])\s*([A-Za-z\d])/g, "\\frac{$1}{$2}");
    s = s.replace(/\\sqrt\s*(\d+|[A-Za-z])/g, "\\sqrt{$1}");
  }
  return s.trim();
}
