import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { reportInput } from "../report/run-input.js";
import { type RunReportTable, renderRunReport } from "../report/run-report.js";
import { type RlResult, runRl } from "../rl/trainer.js";
import { appendMetrics, readMetrics, resumeOrCreateRun, runPaths } from "../store/run.js";
import { loadRuns } from "../store/run-data.js";
import { atomicWriteFileSync, atomicWriteJsonSync } from "../util/atomic.js";
import { type ExperimentConfig, parseExperimentConfig } from "./experiment-config.js";
import {
  type ExperimentAccuracy,
  type ExperimentPhaseOptions,
  type ExperimentRecipe,
  recipeExperiment,
} from "./experiment-recipe.js";

/**
 * `klear experiment losses`: the paper's loss ablation at demo scale. One SFT checkpoint (the recipe demo's
 * SFT phase, or `init`), then one RL run per (loss, seed) in OUT/<loss>/seed-<s>, all else equal, each
 * final checkpoint evaluated on the demo's held-out sets through the eval harness (OUT/<loss>/seed-<s>/eval;
 * the SFT checkpoint in OUT/eval-sft). The whole experiment resumes: finished runs are kept, an interrupted
 * one continues from its last checkpoint (or its evaluation from its stored samples), missing ones start.
 * Ends with final held-out accuracy and entropy as mean ± std per loss (OUT/experiment.json), the report with
 * the curves overlaid per loss (OUT/report.html), and a RESULT line.
 */

export interface ExperimentOptions extends ExperimentPhaseOptions {
  out: string;
  resume?: boolean;
}

export interface ExperimentRunOutcome {
  loss: string;
  seed: number;
  dir: string;
  /** RL steps the run took. */
  steps: number;
  /** Held-out accuracy of the SFT checkpoint (the eval harness, as `accuracyAfter`). */
  accuracyBefore: number;
  /** Held-out accuracy of the run's final checkpoint through the eval harness, over all problems. */
  accuracyAfter: number;
  /** The same per part (math, code). */
  partsAfter: Record<string, number>;
  /** RL's own held-out accuracy (one sample per problem, the run's seed) before and after, for reference. */
  rlAccuracyBefore: number;
  rlAccuracyAfter: number;
  finalEntropy: number;
}

export interface ExperimentLossSummary {
  loss: string;
  runs: number;
  accuracyMean: number;
  accuracyStd: number;
  /** Per part (math, code): [mean, std] of the final accuracy. */
  parts: Record<string, [number, number]>;
  entropyMean: number;
  entropyStd: number;
}

export interface ExperimentResult {
  dir: string;
  sftCheckpoint: string;
  /** Held-out accuracy of the SFT checkpoint. */
  before: ExperimentAccuracy | null;
  runs: ExperimentRunOutcome[];
  summary: ExperimentLossSummary[];
  report: string;
  interrupted: boolean;
}

/** A finished run's outcome, in its folder: a resumed experiment skips the run. */
const OUTCOME = "experiment-outcome.json";
/** Metric keys of the harness accuracy written into each RL run's metrics (the report's accuracy panel). */
const HARNESS_KEY = "harnessAccuracy";

function meanStd(xs: number[]): [number, number] {
  const finite = xs.filter(Number.isFinite);
  if (finite.length === 0) return [Number.NaN, Number.NaN];
  const mean = finite.reduce((a, b) => a + b, 0) / finite.length;
  const variance =
    finite.length > 1 ? finite.reduce((a, b) => a + (b - mean) ** 2, 0) / (finite.length - 1) : 0;
  return [mean, Math.sqrt(variance)];
}

function finalEntropy(dir: string, window: number): number {
  const values = readMetrics(runPaths(dir))
    .map((m) => m.entropy)
    .filter((v): v is number => typeof v === "number");
  return meanStd(values.slice(-window))[0];
}

export function summarise(
  runs: readonly ExperimentRunOutcome[],
  losses: readonly string[],
): ExperimentLossSummary[] {
  return losses.map((loss) => {
    const mine = runs.filter((r) => r.loss === loss);
    const [accuracyMean, accuracyStd] = meanStd(mine.map((r) => r.accuracyAfter));
    const [entropyMean, entropyStd] = meanStd(mine.map((r) => r.finalEntropy));
    const partNames = [...new Set(mine.flatMap((r) => Object.keys(r.partsAfter)))];
    const parts = Object.fromEntries(
      partNames.map((p) => [p, meanStd(mine.map((r) => r.partsAfter[p] ?? Number.NaN))]),
    );
    return { loss, runs: mine.length, accuracyMean, accuracyStd, parts, entropyMean, entropyStd };
  });
}

