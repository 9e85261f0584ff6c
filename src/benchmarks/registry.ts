import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { inflateSync } from "node:zlib";
import { fnNameFromStarter } from "../rewards/code/local.js";
import { rowAnswer, rowPromptText } from "../rows/fields.js";
import { collectRows } from "../rows/read.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { type HubOptions, hubCachePath, hubDatasetFile, hubFileUrl } from "./hub.js";

/** One test of a LiveCodeBench problem, in LiveCodeBench's own format. */
export interface EvalCodeTest {
  input: string;
  output: string;
  testtype: "stdin" | "functional";
}

/** A benchmark problem, normalised from whichever file format it came in. */
export interface EvalProblem {
  /** Stable and unique within its benchmark (the results store is keyed by it). */
  id: string;
  kind: "math" | "code";
  /** The problem statement. */
  question: string;
  /** Math: the gold final answer (LaTeX or plain). */
  answer?: string;
  /** Code: tests, the LeetCode starter code ("" for stdin/stdout problems) and the method to call. */
  tests?: EvalCodeTest[];
  starterCode?: string;
  fnName?: string;
  /** A complete prompt shipped with the data (QwQ's LiveCodeBench file); used instead of the template. */
  fullPrompt?: string;
  difficulty?: string;
  subject?: string;
  /** ISO date (LiveCodeBench contest date). */
  date?: string;
}

export interface BenchmarkSpec {
  name: string;
  kind: "math" | "code";
  description: string;
  /** Samples per problem in the paper's protocol (avg@64 for AIME/HMMT, avg@8 for LiveCodeBench). */
  defaultN: number;
  /** File names recognised inside a `--data` folder, most specific first. */
  localFiles: string[];
  /** Where the hub copy lives. */
  hub: { repo: string; files: string[] };
  /** Inclusive start, exclusive end (ISO dates) on `contest_date`. */
  window?: { from: string; to: string };
}

const LCB_HUB = "livecodebench/code_generation_lite";

/**
 * Each benchmark, with the local file names we recognise and the hub dataset it is fetched from by
 * name. Local files use the formats in ../shared/data (Klear's, LIMO's, Qwen's, OpenAI's, QwQ's);
 * hub rows are parsed by the same field-sniffing loaders.
 */
export const BENCHMARKS: Record<string, BenchmarkSpec> = {
  aime24: {
    name: "aime24",
    kind: "math",
    description: "AIME 2024 I+II (30), avg@64",
    defaultN: 64,
    localFiles: ["aime24.jsonl", "aime24.qs.jsonl"],
    hub: { repo: "HuggingFaceH4/aime_2024", files: ["data/train-00000-of-00001.parquet"] },
  },
  aime25: {
    name: "aime25",
    kind: "math",
    description: "AIME 2025 I+II (30), avg@64",
    defaultN: 64,
    localFiles: ["aime25.jsonl", "aime25.qs.jsonl"],
    hub: { repo: "opencompass/AIME2025", files: ["aime2025-I.jsonl", "aime2025-II.jsonl"] },
  },
  hmmt_feb_2025: {
    name: "hmmt_feb_2025",
    kind: "math",
    description: "HMMT February 2025 (30), avg@64",
    defaultN: 64,
    localFiles: ["hmmt_feb_2025.jsonl", "HMMT-202502.jsonl"],
    hub: { repo: "MathArena/hmmt_feb_2025", files: ["data/train-00000-of-00001.parquet"] },
  },
  math500: {
    name: "math500",
    kind: "math",
    description: "MATH-500 (500), by level and subject",
    defaultN: 4,
    localFiles: ["math500.jsonl", "test.jsonl"],
    hub: { repo: "HuggingFaceH4/MATH-500", files: ["test.jsonl"] },
  },
  amc23: {
    name: "amc23",
    kind: "math",
    description: "AMC 2023 (40)",
    defaultN: 16,
    localFiles: ["amc23.jsonl"],
    hub: { repo: "math-ai/amc23", files: ["test-00000-of-00001.parquet"] },
  },
  gsm8k: {
    name: "gsm8k",
    kind: "math",
    description: "GSM8K test (1,319)",
    defaultN: 1,
    localFiles: ["gsm8k_test.jsonl", "gsm8k.jsonl"],
    hub: { repo: "openai/gsm8k", files: ["main/test-00000-of-00001.parquet"] },
  },
  livecodebench: {
    name: "livecodebench",
    kind: "code",
    description: "LiveCodeBench code generation, all dates in the data",
    defaultN: 8,
    localFiles: ["lcb_v5_problems.jsonl", "livecodebench.jsonl"],
    hub: { repo: LCB_HUB, files: ["test5.jsonl", "test6.jsonl"] },
  },
  livecodebench_v5: {
    name: "livecodebench_v5",
    kind: "code",
    description: "LiveCodeBench v5 window 2024-08-01..2025-02-01, avg@8",
    defaultN: 8,
    localFiles: ["lcb_v5_problems.jsonl", "livecodebench.jsonl"],
    hub: { repo: LCB_HUB, files: ["test4.jsonl", "test5.jsonl"] },
    window: { from: "2024-08-01", to: "2025-02-01" },
  },
  livecodebench_v6: {
    name: "livecodebench_v6",
    kind: "code",
    description: "LiveCodeBench v6 window 2025-02-01..2025-05-01, avg@8",
    defaultN: 8,
    localFiles: ["lcb_v6_problems.jsonl", "test6.jsonl", "livecodebench.jsonl"],
    hub: { repo: LCB_HUB, files: ["test6.jsonl"] },
    window: { from: "2025-02-01", to: "2025-05-01" },
  },
};

