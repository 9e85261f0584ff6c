import { type EvalReportInput, readEvalResults } from "./eval-report.js";
import type { RunReportEvalRow, RunReportInput, RunReportRun } from "./run-report.js";

/**
 * From run folders as the store reads them (see `loadRuns` in src/store/run-data.ts) to the report's plain
 * input. The shape is restated here rather than imported, so the report depends on no other module.
 */
export interface ReportSourceRun extends Omit<RunReportRun, "eval"> {
  /** Path of an eval run's results.json, when the folder is one. */
  evalResults: string | null;
}

export function evalRows(results: EvalReportInput): RunReportEvalRow[] {
  return results.benchmarks.map((b) => {
    const avg = b.metrics[`avg@${b.n}`];
    const last = b.passAtK[b.passAtK.length - 1];
    const maj = b.majAtK[b.majAtK.length - 1];
    return {
      benchmark: b.name,
      problems: b.problems,
      n: b.n,
      avg: avg?.value ?? Number.NaN,
      ci95: [avg?.ci95[0] ?? null, avg?.ci95[1] ?? null],
      passAt1: b.passAtK[0]?.estimate.value ?? null,
      passAtMax: last ? { k: last.k, value: last.estimate.value } : null,
      majAtN: maj ? maj.estimate.value : null,
    };
  });
}

export function reportInput(runs: readonly ReportSourceRun[], title?: string): RunReportInput {
  return {
    title,
    runs: runs.map(({ evalResults, ...run }) => ({
      ...run,
      eval: evalResults ? evalRows(readEvalResults(evalResults)) : undefined,
    })),
  };
}