const pm = (m: number, s: number, digits: number) =>
  Number.isFinite(m) ? `${m.toFixed(digits)} ± ${Number.isFinite(s) ? s.toFixed(digits) : "—"}` : "—";

export function summaryTable(
  summary: readonly ExperimentLossSummary[],
  before: ExperimentAccuracy | null,
): RunReportTable {
  const partNames = [...new Set(summary.flatMap((s) => Object.keys(s.parts)))];
  const sft = before
    ? [before.overall, ...partNames.map((p) => before.parts[p])]
        .map((x) => (Number.isFinite(x) ? x.toFixed(3) : "—"))
        .join(" / ")
    : "—";
  const partsHeader = partNames.length ? ` (${["all", ...partNames].join(" / ")}: ${sft})` : ` (${sft})`;
  return {
    title: `Loss ablation: final held-out accuracy (eval harness) and entropy, mean ± std over seeds; SFT checkpoint${partsHeader}`,
    columns: ["loss", "runs", "final accuracy", ...partNames.map((p) => `${p} accuracy`), "final entropy"],
    rows: summary.map((s) => [
      s.loss,
      s.runs,
      pm(s.accuracyMean, s.accuracyStd, 3),
      ...partNames.map((p) => (s.parts[p] ? pm(s.parts[p][0], s.parts[p][1], 3) : "—")),
      pm(s.entropyMean, s.entropyStd, 4),
    ]),
  };
}

/** `RESULT experiment-losses klear=<GPPO mean accuracy> peer=<best other loss's> …`. */
export function experimentResultLine(summary: readonly ExperimentLossSummary[]): string {
  const gppo = summary.find((s) => s.loss === "gppo");
  const others = summary.filter((s) => s.loss !== "gppo" && Number.isFinite(s.accuracyMean));
  const best = others.reduce<ExperimentLossSummary | null>(
    (b, s) => (b && b.accuracyMean >= s.accuracyMean ? b : s),
    null,
  );
  const k = gppo?.accuracyMean ?? Number.NaN;
  const p = best?.accuracyMean ?? Number.NaN;
  const ratio = Number.isFinite(k) && Number.isFinite(p) && p > 0 ? k / p : Number.NaN;
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : "n/a");
  return `RESULT experiment-losses klear=${f(k)} peer=${f(p)} unit=accuracy ratio=${f(ratio)} peer_loss=${best?.loss ?? "none"}`;
}

/** The experiment folder's report: runs grouped per loss (curves are per-loss means), the summary table. */
export function experimentReportHtml(dir: string): string {
  const saved = JSON.parse(readFileSync(join(dir, "experiment.json"), "utf8")) as {
    before: ExperimentAccuracy | null;
    runs: ExperimentRunOutcome[];
    summary: ExperimentLossSummary[];
  };
  // Depth 0: each run folder alone, not the harness evaluation inside it.
  const loaded = loadRuns(
    saved.runs.map((r) => join(dir, r.loss, `seed-${r.seed}`)),
    { maxDepth: 0 },
  );
  const input = reportInput(
    loaded.map((r, i) => ({
      ...r,
      name: `${saved.runs[i].loss}/seed-${saved.runs[i].seed}`,
      group: saved.runs[i].loss,
    })),
    `klear experiment losses: ${saved.summary.map((s) => s.loss).join(" vs ")}`,
  );
  return renderRunReport({
    ...input,
    tables: [summaryTable(saved.summary, saved.before ?? null)],
    groupRuns: true,
  });
}

export function writeExperimentReport(dir: string): string {
  const report = join(dir, "report.html");
  atomicWriteFileSync(report, experimentReportHtml(dir));
  return report;
}

/** Harness accuracy as metric rows of an RL run: the SFT checkpoint's at step 0, the final one's at its last step. */
function harnessRows(step: number, acc: ExperimentAccuracy): { step: number } & Record<string, unknown> {
  const row: { step: number } & Record<string, unknown> = {
    step,
    phase: "eval-harness",
    [HARNESS_KEY]: acc.overall,
  };
  for (const [part, v] of Object.entries(acc.parts)) {
    row[`${HARNESS_KEY}${part[0].toUpperCase()}${part.slice(1)}`] = v;
  }
  return row;
}

