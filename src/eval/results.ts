import type { BenchmarkSpec, EvalProblem } from "../benchmarks/registry.js";
import type { EvalSamplingParams } from "./generator.js";
import { defaultKs, estimateMean, type MetricEstimate, majAtK, passAtK, quantileSorted } from "./metrics.js";
import type { StoredSample, StoredVerdict } from "./store.js";

/** One problem's row in results.json and the report's grid. */
export interface EvalProblemResult {
  id: string;
  difficulty?: string;
  subject?: string;
  gold?: string;
  /** Scored samples (n unless the run is incomplete). */
  n: number;
  correct: number;
  /** correct / n. */
  avg: number;
  /** Mean soft score (code: mean test pass rate). */
  meanScore: number;
  /** Majority-vote accuracy over all n samples (math). */
  maj: number | null;
  /** The most frequent extracted answer (math). */
  majAnswer: string | null;
  meanLength: number;
  /** Per sample, in order: "1" correct, "0" wrong; the report's grid draws it. */
  outcomes: string;
}

export interface EvalGroupResult {
  group: string;
  problems: number;
  avg: MetricEstimate;
}

export interface EvalLengthStats {
  /** "tokens" when the server reported completion tokens for every sample, else "chars". */
  unit: "tokens" | "chars";
  mean: number;
  median: number;
  p90: number;
  max: number;
  meanCorrect: number | null;
  meanIncorrect: number | null;
  /** Fraction of samples cut at the max-tokens limit (finish_reason "length"). */
  truncated: number;
  histogram: { edges: number[]; counts: number[] };
}

export interface EvalBenchResult {
  name: string;
  kind: "math" | "code";
  description: string;
  source: string[];
  /** Samples per problem asked for. */
  n: number;
  problems: number;
  samples: number;
  /** Samples asked for but not stored or not scored (failed requests): 0 in a complete run. */
  missingSamples: number;
  /** Headline figures by name: "avg@64", "pass@1", "pass@8", "maj@64", … */
  metrics: Record<string, MetricEstimate>;
  passAtK: { k: number; estimate: MetricEstimate }[];
  majAtK: { k: number; estimate: MetricEstimate }[];
  meanScore: number;
  breakdown: { difficulty: EvalGroupResult[]; subject: EvalGroupResult[] };
  lengths: EvalLengthStats;
  perProblem: EvalProblemResult[];
}

export interface EvalResults {
  format: "klear-eval/1";
  model: string;
  sampling: EvalSamplingParams;
  promptTemplate: string;
  seed: number;
  benchmarks: EvalBenchResult[];
}

export interface ComputeOptions {
  n: number;
  ks?: number[];
  bootstrap?: number;
  seed?: number;
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function histogram(values: number[], bins = 20): { edges: number[]; counts: number[] } {
  if (!values.length) return { edges: [], counts: [] };
  // A loop, not Math.max(...values): a spread of ~100k samples overflows the argument limit.
  let max = 0;
  for (const v of values) if (v > max) max = v;
  const width = Math.max(1, Math.ceil((max + 1) / bins));
  const edges = Array.from({ length: bins + 1 }, (_, i) => i * width);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(v / width))]++;
  return { edges, counts };
}

const meanOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

/**
 * Turns stored samples and verdicts into a benchmark's figures. Pure and deterministic: problems in
 * benchmark order, samples by index, bootstrap seeded from the run seed and the benchmark name.
 */
