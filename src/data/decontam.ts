import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ConfigError, KlearError } from "../util/errors.js";
import { readDataRows } from "./io.js";
import { rowPromptText } from "./rows.js";
import { ngramHashes53, normalizedWords, wordHashes } from "./text.js";

/** One benchmark problem whose n-grams no training prompt may share. */
export interface BenchmarkText {
  benchmark: string;
  id: string;
  text: string;
}

export interface ContaminationHit {
  benchmark: string;
  benchmarkId: string;
  /** The overlapping n-gram, as normalised words of the training row. */
  ngram: string;
}

/**
 * Local copies of the public benchmarks, by the names the eval registry uses. LiveCodeBench maps to
 * the bare statements (the public-tests file), because its generation prompts share a long
 * instruction boilerplate with every code prompt built the same way.
 */
const LOCAL_BENCHMARK_FILES: Record<string, string> = {
  aime24: "aime24.jsonl",
  aime25: "aime25.jsonl",
  hmmt25: "hmmt_feb_2025.jsonl",
  hmmt_feb_2025: "hmmt_feb_2025.jsonl",
  math500: "math500.jsonl",
  amc23: "amc23.jsonl",
  gsm8k: "gsm8k_test.jsonl",
  lcb_v5: "lcb_v5_public_tests.json",
  livecodebench: "lcb_v5_public_tests.json",
};

export const KNOWN_DECONTAM_BENCHMARKS = Object.keys(LOCAL_BENCHMARK_FILES);

/** Where local benchmark copies live: $KLEAR_BENCHMARK_DIR, else ../shared/data/benchmarks. */
export function defaultBenchmarkDir(): string {
  return process.env.KLEAR_BENCHMARK_DIR ?? resolve("../shared/data/benchmarks");
}

function itemId(row: Record<string, unknown>, index: number): string {
  const meta = row.meta as Record<string, unknown> | undefined;
  const v = row.unique_id ?? row.id ?? row.question_id ?? meta?.unique_id ?? row.global_id;
  return v === undefined || v === null ? String(index) : String(v);
}

function textsFromRows(benchmark: string, rows: Record<string, unknown>[]): BenchmarkText[] {
  const out: BenchmarkText[] = [];
  rows.forEach((row, i) => {
    const text = rowPromptText(row);
    if (text !== null && text.trim() !== "") out.push({ benchmark, id: itemId(row, i), text });
  });
  return out;
}

async function textsFromFile(benchmark: string, path: string): Promise<BenchmarkText[]> {
  if (path.endsWith(".json")) {
    const parsed = JSON.parse(await readFile(path, "utf8")) as unknown;
    if (!Array.isArray(parsed)) {
      throw new KlearError(
        "BENCHMARK_INVALID",
        `${path}: expected a JSON array of problems`,
        "give a .jsonl file or a JSON array",
      );
    }
    return textsFromRows(benchmark, parsed as Record<string, unknown>[]);
  }
  const rows: Record<string, unknown>[] = [];
  for await (const r of readDataRows(path)) rows.push(r.value);
  return textsFromRows(benchmark, rows);
}

/**
 * Loads benchmark problems by registry name (`aime24`, `math500`, ...) or by file path (jsonl,
 * parquet or a JSON array). A name is resolved through the eval module's registry when it provides
 * `loadBenchmark`, else from the local copies in `benchmarkDir`.
 */
export async function loadDecontamBenchmark(
  spec: string,
  benchmarkDir = defaultBenchmarkDir(),
): Promise<BenchmarkText[]> {
  if (existsSync(spec) || /[/\\.]/.test(spec)) {
    if (!existsSync(spec)) {
      throw new ConfigError(
        `benchmark file ${spec} does not exist`,
        "check the path, or give a benchmark name",
      );
    }
    const name = spec
      .split("/")
      .pop()!
      .replace(/\.(jsonl|json|parquet)$/, "");
    return textsFromFile(name, spec);
  }
  const local = LOCAL_BENCHMARK_FILES[spec];
  if (local && existsSync(join(benchmarkDir, local))) return textsFromFile(spec, join(benchmarkDir, local));
  const fromRegistry = await loadFromEvalRegistry(spec);
  if (fromRegistry) return fromRegistry;
  throw new ConfigError(
    `unknown benchmark "${spec}" (or its file is missing from ${benchmarkDir})`,
    `use a benchmark file path or one of: ${KNOWN_DECONTAM_BENCHMARKS.join(", ")} (set KLEAR_BENCHMARK_DIR to their folder)`,
  );
}

async function loadFromEvalRegistry(name: string): Promise<BenchmarkText[] | null> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import("../eval/index.js")) as Record<string, unknown>;
  } catch {
    return null;
  }
  const load = mod.loadBenchmark;
  if (typeof load !== "function") return null;
  try {
    const loaded = (await (load as (n: string) => Promise<unknown>)(name)) as unknown;
    const items = Array.isArray(loaded)
      ? loaded
      : ((loaded as { items?: unknown[]; problems?: unknown[] }).items ??
        (loaded as { problems?: unknown[] }).problems);
    if (!Array.isArray(items)) return null;
    return textsFromRows(name, items as Record<string, unknown>[]);
  } catch {
    return null;
  }
}

/**
 * n-gram decontamination (the paper's 9-gram rule over normalised words): a training prompt that
 * shares any `n`-word window with a benchmark problem is removed, and the shared window is reported.
 */
export class NgramDecontaminator {
  readonly n: number;
  private readonly index = new Map<number, number>();
  private readonly items: BenchmarkText[] = [];

  constructor(benchmarks: readonly BenchmarkText[], n = 9) {
    if (!Number.isInteger(n) || n < 1) {
      throw new ConfigError(`n-gram size ${n} is invalid`, "use a positive integer (the paper uses 9)");
    }
    this.n = n;
    for (const item of benchmarks) this.add(item);
  }

  add(item: BenchmarkText): void {
    const idx = this.items.length;
    this.items.push(item);
    for (const h of ngramHashes53(wordHashes(normalizedWords(item.text)), this.n)) {
      if (!this.index.has(h)) this.index.set(h, idx);
    }
  }

  get ngramCount(): number {
    return this.index.size;
  }

  get benchmarkCount(): number {
    return this.items.length;
  }

  /** The first benchmark n-gram the text contains, or null when it is clean. */
  check(text: string): ContaminationHit | null {
    const words = normalizedWords(text);
    if (words.length < this.n) return null;
    const hashes = ngramHashes53(wordHashes(words), this.n);
    for (let i = 0; i < hashes.length; i++) {
      const idx = this.index.get(hashes[i]);
      if (idx !== undefined) {
        const item = this.items[idx];
        return {
          benchmark: item.benchmark,
          benchmarkId: item.id,
          ngram: words.slice(i, i + this.n).join(" "),
        };
      }
    }
    return null;
  }
}
