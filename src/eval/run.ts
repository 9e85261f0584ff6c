import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EvalProblem, LoadedBenchmark } from "../benchmarks/registry.js";
import { renderEvalReport } from "../report/eval-report.js";
import { rowPromptText, rowResponseText } from "../rows/fields.js";
import { readRows } from "../rows/read.js";
import { atomicWriteFile } from "../util/atomic.js";
import { createTaskQueue } from "../util/concurrency.js";
import { ConfigError, KlearError } from "../util/errors.js";
import { createProgress, type ProgressOptions } from "../util/progress.js";
import {
  DEFAULT_EVAL_SAMPLING,
  type EvalGenerator,
  type EvalGenRequest,
  type EvalSamplingParams,
} from "./generator.js";
import { buildMessages, checkPromptTemplate } from "./prompts.js";
import { computeBenchResult, type EvalResults } from "./results.js";
import type { EvalScorer } from "./scoring.js";
import { EvalStore, sampleKey } from "./store.js";

export interface EvaluateOptions {
  benchmarks: LoadedBenchmark[];
  /** Absent for offline scoring: every sample must already be in the store (see importResponses). */
  generator?: EvalGenerator;
  scorer: EvalScorer;
  /** Run folder: results.sqlite, results.json, report.html. */
  outDir: string;
  /** Samples per problem; default each benchmark's protocol (64 AIME/HMMT, 8 LiveCodeBench). */
  n?: number;
  sampling?: Partial<EvalSamplingParams>;
  /** Math prompt style: "r1" (default), "raw", or a template with {problem}. */
  promptTemplate?: string;
  /** Run seed: per-sample seeds derive from it, and the bootstrap uses it. */
  seed?: number;
  model?: string;
  ks?: number[];
  bootstrap?: number;
  /** Responses scored at once (code runs in the sandbox pool; default 8). */
  scoreConcurrency?: number;
  progress?: ProgressOptions;
  /** Writes report.html too (default true); the report module is loaded lazily. */
  writeReport?: boolean;
}

