import { KlearError } from "../util/errors.js";
import {
  answerText,
  type ChatMessage,
  type RowFieldNames,
  rowAnswer,
  rowPromptMessages,
  rowPromptText,
  rowSource,
  rowTests,
} from "./fields.js";
import { type ReadRowsOptions, type RowRecord, readRows, rowLocation } from "./read.js";

/**
 * Rows as problems a scorer can check (`rewards/score.ts` takes them as they are): the RL task files,
 * verl parquet from `klear data convert`, and any problem or chat set with answers or tests.
 */

/** One test in LiveCodeBench's shape (the same shape as rewards/code's `CodeTest`). */
export interface RowCodeTest {
  input: string;
  output: string;
  testtype: "stdin" | "functional";
}

export interface RowProblem {
  /** `file#k`, k the 0-based index of the row in its file: stable while the file is. */
  id: string;
  kind: "math" | "code";
  /** What the model is asked, as chat turns (verl's prompt list as it is). */
  messages: ChatMessage[];
  /** The user text of the prompt. */
  prompt: string;
  /** Math: the gold answer; code: the ground truth as stored (tests as JSON text). */
  answer: string;
  /** Code: the tests, parsed. */
  tests?: RowCodeTest[];
  /** Code: LeetCode starter code and the method a functional test calls, when the row gives them. */
  starterCode?: string;
  fnName?: string;
  source: string;
  file: string;
  line: number;
}

/**
 * The tests of a code row's ground truth (JSON text, or the value itself): Klear/rllm
 * `{inputs, outputs}` (stdin), or LiveCodeBench's `[{input, output, testtype}]` (also under `tests`).
 * Null for formats the sandbox cannot run (`functional` assert code, `pytest` files, test files by path).
 */
export function codeTestsFromGroundTruth(groundTruth: unknown): RowCodeTest[] | null {
  let parsed: unknown = groundTruth;
  if (typeof groundTruth === "string") {
    try {
      parsed = JSON.parse(groundTruth);
    } catch {
      return null;
    }
  }
  const asTest = (t: unknown): RowCodeTest | null => {
    const x = t as Record<string, unknown> | null;
    if (typeof x?.input !== "string" || typeof x.output !== "string") return null;
    return {
      input: x.input,
      output: x.output,
      testtype: x.testtype === "functional" ? "functional" : "stdin",
    };
  };
  const p = parsed as Record<string, unknown> | null;
  const list = Array.isArray(parsed) ? parsed : p?.tests;
  if (Array.isArray(list)) {
    const tests = list.map(asTest);
    return tests.every((t) => t !== null) ? (tests as RowCodeTest[]) : null;
  }
  const inputs = p?.inputs;
  const outputs = p?.outputs;
  if (Array.isArray(inputs) && Array.isArray(outputs) && inputs.length === outputs.length) {
    return inputs.map((input, i) => ({
      input: String(input),
      output: String(outputs[i]),
      testtype: "stdin",
    }));
  }
  return null;
}

/** The number of tests in a code row's ground truth (stdin/stdout pairs, functional asserts, ...). */
export function groundTruthTestCount(groundTruth: unknown): number {
  let parsed: unknown = groundTruth;
  if (typeof groundTruth === "string") {
    try {
      parsed = JSON.parse(groundTruth);
    } catch {
      return 0;
    }
  }
  if (Array.isArray(parsed)) return parsed.length;
  if (typeof parsed !== "object" || parsed === null) return 0;
  const p = parsed as Record<string, unknown>;
  if (Array.isArray(p.inputs)) return p.inputs.length;
  if (Array.isArray(p.functional)) return p.functional.length;
  if (typeof p.functional === "string") return (p.functional.match(/^\s*assert\b/gm) ?? []).length;
  if (Array.isArray(p.tests)) return p.tests.length;
  return 0;
}

export interface RowProblemOptions {
  /** The kind every row is read as; default each row's `ability` ("code" or else math). */
  kind?: "math" | "code";
  /** Where the fields are, when not where detection finds them. */
  names?: RowFieldNames;
}

/** One row as a problem; a row without a prompt, an answer or runnable tests is an error naming its line. */
export function rowToProblem(record: RowRecord, index: number, opts: RowProblemOptions = {}): RowProblem {
  const { row, file, line } = record;
  const where = rowLocation(file, line);
  const names = opts.names ?? {};
  const kind = opts.kind ?? (String(row.ability ?? "").toLowerCase() === "code" ? "code" : "math");
  const messages = rowPromptMessages(row, names);
  const prompt = rowPromptText(row, names.prompt) ?? messages?.map((m) => m.content).join("\n") ?? null;
  if (messages === null || prompt === null) {
    throw new KlearError(
      "ROW_NO_PROMPT",
      `${where}: the row has no prompt (a string, chat messages, problem or question)`,
      names.prompt
        ? `check the prompt field name ("${names.prompt}")`
        : "give each row `prompt` as a string or as [{role, content}, …] (verl/Klear rows)",
    );
  }
  const problem: RowProblem = {
    id: `${file}#${index}`,
    kind,
    messages,
    prompt,
    answer: "",
    source: rowSource(row, names.source),
    file,
    line,
  };
  if (typeof row.fn_name === "string") problem.fnName = row.fn_name;
  if (typeof row.starter_code === "string") problem.starterCode = row.starter_code;
  if (kind === "math") {
    const answer = rowAnswer(row, names.answer);
    if (answer === undefined) {
      throw new KlearError(
        "ROW_NO_ANSWER",
        `${where}: the row has no reference answer`,
        "give each row reward_model.ground_truth (verl/Klear) or answer",
      );
    }
    problem.answer = answer;
    return problem;
  }
  const raw = names.tests !== undefined ? rowTests(row, names.tests) : (rowTests(row) ?? rowAnswerValue(row));
  const tests = raw === undefined ? null : codeTestsFromGroundTruth(raw);
  if (tests === null || tests.length === 0) {
    throw new KlearError(
      "CODE_TESTS_UNSUPPORTED",
      `${where}: ${raw === undefined ? "the code row has no tests" : "the tests are not {inputs, outputs} or a list of {input, output, testtype}"}`,
      "convert the row's tests to stdin/stdout pairs or functional tests",
    );
  }
  problem.tests = tests;
  problem.answer = answerText(raw) ?? "";
  return problem;
}

/** A code row read as code by `kind` without `ability: code` keeps its tests in the ground truth. */
function rowAnswerValue(row: Record<string, unknown>): unknown {
  const rm = row.reward_model as Record<string, unknown> | undefined;
  return rm && typeof rm === "object" && rm.ground_truth !== undefined ? rm.ground_truth : row.answer;
}

/** Every row of `paths` (files, shards folders; jsonl, .jsonl.gz, parquet) as a problem. */
export async function readRowProblems(
  paths: string | readonly string[],
  opts: RowProblemOptions & ReadRowsOptions = {},
): Promise<RowProblem[]> {
  const out: RowProblem[] = [];
  const perFile = new Map<string, number>();
  for await (const r of readRows(paths, opts)) {
    const k = perFile.get(r.file) ?? 0;
    perFile.set(r.file, k + 1);
    out.push(rowToProblem(r, k, opts));
  }
  return out;
}