const ALIASES: Record<string, string> = {
  lcb: "livecodebench",
  lcb_v5: "livecodebench_v5",
  lcb_v6: "livecodebench_v6",
  "math-500": "math500",
  hmmt25: "hmmt_feb_2025",
  hmmt: "hmmt_feb_2025",
};

export function benchmarkNames(): string[] {
  return Object.keys(BENCHMARKS);
}

/** Resolves a benchmark name (or alias) to its spec, naming the valid ones when unknown. */
export function getBenchmark(name: string): BenchmarkSpec {
  const spec = BENCHMARKS[ALIASES[name] ?? name];
  if (!spec) {
    throw new ConfigError(
      `unknown benchmark "${name}"`,
      `use one of: ${benchmarkNames().join(", ")} (aliases: ${Object.keys(ALIASES).join(", ")})`,
    );
  }
  return spec;
}

export interface LoadBenchmarkOptions {
  /** A file or a folder holding the benchmark; when absent the hub copy is used. */
  data?: string;
  hub?: HubOptions;
  /** Keep only the first `limit` problems (after the date window). */
  limit?: number;
  /**
   * How the calling command takes a local copy, for the fix hints (default "--data FILE", eval's flag), so
   * a hint never names a flag the command lacks.
   */
  localCopyHint?: string;
}

export interface LoadedBenchmark {
  spec: BenchmarkSpec;
  problems: EvalProblem[];
  /** Where the problems came from (files or hub URLs), for the report. */
  source: string[];
}

type Row = Record<string, unknown>;

/** A benchmark file's rows, through rows/'s reader (jsonl, .jsonl.gz, parquet, JSON arrays). */
async function readRows(path: string): Promise<Row[]> {
  return (await collectRows(path)).map((r) => r.row);
}

