import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { reportInput } from "../report/run-input.js";
import { type RunReportTable, renderRunReport } from "../report/run-report.js";
import type { RlTaskFactory } from "../rl/task.js";
import { type RlResult, runRl } from "../rl/trainer.js";
import { parseRlConfig, type RlConfig } from "../rl/trainer-config.js";
import { readMetrics, resumeOrCreateRun, runPaths } from "../store/run.js";
import { loadRuns } from "../store/run-data.js";
import { atomicWriteFileSync, atomicWriteJsonSync } from "../util/atomic.js";
import { runDemo } from "./demo.js";
import { type DemoConfig, demoRlConfig } from "./demo-config.js";
import { type ExperimentConfig, parseExperimentConfig } from "./experiment-config.js";
import { arithmeticRlTask } from "./rl-tasks.js";

/**
 * `klear experiment losses`: the paper's loss ablation at demo scale. One SFT checkpoint (the demo's SFT
 * phase, or `init`), then one RL run per (loss, seed) in OUT/<loss>/seed-<s>, all else equal. The whole
 * experiment resumes: finished runs are kept, an interrupted one continues from its last checkpoint, missing
 * ones start. Ends with final held-out accuracy and entropy as mean ± std per loss (OUT/experiment.json),
 * the report with the curves overlaid per loss (OUT/report.html), and a RESULT line.
 */

/** What the experiment needs from a recipe: an SFT checkpoint, each run's RL config, and the task. */
export interface ExperimentRecipe {
  /** Runs (or resumes) the SFT phase in `dir`; returns its final checkpoint, or null when interrupted. */
  sft(dir: string, resume: boolean, opts: ExperimentOptions): Promise<string | null>;
  /** The RL config of one run: the recipe's, from `init`, with the loss, its options and the seed. */
  rlConfig(init: string, loss: string, lossOptions: Record<string, number | null>, seed: number): RlConfig;
  task: RlTaskFactory;
}

export interface ExperimentOptions {
  out: string;
  resume?: boolean;
  quiet?: boolean;
  log?: (line: string) => void;
  shouldStop?: () => boolean;
}

export interface ExperimentRunOutcome {
  loss: string;
  seed: number;
  dir: string;
  accuracyBefore: number;
  accuracyAfter: number;
  finalEntropy: number;
}

export interface ExperimentLossSummary {
  loss: string;
  runs: number;
  accuracyMean: number;
  accuracyStd: number;
  entropyMean: number;
  entropyStd: number;
}

export interface ExperimentResult {
  dir: string;
  sftCheckpoint: string;
  runs: ExperimentRunOutcome[];
  summary: ExperimentLossSummary[];
  report: string;
  interrupted: boolean;
}

/** The demo's arithmetic recipe: its SFT phase, and its RL phase with the loss and seed swapped in. */
export function demoRecipe(demo: DemoConfig): ExperimentRecipe {
  return {
    async sft(dir, resume, opts) {
      const result = await runDemo(
        { ...demo, rl: { ...demo.rl, enabled: false } },
        { out: dir, resume, quiet: opts.quiet, log: opts.log, shouldStop: opts.shouldStop },
      );
      return result.interrupted ? null : result.checkpoint;
    },
    rlConfig(init, loss, lossOptions, seed) {
      const base = demoRlConfig(demo, init);
      // Every run is measured on the demo's held-out split (its seed); the run's own seed moves sampling only.
      return parseRlConfig(
        { ...base, seed, loss: { ...base.loss, name: loss, ...lossOptions } },
        `experiment run ${loss}/seed-${seed}`,
      );
    },
    // Held-out split and prompt order from the demo's seed, so every run is measured on the problems SFT
    // was; the run's own seed (the trainer's rollout and update streams) is what varies.
    task: (ctx) => arithmeticRlTask({ ...ctx, config: { ...ctx.config, seed: demo.seed } }),
  };
}

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

function runOutcome(
  loss: string,
  seed: number,
  dir: string,
  r: RlResult,
  window: number,
): ExperimentRunOutcome {
  return {
    loss,
    seed,
    dir,
    accuracyBefore: r.accuracyBefore,
    accuracyAfter: r.accuracyAfter,
    finalEntropy: finalEntropy(dir, window),
  };
}