export function computeBenchResult(
  spec: BenchmarkSpec,
  problems: readonly EvalProblem[],
  source: string[],
  samples: readonly StoredSample[],
  verdicts: readonly StoredVerdict[],
  opts: ComputeOptions,
): EvalBenchResult {
  const n = opts.n;
  const seed = ((opts.seed ?? 0) ^ hashString(spec.name)) >>> 0;
  const resamples = opts.bootstrap ?? 1000;
  const verdictOf = new Map<string, StoredVerdict>();
  for (const v of verdicts) if (v.sampleIdx < n) verdictOf.set(`${v.problemId}\u0000${v.sampleIdx}`, v);
  const samplesOf = new Map<string, StoredSample[]>();
  for (const s of samples) {
    if (s.sampleIdx >= n || !verdictOf.has(`${s.problemId}\u0000${s.sampleIdx}`)) continue;
    let list = samplesOf.get(s.problemId);
    if (!list) samplesOf.set(s.problemId, (list = []));
    list.push(s);
  }
  const allTokens = samples.every((s) => s.completionTokens !== null);
  const lengthOf = (s: StoredSample) => (allTokens ? (s.completionTokens ?? 0) : [...s.response].length);

  const perProblem: EvalProblemResult[] = [];
  const scored: { p: EvalProblem; correct: boolean[]; answers: (string | null)[] }[] = [];
  const lengths: number[] = [];
  const lengthsCorrect: number[] = [];
  const lengthsWrong: number[] = [];
  let truncated = 0;
  let scoreSum = 0;
  let sampleCount = 0;
  for (const p of problems) {
    const list = (samplesOf.get(p.id) ?? []).sort((a, b) => a.sampleIdx - b.sampleIdx);
    const vs = list.map((s) => verdictOf.get(`${s.problemId}\u0000${s.sampleIdx}`)!);
    const correct = vs.map((v) => v.correct);
    const answers = vs.map((v) => v.extracted);
    const c = correct.filter(Boolean).length;
    const lens = list.map(lengthOf);
    list.forEach((s, i) => {
      lengths.push(lens[i]);
      (correct[i] ? lengthsCorrect : lengthsWrong).push(lens[i]);
      if (s.finishReason === "length") truncated++;
    });
    const meanScore = meanOf(vs.map((v) => v.score));
    scoreSum += vs.reduce((a, v) => a + v.score, 0);
    sampleCount += vs.length;
    let majAnswer: string | null = null;
    if (p.kind === "math") {
      const counts = new Map<string, number>();
      for (const a of answers) if (a !== null) counts.set(a, (counts.get(a) ?? 0) + 1);
      let best = 0;
      for (const [a, k] of counts) if (k > best) [best, majAnswer] = [k, a];
    }
    perProblem.push({
      id: p.id,
      difficulty: p.difficulty,
      subject: p.subject,
      gold: p.answer,
      n: list.length,
      correct: c,
      avg: list.length ? c / list.length : Number.NaN,
      meanScore: list.length ? meanScore : Number.NaN,
      maj: p.kind === "math" && list.length ? majAtK(answers, correct, list.length) : null,
      majAnswer,
      meanLength: meanOf(lens),
      outcomes: correct.map((x) => (x ? "1" : "0")).join(""),
    });
    if (list.length) scored.push({ p, correct, answers });
  }

  const minN = scored.reduce(
    (m, s) => Math.min(m, s.correct.length),
    scored.length ? Number.POSITIVE_INFINITY : 0,
  );
  const ks = (opts.ks ?? defaultKs(n)).filter((k) => k >= 1 && k <= minN);
  const passAt = ks.map((k) => ({
    k,
    estimate: estimateMean(
      scored.map((s) => passAtK(s.correct.length, s.correct.filter(Boolean).length, k)),
      resamples,
      seed + k,
    ),
  }));
  const majAt =
    spec.kind === "math"
      ? ks.map((k) => ({
          k,
          estimate: estimateMean(
            scored.map((s) => majAtK(s.answers, s.correct, k)),
            resamples,
            seed + 7919 * k,
          ),
        }))
      : [];
  const avg = estimateMean(
    scored.map((s) => s.correct.filter(Boolean).length / s.correct.length),
    resamples,
    seed,
  );
  const metrics: Record<string, MetricEstimate> = { [`avg@${n}`]: avg };
  for (const { k, estimate } of passAt) metrics[`pass@${k}`] = estimate;
  for (const { k, estimate } of majAt) if (k === minN || k === n) metrics[`maj@${k}`] = estimate;

  const groupBy = (key: "difficulty" | "subject"): EvalGroupResult[] => {
    const groups = new Map<string, number[]>();
    for (const s of scored) {
      const g = s.p[key];
      if (g === undefined) continue;
      let list = groups.get(g);
      if (!list) groups.set(g, (list = []));
      list.push(s.correct.filter(Boolean).length / s.correct.length);
    }
    return [...groups.entries()]
      .sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }))
      .map(([group, xs]) => ({
        group,
        problems: xs.length,
        avg: estimateMean(xs, resamples, seed ^ hashString(group)),
      }));
  };

  const sorted = [...lengths].sort((a, b) => a - b);
  return {
    name: spec.name,
    kind: spec.kind,
    description: spec.description,
    source,
    n,
    problems: problems.length,
    samples: sampleCount,
    missingSamples: problems.length * n - sampleCount,
    metrics,
    passAtK: passAt,
    majAtK: majAt,
    meanScore: sampleCount ? scoreSum / sampleCount : Number.NaN,
    breakdown: { difficulty: groupBy("difficulty"), subject: groupBy("subject") },
    lengths: {
      unit: allTokens ? "tokens" : "chars",
      mean: meanOf(lengths),
      median: quantileSorted(sorted, 0.5),
      p90: quantileSorted(sorted, 0.9),
      max: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
      meanCorrect: lengthsCorrect.length ? meanOf(lengthsCorrect) : null,
      meanIncorrect: lengthsWrong.length ? meanOf(lengthsWrong) : null,
      truncated: sampleCount ? truncated / sampleCount : 0,
      histogram: histogram(lengths),
    },
    perProblem,
  };
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : "—");

/** The terminal summary: one row per benchmark with avg@n ± CI, pass@k and maj@k. */
export function formatResultsTable(results: EvalResults): string {
  const rows: string[][] = [
    ["benchmark", "problems", "n", "avg@n", "95% CI", "pass@1", "pass@max", "maj@n", "len", "missing"],
  ];
  for (const b of results.benchmarks) {
    const avg = b.metrics[`avg@${b.n}`];
    const last = b.passAtK[b.passAtK.length - 1];
    const maj = b.majAtK[b.majAtK.length - 1];
    rows.push([
      b.name,
      String(b.problems),
      String(b.n),
      pct(avg.value),
      `${pct(avg.ci95[0])}–${pct(avg.ci95[1])}`,
      b.passAtK[0] ? pct(b.passAtK[0].estimate.value) : "—",
      last ? `${pct(last.estimate.value)} (k=${last.k})` : "—",
      maj ? pct(maj.estimate.value) : "—",
      Number.isFinite(b.lengths.mean) ? `${Math.round(b.lengths.mean)} ${b.lengths.unit}` : "—",
      String(b.missingSamples),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ");
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}
