/**
 * The `klear data` commands (dedup, decontam, convert, select, tag, stats): each decides per row and runs on
 * the one streaming loop of filter-rows.ts, which writes the output, its reports and its manifest.
 */
import { dirname } from "node:path";
import { extractMathAnswer } from "../rewards/math/index.js";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { mapConcurrent } from "../util/concurrency.js";
import { ConfigError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { expandBenchmarkSpecs, loadDecontamBenchmark, NgramDecontaminator } from "./decontam.js";
import { Deduplicator, type DeduplicatorOptions } from "./dedup.js";
import { type Decision, filterRows, hashInputs, type PipelineCommonOptions } from "./filter-rows.js";
import { type MalformedRow, readDataRows } from "./io.js";
import {
  checkDataRow,
  convertRow,
  type RowFormat,
  rowAnswer,
  rowPromptText,
  rowResponseText,
  rowSource,
  type ToVerlOptions,
} from "./rows.js";
import {
  hashedNgramVector,
  kCenterGreedy,
  mixQuotas,
  SelectionSampler,
  type SourceScore,
  SourceScoreAccumulator,
  type SourceScoreRule,
  topKSources,
} from "./select.js";
import { DataStatsAccumulator, formatStatsHtml, formatStatsText } from "./stats.js";
import {
  codeTestCount,
  type DifficultyThresholds,
  type ResponseSampler,
  type ResponseScorer,
  type RlFilterOptions,
  rlFilter,
  tagDifficulty,
} from "./tag.js";
import { approxTokenCount } from "./text.js";

export { type DataManifest, type PipelineCommonOptions, sidecarPaths } from "./filter-rows.js";

/**
 * A chat (SFT) row has no answer field, but its last assistant turn ends with a boxed one: an RL row needs it
 * as ground truth, and the verifier's own extraction reads it, so the RL reward checks exactly the
 * answer the SFT response gives.
 */
function withAnswerFromResponse(row: Record<string, unknown>): Record<string, unknown> {
  if (rowAnswer(row) !== undefined) return row;
  const response = rowResponseText(row);
  // Only a boxed final answer counts: without one, a code or prose reply would yield a stray expression.
  if (!response || !/\\(?:boxed|fbox)\s*\{/.test(response)) return row;
  const { answer } = extractMathAnswer(response);
  return answer === null ? row : { ...row, answer };
}

export interface DedupRunOptions extends PipelineCommonOptions, DeduplicatorOptions {}

/** `klear data dedup`: exact and MinHash-LSH near-duplicate removal over the prompts, first occurrence kept. */
export async function runDedup(inputs: readonly string[], output: string, opts: DedupRunOptions = {}) {
  const dedup = new Deduplicator(opts);
  const params = {
    exact: dedup.exact,
    near: dedup.near,
    ...(dedup.lsh ? dedup.lsh.options : {}),
    textField: opts.textField ?? null,
  };
  return filterRows("klear data dedup", inputs, output, params, opts, async (recs) =>
    recs.map((rec): Decision => {
      const v = dedup.check(rowPromptText(rec.value, opts.textField) ?? "", rec);
      if (!v) return { keep: true };
      return {
        keep: false,
        rule: v.rule,
        detail: { duplicateOf: v.duplicateOf, ...(v.jaccard !== undefined ? { jaccard: v.jaccard } : {}) },
      };
    }),
  );
}

export interface DecontamRunOptions extends PipelineCommonOptions {
  /** Benchmark names (registry) or files. */
  benchmarks: string[];
  /** n-gram size (default 9, as the paper). */
  n?: number;
  benchmarkDir?: string;
}

/** `klear data decontam`: removes every row whose prompt shares an n-gram with a benchmark problem. */
export async function runDecontam(inputs: readonly string[], output: string, opts: DecontamRunOptions) {
  if (opts.benchmarks.length === 0) {
    throw new ConfigError(
      "decontam: no benchmarks given",
      "pass --bench NAME_OR_FILE (repeatable), e.g. --bench aime24",
    );
  }
  const texts = [];
  const loaded: Record<string, number> = {};
  for (const b of expandBenchmarkSpecs(opts.benchmarks)) {
    const items = await loadDecontamBenchmark(b, opts.benchmarkDir);
    loaded[b] = items.length;
    texts.push(...items);
  }
  const deco = new NgramDecontaminator(texts, opts.n ?? 9);
  const params = {
    n: deco.n,
    benchmarks: loaded,
    benchmarkNgrams: deco.ngramCount,
    textField: opts.textField ?? null,
  };
  return filterRows("klear data decontam", inputs, output, params, opts, async (recs) =>
    recs.map((rec): Decision => {
      const hit = deco.check(rowPromptText(rec.value, opts.textField) ?? "");
      return hit ? { keep: false, rule: `ngram-${deco.n}`, detail: { ...hit } } : { keep: true };
    }),
  );
}

export interface ConvertRunOptions extends PipelineCommonOptions, ToVerlOptions {
  to?: RowFormat;
}

/** `klear data convert`: jsonl ↔ parquet, and row formats (verl RL rows, chat rows, problem rows). */
export async function runConvert(inputs: readonly string[], output: string, opts: ConvertRunOptions = {}) {
  const to = opts.to ?? "same";
  let index = 0;
  const params = {
    to,
    dataSource: opts.dataSource ?? null,
    ability: opts.ability ?? null,
    split: opts.split ?? null,
  };
  return filterRows(
    "klear data convert",
    inputs,
    output,
    params,
    { ...opts, checkRows: to !== "same" },
    async (recs) =>
      recs.map((rec): Decision => {
        if (to === "same") return { keep: true };
        try {
          const verlOpts = opts.split !== undefined ? { ...opts, index: index++ } : opts;
          const row = to === "verl" ? withAnswerFromResponse(rec.value) : rec.value;
          return { keep: true, row: convertRow(row, to, verlOpts) };
        } catch (e) {
          return {
            keep: false,
            rule: "unconvertible",
            detail: { error: (e as Error).message.split("\n")[0] },
          };
        }
      }),
  );
}

export interface SelectRunOptions extends PipelineCommonOptions {
  /** Given quality scores per source (higher is better); computed by `scoreRule` when absent. */
  sourceScores?: Record<string, number>;
  scoreRule?: SourceScoreRule;
  /** Keep only the K best sources. */
  topKSources?: number;
  /** Mix sources by these ratios (normalised), up to `total` rows. */
  ratios?: Record<string, number>;
  total?: number;
  /** Pick this many rows by K-Center Greedy over hashed n-gram vectors. */
  kCenter?: number;
  vectorDim?: number;
  seed?: number;
  sourceField?: string;
}

/**
 * `klear data select`: rank sources and keep the top K, mix by ratios, then optionally pick a
 * diverse subset by K-Center Greedy. Streams the inputs two or three times instead of holding rows.
 */
export async function runSelect(inputs: readonly string[], output: string, opts: SelectRunOptions) {
  const acc = new SourceScoreAccumulator();
  for (const input of inputs) {
    for await (const rec of readDataRows(input)) {
      if (checkDataRow(rec.value, opts)) continue;
      const response = rowResponseText(rec.value);
      const extra = rec.value.extra_info as Record<string, unknown> | undefined;
      const difficulty = rec.value.difficulty ?? extra?.difficulty;
      acc.add(rowSource(rec.value, opts.sourceField), {
        difficulty: typeof difficulty === "string" ? difficulty : undefined,
        responseTokens: response === undefined ? 0 : approxTokenCount(response),
      });
    }
  }
  const counts = acc.counts();
  const scores: SourceScore[] = opts.sourceScores
    ? [...counts.keys()].map((source) => ({
        source,
        score: opts.sourceScores?.[source] ?? Number.NEGATIVE_INFINITY,
      }))
    : acc.scores(opts.scoreRule ?? "hard-fraction");
  let chosen = new Set(counts.keys());
  if (opts.topKSources !== undefined) chosen = new Set(topKSources(scores, opts.topKSources));
  let quotas: Map<string, number> | null = null;
  if (opts.ratios) {
    const ratios = Object.fromEntries(Object.entries(opts.ratios).filter(([s]) => chosen.has(s)));
    quotas = mixQuotas(counts, ratios, opts.total ?? Number.POSITIVE_INFINITY);
  } else if (opts.total !== undefined) {
    const avail = new Map([...counts].filter(([s]) => chosen.has(s)));
    const sum = [...avail.values()].reduce((a, b) => a + b, 0);
    quotas = mixQuotas(
      avail,
      Object.fromEntries([...avail].map(([s, c]) => [s, c / Math.max(1, sum)])),
      opts.total,
    );
  }
  const rng = new Rng(opts.seed ?? 0);
  const samplers = new Map<string, SelectionSampler>();
  if (quotas)
    for (const [s, q] of quotas) samplers.set(s, new SelectionSampler(q, counts.get(s) ?? 0, rng.fork()));
  const passes = (source: string): boolean => {
    if (!chosen.has(source)) return false;
    if (!quotas) return true;
    return samplers.get(source)?.take() ?? false;
  };
  // K-Center needs every candidate's vector at once; only the vectors and row positions are held.
  let kCenterKeep: Set<string> | null = null;
  if (opts.kCenter !== undefined) {
    const vectors: Float32Array[] = [];
    const keys: string[] = [];
    for (const input of inputs) {
      for await (const rec of readDataRows(input)) {
        if (checkDataRow(rec.value, opts)) continue;
        if (!passes(rowSource(rec.value, opts.sourceField))) continue;
        vectors.push(
          hashedNgramVector(rowPromptText(rec.value, opts.textField) ?? "", opts.vectorDim ?? 256),
        );
        keys.push(`${rec.file}:${rec.line}`);
      }
    }
    kCenterKeep = new Set(kCenterGreedy(vectors, opts.kCenter, { seed: opts.seed }).map((i) => keys[i]));
  }
  // Re-seed so the final pass repeats the sampling decisions of the K-Center pass exactly.
  const rng2 = new Rng(opts.seed ?? 0);
  samplers.clear();
  if (quotas)
    for (const [s, q] of quotas) samplers.set(s, new SelectionSampler(q, counts.get(s) ?? 0, rng2.fork()));
  const params = {
    scores: Object.fromEntries(scores.map((s) => [s.source, s.score])),
    scoreRule: opts.sourceScores ? "given" : (opts.scoreRule ?? "hard-fraction"),
    topKSources: opts.topKSources ?? null,
    chosenSources: [...chosen],
    quotas: quotas ? Object.fromEntries(quotas) : null,
    kCenter: opts.kCenter ?? null,
    vectorDim: opts.vectorDim ?? 256,
    seed: opts.seed ?? 0,
  };
  return filterRows("klear data select", inputs, output, params, opts, async (recs) =>
    recs.map((rec): Decision => {
      const source = rowSource(rec.value, opts.sourceField);
      if (!chosen.has(source)) return { keep: false, rule: "source-not-top-k", detail: { source } };
      if (!passes(source)) return { keep: false, rule: "mix-quota", detail: { source } };
      if (kCenterKeep && !kCenterKeep.has(`${rec.file}:${rec.line}`)) {
        return { keep: false, rule: "k-center", detail: { source } };
      }
      return { keep: true };
    }),
  );
}

export interface TagRunOptions extends PipelineCommonOptions, DifficultyThresholds, RlFilterOptions {
  sampler: ResponseSampler;
  /** Scorer per ability ("math", "code"); rows of other abilities are scored as math. */
  scorers: Partial<Record<string, ResponseScorer>>;
  /** Samples per prompt (paper: 16). */
  n?: number;
  /** Prompts in flight at once. */
  concurrency?: number;
  /** Apply the paper's RL filters (math majority; code ≥16 tests and pass rate ≥ 0.5). */
  rlFilter?: boolean;
}

/** `klear data tag`: difficulty tags (and optionally the RL filters) from sampled responses. */
export async function runTag(inputs: readonly string[], output: string, opts: TagRunOptions) {
  const params = {
    n: opts.n ?? 16,
    easyAtLeast: opts.easyAtLeast ?? 0.75,
    hardBelow: opts.hardBelow ?? 0.25,
    rlFilter: opts.rlFilter ?? false,
    mathMajority: opts.mathMajority ?? "more-than-half",
    codeMinTests: opts.codeMinTests ?? 16,
    codeMinPassRate: opts.codeMinPassRate ?? 0.5,
    concurrency: opts.concurrency ?? 8,
  };
  return filterRows(
    "klear data tag",
    inputs,
    output,
    params,
    { ...opts, batchSize: Math.max(1, (opts.concurrency ?? 8) * 4) },
    async (recs) =>
      mapConcurrent(recs, opts.concurrency ?? 8, async (rec): Promise<Decision> => {
        const ability = String(rec.value.ability ?? "math").toLowerCase();
        const scorer = opts.scorers[ability] ?? opts.scorers.math;
        if (!scorer) {
          return { keep: false, rule: "no-scorer", detail: { ability } };
        }
        // The test-count rule needs no samples: skip the model calls for problems it drops anyway.
        if (opts.rlFilter && ability === "code" && codeTestCount(rec.value) < (opts.codeMinTests ?? 16)) {
          return { keep: false, rule: "code-too-few-tests", detail: { tests: codeTestCount(rec.value) } };
        }
        let result: Awaited<ReturnType<typeof tagDifficulty>>;
        try {
          result = await tagDifficulty(rec.value, opts.sampler, scorer, opts);
        } catch (e) {
          // One failed prompt (endpoint gave up after its retries, tests the sandbox cannot run) is
          // reported and the run goes on; rerun the removed rows later rather than lose hours of tagging.
          return { keep: false, rule: "tag-error", detail: { error: (e as Error).message.split("\n")[0] } };
        }
        const row = {
          ...rec.value,
          difficulty: result.difficulty,
          pass_rate: result.passRate,
          passes: result.passes,
          samples: result.samples,
        };
        if (opts.rlFilter) {
          const f = rlFilter(rec.value, result, opts);
          if (!f.keep) {
            return { keep: false, rule: f.reason ?? "rl-filter", detail: { ...result } };
          }
        }
        return { keep: true, row };
      }),
  );
}

export interface StatsRunOptions extends PipelineCommonOptions {
  /** Write an HTML page here. */
  html?: string;
  /** Write the statistics as JSON here. */
  json?: string;
  /** Count tokens with this tokenizer (a model folder or its tokenizer.json) instead of the approximation. */
  tokenizer?: string;
  sourceField?: string;
}

/** `klear data stats`: per-source counts, token-length distributions, difficulty histogram. */
export async function runStats(inputs: readonly string[], opts: StatsRunOptions = {}) {
  let countTokens = approxTokenCount;
  let unit = "approx. tokens";
  if (opts.tokenizer) {
    // The model module's loader: the same token counts the SFT packer and the trainer will see.
    const { loadTokenizer } = await import("../model/tokenizer.js");
    const folder = opts.tokenizer.endsWith(".json") ? dirname(opts.tokenizer) : opts.tokenizer;
    const tok = await loadTokenizer(folder);
    countTokens = (t: string) => tok.encode(t, { addSpecialTokens: false }).length;
    unit = "tokens";
  }
  const stats = new DataStatsAccumulator(countTokens, opts.sourceField);
  const byReason: Record<string, number> = {};
  const examples: MalformedRow[] = [];
  const note = (m: MalformedRow) => {
    byReason[m.reason] = (byReason[m.reason] ?? 0) + 1;
    if (examples.length < 20) examples.push(m);
  };
  for (const input of inputs) {
    for await (const rec of readDataRows(input, { onMalformed: note })) {
      const bad = checkDataRow(rec.value, opts);
      if (bad) note({ file: rec.file, line: rec.line, ...bad });
      else stats.add(rec.value);
    }
  }
  const text = formatStatsText(stats, unit);
  const inputsHashed = await hashInputs(inputs);
  const manifest = {
    command: "klear data stats",
    createdAt: new Date().toISOString(),
    parameters: { tokenizer: opts.tokenizer ?? null, tokenUnit: unit },
    inputs: inputsHashed,
    malformed: { byReason, examples },
  };
  if (opts.html) {
    const { atomicWriteFileSync } = await import("../util/atomic.js");
    atomicWriteFileSync(opts.html, formatStatsHtml(stats, "klear data stats", unit));
    atomicWriteJsonSync(`${opts.html}.manifest.json`, manifest);
  }
  if (opts.json) {
    atomicWriteJsonSync(opts.json, { ...stats.toJSON(), malformed: manifest.malformed });
    atomicWriteJsonSync(`${opts.json}.manifest.json`, manifest);
  }
  return { stats, text, malformed: { byReason, examples } };
}
