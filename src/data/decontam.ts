import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  type BenchmarkSpec,
  benchmarkNames,
  findLocalBenchmarkFile,
  getBenchmark,
  loadBenchmark,
} from "../benchmarks/registry.js";
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

/** Names the eval registry may lack, mapped to local file names (used only as a fallback). */
const LOCAL_BENCHMARK_FILES: Record<string, string> = {
  livecodebench: "lcb_v5_public_tests.json",
};

/**
 * The benchmark names decontam knows: the eval registry's own (`klear eval --bench` takes the same names;
 * its aliases, e.g. lcb_v6 or hmmt25, work too and are reported under the registry name).
 */
export const KNOWN_DECONTAM_BENCHMARKS = benchmarkNames();

/** `--bench all`: the benchmarks klear evaluates on (spec §10), whose problems training must not see. */
export const DEFAULT_DECONTAM_BENCHMARKS = [
  "aime24",
  "aime25",
  "hmmt_feb_2025",
  "math500",
  "amc23",
  "livecodebench_v5",
];

/** A registry name or alias as the registry names it (`lcb_v6` → `livecodebench_v6`); files pass through. */
function canonicalName(spec: string): string {
  try {
    return getBenchmark(spec).name;
  } catch {
    return spec;
  }
}

/**
 * Expands "all" to {@link DEFAULT_DECONTAM_BENCHMARKS} and aliases to registry names, keeping order and
 * dropping repeats.
 */
export function expandBenchmarkSpecs(specs: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of specs
    .flatMap((x) => (x === "all" ? DEFAULT_DECONTAM_BENCHMARKS : [x]))
    .map(canonicalName)) {
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

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
  const fromRegistry = await loadFromEvalRegistry(spec, benchmarkDir);
  if (fromRegistry) return fromRegistry;
  const local = LOCAL_BENCHMARK_FILES[spec];
  if (local && existsSync(join(benchmarkDir, local))) return textsFromFile(spec, join(benchmarkDir, local));
  throw new ConfigError(
    `unknown benchmark "${spec}"`,
    `use a benchmark file path or one of: ${KNOWN_DECONTAM_BENCHMARKS.join(", ")} (local copies are read from ${benchmarkDir}; set KLEAR_BENCHMARK_DIR or --bench-dir)`,
  );
}

/**
 * The eval module's registry knows every benchmark's file formats and date windows; its problem
 * statements (LiveCodeBench: the bare statement, without the prompt boilerplate that every code
 * prompt shares) are what training prompts must not overlap.
 */
async function loadFromEvalRegistry(name: string, benchmarkDir: string): Promise<BenchmarkText[] | null> {
  let spec: BenchmarkSpec;
  try {
    spec = getBenchmark(name);
  } catch {
    return null;
  }
  // A benchmark the local folder lacks (e.g. LiveCodeBench v6) comes from the hub cache, whose error
  // says where to get it, naming --bench-dir, the flag that takes a local copy here.
  const local = existsSync(benchmarkDir) ? findLocalBenchmarkFile(spec, benchmarkDir) : null;
  const localCopyHint = `--bench-dir DIR (a folder holding ${spec.localFiles.join(" or ")})`;
  const loaded = await loadBenchmark(spec.name, { ...(local ? { data: local } : {}), localCopyHint });
  return loaded.problems.map((p) => ({ benchmark: spec.name, id: p.id, text: p.question }));
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
