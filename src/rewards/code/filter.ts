import { ConfigError } from "../../util/errors.js";
import { extractCode } from "./extract.js";
import type { CodeRunnerPool } from "./pool.js";
import type { CodeRunLimits, CodeTest } from "./types.js";

/**
 * RL data curation for code (klear-spec §4): drop problems with fewer than `minTests` tests
 * (Klear: 16), then keep problems whose sampled reference solutions pass often enough (Klear: the
 * fraction of 16 DeepSeek-R1 completions passing every test > 0.5; the paper's figure says ≥ 0.5,
 * hence `inclusive`).
 */
export interface CodeProblem {
  tests: CodeTest[];
  fn_name?: string;
  starter_code?: string;
}

export function filterCodeProblemsByTestCount<T extends CodeProblem>(
  problems: readonly T[],
  minTests = 16,
): { kept: T[]; dropped: T[] } {
  const kept: T[] = [];
  const dropped: T[] = [];
  for (const p of problems) (Array.isArray(p.tests) && p.tests.length >= minTests ? kept : dropped).push(p);
  return { kept, dropped };
}

export interface SolutionFilterOptions<T> {
  pool: CodeRunnerPool;
  /** The sampled solutions (raw responses or bare code) for a problem. */
  solutionsOf: (problem: T) => readonly string[];
  /** Minimum fraction of solutions that must pass every test (default 0.5). */
  threshold?: number;
  /** Keep at exactly the threshold (≥) rather than strictly above (>). Default false (paper §3.2.1). */
  inclusive?: boolean;
  limits?: CodeRunLimits;
}

export interface SolutionFilterResult<T> {
  kept: T[];
  dropped: T[];
  /** Per input problem, the fraction of its solutions passing all tests. */
  passFractions: number[];
}

export async function filterCodeProblemsBySolutions<T extends CodeProblem>(
  problems: readonly T[],
  opts: SolutionFilterOptions<T>,
): Promise<SolutionFilterResult<T>> {
  const threshold = opts.threshold ?? 0.5;
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new ConfigError(`pass threshold must be in [0, 1], got ${threshold}`, "pass e.g. threshold: 0.5");
  }
  const passFractions = await Promise.all(
    problems.map(async (p) => {
      const sols = opts.solutionsOf(p);
      if (sols.length === 0) return 0;
      const results = await Promise.all(
        sols.map((s) => {
          const code = extractCode(s, { strict: false }) ?? (s.includes("```") ? null : s);
          if (code === null) return Promise.resolve(false);
          return opts.pool
            .run(code, p.tests, {
              ...opts.limits,
              fnName: p.fn_name,
              starterCode: p.starter_code,
              stopAtFirstFailure: true,
            })
            .then((r) => r.passed);
        }),
      );
      return results.filter(Boolean).length / sols.length;
    }),
  );
  const kept: T[] = [];
  const dropped: T[] = [];
  problems.forEach((p, k) => {
    const f = passFractions[k];
    (opts.inclusive ? f >= threshold : f > threshold) ? kept.push(p) : dropped.push(p);
  });
  return { kept, dropped, passFractions };
}