export function summarise(
  runs: readonly ExperimentRunOutcome[],
  losses: readonly string[],
): ExperimentLossSummary[] {
  return losses.map((loss) => {
    const mine = runs.filter((r) => r.loss === loss);
    const [accuracyMean, accuracyStd] = meanStd(mine.map((r) => r.accuracyAfter));
    const [entropyMean, entropyStd] = meanStd(mine.map((r) => r.finalEntropy));
    return { loss, runs: mine.length, accuracyMean, accuracyStd, entropyMean, entropyStd };
  });
}

const pm = (m: number, s: number, digits: number) =>
  Number.isFinite(m) ? `${m.toFixed(digits)} ± ${Number.isFinite(s) ? s.toFixed(digits) : "—"}` : "—";

export function summaryTable(summary: readonly ExperimentLossSummary[], before: number): RunReportTable {
  return {
    title: `Loss ablation: final held-out accuracy and entropy, mean ± std over seeds (SFT checkpoint: ${before.toFixed(3)})`,
    columns: ["loss", "runs", "final accuracy", "final entropy"],
    rows: summary.map((s) => [
      s.loss,
      s.runs,
      pm(s.accuracyMean, s.accuracyStd, 3),
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
    accuracyBefore: number;
    runs: ExperimentRunOutcome[];
    summary: ExperimentLossSummary[];
  };
  const loaded = loadRuns(saved.runs.map((r) => join(dir, r.loss, `seed-${r.seed}`)));
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
    tables: [summaryTable(saved.summary, saved.accuracyBefore)],
    groupRuns: true,
  });
}

export function writeExperimentReport(dir: string): string {
  const report = join(dir, "report.html");
  atomicWriteFileSync(report, experimentReportHtml(dir));
  return report;
}

export async function runExperiment(
  configIn: ExperimentConfig,
  opts: ExperimentOptions,
  recipeOf: (config: ExperimentConfig) => ExperimentRecipe = (c) => demoRecipe(c.demo),
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
  const interrupted = (sft: string, runs: ExperimentRunOutcome[]): ExperimentResult => {
    log(`continue with: klear experiment losses --out ${paths.dir} --resume`);
    return { dir: paths.dir, sftCheckpoint: sft, runs, summary: [], report: "", interrupted: true };
  };

  let sft = config.init;
  if (sft === "") {
    const sftDir = join(paths.dir, "sft");
    log(`SFT checkpoint: the demo's SFT phase in ${sftDir}`);
    const done = await recipe.sft(sftDir, existsSync(join(sftDir, "config.json")), { ...opts, log });
    if (done === null) return interrupted("", []);
    sft = done;
  }

  const runs: ExperimentRunOutcome[] = [];
  for (const loss of config.losses) {
    for (const seed of config.seeds) {
      const dir = join(paths.dir, loss, `seed-${seed}`);
      const resultPath = join(dir, "result.json");
      if (existsSync(resultPath)) {
        const r = JSON.parse(readFileSync(resultPath, "utf8")) as RlResult;
        if (!r.interrupted) {
          runs.push(runOutcome(loss, seed, dir, r, config.entropyWindow));
          continue;
        }
      }
      log(`RL ${loss} seed ${seed} → ${dir}`);
      const r = await runRl({
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
      if (r.interrupted) return interrupted(sft, runs);
      runs.push(runOutcome(loss, seed, dir, r, config.entropyWindow));
    }
  }

  const summary = summarise(runs, config.losses);
  const before = runs[0]?.accuracyBefore ?? Number.NaN;
  atomicWriteJsonSync(join(paths.dir, "experiment.json"), {
    sftCheckpoint: sft,
    accuracyBefore: before,
    runs,
    summary,
  });
  const report = writeExperimentReport(paths.dir);
  atomicWriteJsonSync(join(paths.dir, "result.json"), { summary, report });
  for (const s of summary) {
    log(
      `${s.loss.padEnd(14)} accuracy ${pm(s.accuracyMean, s.accuracyStd, 3)}   entropy ${pm(s.entropyMean, s.entropyStd, 4)}   (${s.runs} runs)`,
    );
  }
  log(`report: ${report}`);
  return { dir: paths.dir, sftCheckpoint: sft, runs, summary, report, interrupted: false };
}