/** The benchmark's file inside folder `dir` (a recognised name), or null. */
export function findLocalBenchmarkFile(spec: BenchmarkSpec, dir: string): string | null {
  for (const name of [
    ...spec.localFiles,
    `${spec.name}.jsonl`,
    `${spec.name}.parquet`,
    `${spec.name}.json`,
  ]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** Finds the benchmark's file: `data` itself when it is a file, else a recognised name inside it. */
function resolveLocal(spec: BenchmarkSpec, data: string): string {
  if (!existsSync(data)) {
    throw new ConfigError(`--data ${data} does not exist`, "give a benchmark file or a folder holding it");
  }
  if (statSync(data).isFile()) return data;
  const found = findLocalBenchmarkFile(spec, data);
  if (found) return found;
  throw new ConfigError(
    `no ${spec.name} file in ${data}${spec.hub.repo ? ` (it comes from ${hubSourceText(spec)})` : ""}`,
    `put one of ${spec.localFiles.join(", ")} there, pass the file itself with --data FILE, or leave out --data to read the hub copy (\`klear eval --bench ${spec.name} --fetch-only\` fetches it into the cache)`,
  );
}

const hubSourceText = (spec: BenchmarkSpec) =>
  `the Hugging Face dataset ${spec.hub.repo}, file${spec.hub.files.length > 1 ? "s" : ""} ${spec.hub.files.join(", ")}`;

/**
 * A benchmark file that is neither cached nor downloadable: says where it comes from, the one command
 * that fetches it on a machine with network access, and the exact path a downloaded copy goes to.
 */
function notAvailableOffline(
  spec: BenchmarkSpec,
  file: string,
  opts: LoadBenchmarkOptions,
  cause: KlearError,
) {
  const cached = hubCachePath(spec.hub.repo, file, opts.hub);
  const cacheFlag = opts.hub?.cacheDir ? ` --cache-dir ${opts.hub.cacheDir}` : "";
  return new KlearError(
    "BENCHMARK_NOT_AVAILABLE",
    `${spec.name} is not available here: it comes from ${hubSourceText(spec)}, and ${file} is not in the cache (${cause.message.split("\n")[0]})`,
    `on a machine with network access run \`klear eval --bench ${spec.name} --fetch-only${cacheFlag}\` (or download ${hubFileUrl(spec.hub.repo, file, opts.hub)}), then put the file at ${cached}; or pass a local copy with ${opts.localCopyHint ?? "--data FILE"}`,
    { cause },
  );
}

export async function loadBenchmark(name: string, opts: LoadBenchmarkOptions = {}): Promise<LoadedBenchmark> {
  const spec = getBenchmark(name);
  let problems: EvalProblem[];
  let source: string[];
  if (opts.data) {
    const file = resolveLocal(spec, opts.data);
    source = [file];
    const rows = await readRows(file);
    if (spec.kind === "code") {
      const testsFile = findLcbTestsFile(file, rows);
      if (testsFile) source.push(testsFile);
      problems = parseCodeRows(rows, file, testsFile);
    } else problems = parseMathRows(spec, rows, file);
  } else {
    source = [];
    const rows: Row[] = [];
    for (const f of spec.hub.files) {
      let local: string;
      try {
        local = await hubDatasetFile(spec.hub.repo, f, opts.hub);
      } catch (e) {
        if (e instanceof KlearError && (e.code === "HUB_OFFLINE" || e.code === "HUB_UNREACHABLE"))
          throw notAvailableOffline(spec, f, opts, e);
        throw e;
      }
      source.push(`hf://datasets/${spec.hub.repo}/${f}`);
      for (const r of await readRows(local)) rows.push(r);
    }
    problems =
      spec.kind === "code"
        ? parseCodeRows(rows, spec.hub.repo, null)
        : parseMathRows(spec, rows, `hf://datasets/${spec.hub.repo}`);
  }
  if (spec.window) {
    const { from, to } = spec.window;
    const undated = problems.filter((p) => !p.date).length;
    if (undated) {
      throw new KlearError(
        "BENCHMARK_UNDATED",
        `${spec.name}: ${undated} problems have no contest_date, so the ${from}..${to} window cannot be applied`,
        "use LiveCodeBench rows with contest_date, or --bench livecodebench for no window",
      );
    }
    problems = problems.filter((p) => (p.date ?? "") >= from && (p.date ?? "") < to);
  }
  if (opts.limit !== undefined) problems = problems.slice(0, opts.limit);
  if (problems.length === 0) {
    throw new KlearError(
      "BENCHMARK_EMPTY",
      `${spec.name}: no problems loaded from ${source.join(", ")}${spec.window ? ` in ${spec.window.from}..${spec.window.to}` : ""}`,
      `check the benchmark name and its file (${opts.localCopyHint ?? "--data FILE"})`,
    );
  }
  return { spec, problems, source };
}

const str = (v: unknown): string | undefined =>
  v === undefined || v === null ? undefined : typeof v === "string" ? v : String(v);

/** Makes ids unique by suffixing repeats, so a duplicated id can never merge two problems' samples. */
function uniqueIds(problems: EvalProblem[]): EvalProblem[] {
  const seen = new Map<string, number>();
  for (const p of problems) {
    const k = seen.get(p.id) ?? 0;
    seen.set(p.id, k + 1);
    if (k > 0) p.id = `${p.id}#${k}`;
  }
  return problems;
}

/**
 * Math rows in any of the shipped shapes: Klear's `{messages, meta: {solution}}` (AIME), HMMT's top-level
 * `answer`, MATH-500's `{problem, answer, level, subject}`, AMC's float answers, GSM8K's `#### n`, and
 * the hub's `{problem|question, answer}`.
 */
export function parseMathRows(spec: BenchmarkSpec, rows: Row[], where: string): EvalProblem[] {
  const out: EvalProblem[] = rows.map((row, i) => {
    const meta = (typeof row.meta === "object" && row.meta !== null ? row.meta : {}) as Row;
    const question = rowPromptText(row) ?? undefined;
    let answer: string | undefined;
    if (spec.name === "gsm8k" || (typeof row.answer === "string" && row.answer.includes("\n#### "))) {
      const m = /####\s*(.+?)\s*$/s.exec(str(row.answer) ?? "");
      answer = m ? m[1].replace(/,/g, "") : undefined;
    } else {
      // Klear's HMMT keeps the answer at the top level; its AIME files keep it in meta.solution (§10.4).
      answer = rowAnswer(row);
      if (answer === undefined && typeof row.solution === "string") {
        const boxed = /^\\boxed\{(.*)\}$/s.exec(row.solution.trim());
        if (boxed) answer = boxed[1];
      }
    }
    if (question === undefined || answer === undefined) {
      throw new KlearError(
        "BENCHMARK_MALFORMED",
        `${where}: row ${i + 1} has no ${question === undefined ? "problem text" : "answer"} (keys: ${Object.keys(row).join(", ")})`,
        "use a row with messages/problem/question and answer (or meta.solution)",
      );
    }
    const id =
      str(row.unique_id) ??
      str(meta.unique_id) ??
      str(row.id) ??
      str(row.problem_idx) ??
      str(row.ID) ??
      String(i);
    const level = row.level ?? meta.level;
    return {
      id,
      kind: "math" as const,
      question,
      answer,
      difficulty: level === undefined || level === null ? undefined : String(level),
      subject: str(row.subject) ?? str(row.type),
    };
  });
  return uniqueIds(out);
}

/** The LiveCodeBench tests file beside QwQ's problems file (same order, SOURCES.md). */
function findLcbTestsFile(problemsFile: string, rows: Row[]): string | null {
  if (rows.length === 0 || rows[0].public_test_cases !== undefined || Array.isArray(rows[0].tests))
    return null;
  const dir = dirname(problemsFile);
  const candidates = [
    basename(problemsFile).replace(/_problems\.jsonl$/, "_public_tests.json"),
    "lcb_v5_public_tests.json",
  ];
  for (const c of candidates) {
    const p = join(dir, c);
    if (existsSync(p) && p !== problemsFile) return p;
  }
  throw new KlearError(
    "BENCHMARK_NO_TESTS",
    `${problemsFile} has no test cases (its "tests" field only names an external file)`,
    `put the matching tests file (e.g. lcb_v5_public_tests.json, same order) beside it in ${dir}`,
  );
}

/** LiveCodeBench's private tests: JSON, or base64(zlib(pickle(JSON string))). */
export function decodeLcbTests(raw: unknown): EvalCodeTest[] {
  if (Array.isArray(raw)) return raw as EvalCodeTest[];
  if (typeof raw !== "string" || raw === "") return [];
  const trimmed = raw.trim();
  if (trimmed.startsWith("[")) return JSON.parse(trimmed) as EvalCodeTest[];
  const bytes = inflateSync(Buffer.from(trimmed, "base64"));
  return JSON.parse(unpickleString(bytes)) as EvalCodeTest[];
}

/**
 * Reads the one str a pickle of a str holds (protocols 2-5: PROTO, FRAME, SHORT_BINUNICODE /
 * BINUNICODE / BINUNICODE8, MEMOIZE, STOP): LiveCodeBench pickles only a JSON string, and a general
 * unpickler would be an arbitrary-code surface we do not want.
 */
export function unpickleString(b: Buffer): string {
  let i = 0;
  while (i < b.length) {
    const op = b[i++];
    if (op === 0x80) i += 1;
    else if (op === 0x95) i += 8;
    else if (op === 0x94) {
      // MEMOIZE: no argument
    } else if (op === 0x8c) {
      const n = b[i];
      return b.subarray(i + 1, i + 1 + n).toString("utf8");
    } else if (op === 0x58) {
      const n = b.readUInt32LE(i);
      return b.subarray(i + 4, i + 4 + n).toString("utf8");
    } else if (op === 0x8d) {
      const n = Number(b.readBigUInt64LE(i));
      return b.subarray(i + 8, i + 8 + n).toString("utf8");
    } else break;
  }
  throw new KlearError(
    "LCB_TESTS_UNREADABLE",
    "LiveCodeBench private tests are not a pickled string",
    "use the code_generation_lite release files, or a JSON tests file",
  );
}

/**
 * LiveCodeBench rows: the hub's code_generation_lite (question_content, starter_code, public/private
 * tests, metadata.func_name), or QwQ's problems file paired line-by-line with rllm's public tests.
 */
export function parseCodeRows(rows: Row[], where: string, testsFile: string | null): EvalProblem[] {
  let side: Row[] | null = null;
  if (testsFile) {
    side = JSON.parse(readFileSync(testsFile, "utf8")) as Row[];
    if (!Array.isArray(side) || side.length !== rows.length) {
      throw new KlearError(
        "BENCHMARK_MISMATCH",
        `${testsFile} has ${Array.isArray(side) ? side.length : "no"} problems but ${where} has ${rows.length}`,
        "use the tests file that belongs to this problems file (line i ↔ element i)",
      );
    }
  }
  const out = rows.map((row, i): EvalProblem => {
    const t = side?.[i];
    const starterCode = str(row.starter_code) ?? str(t?.starter_code) ?? "";
    let tests: EvalCodeTest[] = [];
    if (t) tests = (t.tests as EvalCodeTest[]) ?? [];
    else if (Array.isArray(row.tests)) tests = row.tests as EvalCodeTest[];
    else tests = [...decodeLcbTests(row.public_test_cases), ...decodeLcbTests(row.private_test_cases)];
    let fnName: string | undefined;
    if (typeof row.metadata === "string" && row.metadata.trim().startsWith("{")) {
      fnName = str((JSON.parse(row.metadata) as Row).func_name);
    } else if (typeof row.metadata === "object" && row.metadata !== null) {
      fnName = str((row.metadata as Row).func_name);
    }
    fnName ??= fnNameFromStarter(starterCode);
    const question = str(row.question_content) ?? str(t?.problem) ?? str(row.problem) ?? str(row.prompt);
    if (question === undefined) {
      throw new KlearError(
        "BENCHMARK_MALFORMED",
        `${where}: row ${i + 1} has no problem statement (keys: ${Object.keys(row).join(", ")})`,
        "use LiveCodeBench rows with question_content (or QwQ's prompt)",
      );
    }
    if (tests.length === 0) {
      throw new KlearError(
        "BENCHMARK_NO_TESTS",
        `${where}: problem ${str(row.question_id) ?? i + 1} has no tests`,
        "use LiveCodeBench rows with public/private test cases",
      );
    }
    const date = str(row.contest_date);
    return {
      id: str(row.question_id) ?? str(row.global_id) ?? String(i),
      kind: "code",
      question,
      tests,
      starterCode,
      fnName,
      fullPrompt: row.question_content === undefined ? str(row.prompt) : undefined,
      difficulty: str(row.difficulty),
      subject: str(row.platform) ?? (starterCode ? "leetcode" : "atcoder"),
      date: date ? date.slice(0, 10) : undefined,
    };
  });
  return uniqueIds(out);
}
