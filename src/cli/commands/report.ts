import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { reportInput } from "../../report/run-input.js";
import { renderRunReport } from "../../report/run-report.js";
import { loadRuns } from "../../store/run-data.js";
import { experimentReportHtml } from "../../tasks/experiment.js";
import { atomicWriteFileSync } from "../../util/atomic.js";
import { ConfigError } from "../../util/errors.js";

export const summary = "draw runs (sft, rl, demo, experiment, eval) as one self-contained HTML report";

const USAGE = `usage: klear report RUN [RUN ...] [--out FILE.html] [--samples N]

Writes one HTML file that opens offline: curves of every logged metric over steps (loss, reward,
accuracy, entropy, clip fractions, bounded-gradient fraction, KL, response length, truncation,
kept/dropped groups, grad norm, lr, tokens/s, ...), several runs overlaid on shared axes; eval tables
with 95% CIs; sample responses with their rewards and verdicts; each run's resolved config.
A folder that holds runs (the demo's rl/, an experiment's seeds) contributes each of them. A run still
in progress is drawn as far as it has got. Runs also write TensorBoard event files as they go:
\`tensorboard --logdir RUN\` shows the same scalars.

options:
  --out FILE.html   where to write (default RUN/report.html for one run, ./klear-report.html for several)
  --samples N       sample responses shown per run and kind (default 24)
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      samples: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length === 0) {
    throw new ConfigError("klear report needs at least one run folder", "e.g. `klear report runs/demo`");
  }
  const samples = values.samples === undefined ? 24 : Number(values.samples);
  if (!Number.isInteger(samples) || samples < 0) {
    throw new ConfigError(
      `--samples must be a whole number ≥ 0, got "${values.samples}"`,
      "e.g. --samples 10",
    );
  }
  const out = resolve(
    values.out ?? (positionals.length === 1 ? join(positionals[0], "report.html") : "klear-report.html"),
  );
  if (!existsSync(dirname(out))) mkdirSync(dirname(out), { recursive: true });
  // An experiment folder draws as the experiment: per-loss means and its summary table.
  if (positionals.length === 1 && existsSync(join(positionals[0], "experiment.json"))) {
    atomicWriteFileSync(out, experimentReportHtml(positionals[0]));
    console.log(`report: experiment ${positionals[0]} → ${out}`);
    return 0;
  }
  const runs = loadRuns(positionals, { samplesPerKind: samples });
  atomicWriteFileSync(out, renderRunReport(reportInput(runs)));
  console.log(`report: ${runs.length} run${runs.length === 1 ? "" : "s"} → ${out}`);
  return 0;
}