export async function runExperiment(
  configIn: ExperimentConfig,
  opts: ExperimentOptions,
  recipeOf: (config: ExperimentConfig) => ExperimentRecipe = (c) => recipeExperiment(c.demo),
): Promise<ExperimentResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const { paths, config } = resumeOrCreateRun({
    out: opts.out,
    resume: opts.resume,
    log,
    parse: parseExperimentConfig,
    create: () => configIn,
  });
  const recipe = recipeOf(config);
  const phase = { quiet: opts.quiet, log, shouldStop: opts.shouldStop };
  const stopped = () => opts.shouldStop?.() ?? false;
  const runs: ExperimentRunOutcome[] = [];
  let sft = config.init;
  let before: ExperimentAccuracy | null = null;
  const interrupted = (): ExperimentResult => {
    log(`continue with: klear experiment losses --out ${paths.dir} --resume`);
    return { dir: paths.dir, sftCheckpoint: sft, before, runs, summary: [], report: "", interrupted: true };
  };

  if (sft === "") {
    log(`SFT checkpoint: the demo's SFT phase in ${paths.dir}`);
    const done = await recipe.sft(paths.dir, phase);
    if (done === null) return interrupted();
    sft = done;
  }
  if (stopped()) return interrupted();
  before = await recipe.evaluate(sft, join(paths.dir, "eval-sft"), phase);
  log(`held-out accuracy of the SFT checkpoint ${sft}: ${describeAccuracy(before)}`);

  for (const loss of config.losses) {
    for (const seed of config.seeds) {
      const dir = join(paths.dir, loss, `seed-${seed}`);
      const outcomePath = join(dir, OUTCOME);
      if (existsSync(outcomePath)) {
        runs.push(JSON.parse(readFileSync(outcomePath, "utf8")) as ExperimentRunOutcome);
        continue;
      }
      if (stopped()) return interrupted();
      const resultPath = join(dir, "result.json");
      let r: RlResult | null = existsSync(resultPath)
        ? (JSON.parse(readFileSync(resultPath, "utf8")) as RlResult)
        : null;
      if (r === null || r.interrupted) {
        log(`RL ${loss} seed ${seed} → ${dir}`);
        r = await runRl({
          config: recipe.rlConfig(sft, loss, config.lossOptions[loss] ?? {}, seed),
          task: recipe.task,
          out: dir,
          resume: existsSync(join(dir, "config.json")),
          quiet: opts.quiet,
          shouldStop: opts.shouldStop,
          log: (line) => {
            if (!line.startsWith("continue with:")) log(line);
          },
        });
        if (r.interrupted) return interrupted();
      }
      if (stopped()) return interrupted();
      const after = await recipe.evaluate(r.checkpoint, join(dir, "eval"), phase);
      log(`${loss} seed ${seed}: held-out accuracy ${describeAccuracy(after)}`);
      const rlPaths = runPaths(dir);
      appendMetrics(rlPaths, harnessRows(0, before));
      appendMetrics(rlPaths, harnessRows(r.steps, after));
      const outcome: ExperimentRunOutcome = {
        loss,
        seed,
        dir,
        steps: r.steps,
        accuracyBefore: before.overall,
        accuracyAfter: after.overall,
        partsAfter: after.parts,
        rlAccuracyBefore: r.accuracyBefore,
        rlAccuracyAfter: r.accuracyAfter,
        finalEntropy: finalEntropy(dir, config.entropyWindow),
      };
      atomicWriteJsonSync(outcomePath, outcome);
      // As a resumed experiment reads it back (a NaN is null in JSON).
      runs.push(JSON.parse(readFileSync(outcomePath, "utf8")) as ExperimentRunOutcome);
    }
  }

  const summary = summarise(runs, config.losses);
  atomicWriteJsonSync(join(paths.dir, "experiment.json"), { sftCheckpoint: sft, before, runs, summary });
  const report = writeExperimentReport(paths.dir);
  atomicWriteJsonSync(join(paths.dir, "result.json"), { summary, report });
  for (const s of summary) {
    const parts = Object.entries(s.parts)
      .map(([p, [m, sd]]) => `${p} ${pm(m, sd, 3)}`)
      .join(", ");
    log(
      `${s.loss.padEnd(14)} accuracy ${pm(s.accuracyMean, s.accuracyStd, 3)}${parts ? ` (${parts})` : ""}   entropy ${pm(s.entropyMean, s.entropyStd, 4)}   (${s.runs} runs)`,
    );
  }
  log(`report: ${report}`);
  return { dir: paths.dir, sftCheckpoint: sft, before, runs, summary, report, interrupted: false };
}

function describeAccuracy(a: ExperimentAccuracy): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "n/a");
  const parts = Object.entries(a.parts).map(([p, v]) => `${p} ${f(v)}`);
  return `${f(a.overall)}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}