export interface EvaluateOutcome {
  results: EvalResults;
  /** Requests that failed for good in this invocation; rerunning retries only those. */
  failed: number;
  /** Samples generated (not resumed) in this invocation. */
  generated: number;
  resultsPath: string;
  reportPath: string | null;
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** The sample's own seed: fixed by (run seed, benchmark, problem, index), so a resumed run asks the same. */
export function sampleSeed(seed: number, bench: string, problemId: string, sampleIdx: number): number {
  return (hashString(`${seed}\u0000${bench}\u0000${problemId}\u0000${sampleIdx}`) & 0x7fffffff) >>> 0;
}

/**
 * One eval process per run folder: two at once would each ask for the same missing samples. The lock
 * file holds the owner's pid; a lock left by a killed run (its pid gone) is taken over.
 */
export function lockRunDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, ".lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: "wx" });
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number(readFileSync(path, "utf8"));
      let alive = false;
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (err) {
          alive = (err as NodeJS.ErrnoException).code === "EPERM";
        }
      }
      if (alive) {
        throw new KlearError(
          "RUN_DIR_BUSY",
          `another klear eval (pid ${pid}) is running in ${dir}`,
          "wait for it to finish, or use another --out",
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new KlearError("RUN_DIR_BUSY", `cannot lock ${path}`, "remove the file if no eval is running there");
}

/**
 * Settings that must match between a run and its resumption: a different model or sampling setup
 * would silently mix two experiments in one table.
 */
function runFingerprint(o: {
  model: string;
  sampling: EvalSamplingParams;
  promptTemplate: string;
  seed: number;
}): string {
  return JSON.stringify(o);
}

/**
 * Runs (or resumes) an evaluation: generates the missing samples, stores each as it arrives, scores
 * it, and writes results.json (and report.html) from the store. Rerunning the same command after a
 * crash asks only for what is missing; the figures come from the store alone, so they are identical
 * to an uninterrupted run's.
 */
export async function evaluate(opts: EvaluateOptions): Promise<EvaluateOutcome> {
  const sampling: EvalSamplingParams = { ...DEFAULT_EVAL_SAMPLING, ...(opts.sampling ?? {}) };
  const promptTemplate = opts.promptTemplate ?? "r1";
  checkPromptTemplate(promptTemplate);
  const seed = opts.seed ?? 0;
  const model = opts.model ?? "unknown";
  const releaseLock = lockRunDir(opts.outDir);
  const store = new EvalStore(join(opts.outDir, "results.sqlite"));
  try {
    const fingerprint = runFingerprint({ model, sampling, promptTemplate, seed });
    const stored = store.getMeta("fingerprint");
    if (stored !== null && stored !== fingerprint && opts.generator) {
      throw new ConfigError(
        `${opts.outDir} holds a run with other settings: ${stored} (now ${fingerprint})`,
        "rerun with the same model, sampling, prompt template and seed to resume, or use a new --out",
      );
    }
    if (stored === null) store.setMeta("fingerprint", fingerprint);

    const nOf = (b: LoadedBenchmark) => opts.n ?? b.spec.defaultN;
    const byBench = new Map(
      opts.benchmarks.map((b) => [b.spec.name, new Map(b.problems.map((p) => [p.id, p]))]),
    );
    const pending: { bench: string; problem: EvalProblem; sampleIdx: number }[] = [];
    let unscoredTotal = 0;
    for (const b of opts.benchmarks) {
      unscoredTotal += store.unscored(b.spec.name).length;
      if (!opts.generator) continue;
      const have = store.sampleKeys(b.spec.name);
      for (const p of b.problems) {
        for (let i = 0; i < nOf(b); i++) {
          if (!have.has(sampleKey(p.id, i))) pending.push({ bench: b.spec.name, problem: p, sampleIdx: i });
        }
      }
    }

    const progress = createProgress("eval", pending.length + unscoredTotal, {
      unit: "samples",
      ...opts.progress,
    });
    const scoring = createTaskQueue(opts.scoreConcurrency ?? 8);
    let correctSoFar = 0;
    let scoredSoFar = 0;
    const scoreOne = (bench: string, problem: EvalProblem, sampleIdx: number, response: string) =>
      scoring.push(async () => {
        const v = await opts.scorer.score(problem, response);
        store.addVerdict({ bench, problemId: problem.id, sampleIdx, ...v });
        scoredSoFar++;
        if (v.correct) correctSoFar++;
        progress.tick(1, { acc: (correctSoFar / scoredSoFar).toFixed(3) });
      });

    // Samples stored by a run that died before scoring them.
    for (const b of opts.benchmarks) {
      const problems = byBench.get(b.spec.name)!;
      for (const s of store.unscored(b.spec.name)) {
        const p = problems.get(s.problemId);
        if (p) scoreOne(b.spec.name, p, s.sampleIdx, s.response);
        else progress.tick(1);
      }
    }

    let failed = 0;
    let generated = 0;
    if (opts.generator && pending.length) {
      const requests: EvalGenRequest[] = pending.map((x) => ({
        messages: buildMessages(x.problem, promptTemplate),
        seed: sampleSeed(seed, x.bench, x.problem.id, x.sampleIdx),
      }));
      await opts.generator.generate(requests, sampling, (i, r) => {
        const x = pending[i];
        if (r instanceof Error) {
          failed++;
          store.addFailure(x.bench, x.problem.id, x.sampleIdx, r.message);
          progress.tick(1, { failed });
          return;
        }
        store.addSample({
          bench: x.bench,
          problemId: x.problem.id,
          sampleIdx: x.sampleIdx,
          response: r.text,
          finishReason: r.finishReason,
          completionTokens: r.completionTokens,
          latencyMs: r.latencyMs,
          attempts: r.attempts,
        });
        generated++;
        scoreOne(x.bench, x.problem, x.sampleIdx, r.text);
      });
    }
    await scoring.drain();
    progress.stop();

    const results: EvalResults = {
      format: "klear-eval/1",
      model,
      sampling,
      promptTemplate,
      seed,
      benchmarks: opts.benchmarks.map((b) =>
        computeBenchResult(
          b.spec,
          b.problems,
          b.source,
          store.samples(b.spec.name),
          store.verdicts(b.spec.name),
          {
            n: nOf(b),
            ks: opts.ks,
            bootstrap: opts.bootstrap,
            seed,
          },
        ),
      ),
    };
    const resultsPath = join(opts.outDir, "results.json");
    await atomicWriteFile(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
    let reportPath: string | null = null;
    if (opts.writeReport !== false) {
      reportPath = join(opts.outDir, "report.html");
      await atomicWriteFile(reportPath, renderEvalReport(results));
    }
    return { results, failed, generated, resultsPath, reportPath };
  } finally {
    store.close();
    releaseLock();
  }
}

/**
 * Loads responses a user already has into a run's store, for offline scoring. Accepted rows:
 * `{id|problem_id|unique_id, response|responses|output}`, Klear's inference output
 * `{meta: <original row>, messages: [user, assistant]}`, or rows matched by their problem text
 * (`prompt`/`problem`/`question`/the user message). `sample_idx` is optional; otherwise samples of a
 * problem are numbered in file order. Returns the largest per-problem sample count.
 */
export async function importResponses(
  path: string,
  bench: LoadedBenchmark,
  outDir: string,
): Promise<{ samples: number; maxPerProblem: number; unmatched: number }> {
  const store = new EvalStore(join(outDir, "results.sqlite"));
  try {
    const byId = new Map(bench.problems.map((p) => [p.id, p]));
    const byText = new Map<string, EvalProblem>();
    for (const p of bench.problems) {
      byText.set(p.question.trim(), p);
      if (p.fullPrompt) byText.set(p.fullPrompt.trim(), p);
      for (const t of ["r1", "raw"]) byText.set(buildMessages(p, t)[0].content.trim(), p);
    }
    const next = new Map<string, number>();
    let unmatched = 0;
    let count = 0;
    const rows: {
      p: EvalProblem;
      idx: number;
      text: string;
      finish: string | null;
      tokens: number | null;
    }[] = [];
    for await (const { row, file, line } of readRows(path)) {
      const meta = (row.meta ?? {}) as Record<string, unknown>;
      const inner = (meta.meta ?? {}) as Record<string, unknown>;
      const idCandidates = [
        row.problem_id,
        row.unique_id,
        row.question_id,
        meta.unique_id,
        inner.unique_id,
        meta.id,
        row.id,
      ]
        .filter((v) => v !== undefined && v !== null)
        .map(String);
      let problem: EvalProblem | undefined;
      for (const id of idCandidates) if ((problem = byId.get(id))) break;
      if (!problem) {
        // The detected prompt first, then the other fields a row may hold the bare problem in.
        const texts = [undefined, "problem", "question", "meta.problem"].map((f) => rowPromptText(row, f));
        for (const t of texts) if (t !== null && (problem = byText.get(t.trim()))) break;
      }
      if (!problem) {
        unmatched++;
        continue;
      }
      let responses: string[];
      if (Array.isArray(row.responses)) responses = row.responses.map(String);
      else {
        const response = rowResponseText(row);
        if (response === undefined) {
          throw new KlearError(
            "RESPONSES_MALFORMED",
            `${file}:${line}: no response (expected "response", "responses" or an assistant message)`,
            "add the model's output to each row",
          );
        }
        responses = [response];
      }
      for (const text of responses) {
        const explicit = typeof row.sample_idx === "number" && responses.length === 1 ? row.sample_idx : null;
        const idx = explicit ?? next.get(problem.id) ?? 0;
        next.set(problem.id, Math.max(idx + 1, next.get(problem.id) ?? 0));
        rows.push({
          p: problem,
          idx,
          text,
          finish: typeof row.finish_reason === "string" ? row.finish_reason : null,
          tokens: typeof row.completion_tokens === "number" ? row.completion_tokens : null,
        });
      }
    }
    store.transaction(() => {
      for (const r of rows) {
        const added = store.addSampleNow({
          bench: bench.spec.name,
          problemId: r.p.id,
          sampleIdx: r.idx,
          response: r.text,
          finishReason: r.finish,
          completionTokens: r.tokens,
          latencyMs: null,
          attempts: 0,
        });
        if (added) count++;
      }
    });
    const maxPerProblem = Math.max(0, ...next.values());
    return { samples: count, maxPerProblem, unmatched };
  } finally {
    store.close();
  }
}
