import { join } from "node:path";
import { parseArgs } from "node:util";
import { demoResultLine, runDemo } from "../../tasks/demo.js";
import { DEMO_PRESET_NAMES, describeDemoConfig, resolveDemoConfig } from "../../tasks/demo-config.js";
import { ConfigError } from "../../util/errors.js";
import { splitOverrides } from "../../util/overrides.js";

export const summary = "train a tiny Qwen3 from scratch on a synthetic arithmetic task (CPU, ~1 min)";

const USAGE = `usage: klear demo [--preset NAME] [--config FILE.json] [--a.b=VALUE ...] [--out DIR] [--resume] [--quiet]

Trains a tiny Qwen3 from scratch on a synthetic arithmetic task (add a few one-digit numbers with a
running-sum chain of thought and a \\boxed{} answer), shows the loss falling, measures greedy accuracy on
held-out problems before and after, saves the checkpoint into the run directory, reloads it and samples.

options:
  --preset NAME       starting config: ${DEMO_PRESET_NAMES.join(", ")} (default tiny-cpu)
  --config FILE.json  fields to change, layered over the preset
  --a.b=VALUE         change one field (e.g. --train.steps=100), layered last
  --out DIR           run directory (default runs/demo-<UTC timestamp>)
  --resume            continue the run in --out from its last checkpoint, with its saved config
  --quiet             no progress bar

The last line is
  RESULT demo klear=<held-out accuracy after> peer=<accuracy before training> unit=accuracy ratio=<r>
with r = (after + 1/N) / (before + 1/N) over N held-out problems (> 1 means training helped; the 1/N
keeps it finite when the untrained model scores 0).

config fields (default = tiny-cpu):
`;

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
}

export async function run(argv: string[]): Promise<number> {
  const { overrides, rest } = splitOverrides(argv);
  let values: {
    preset?: string;
    config?: string;
    out?: string;
    resume?: boolean;
    quiet?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        preset: { type: "string" },
        config: { type: "string" },
        out: { type: "string" },
        resume: { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new ConfigError(`klear demo: ${(e as Error).message}`, "see `klear demo --help`");
  }
  if (values.help) {
    console.log(USAGE + describeDemoConfig());
    return 0;
  }
  if (values.resume && !values.out) {
    throw new ConfigError(
      "klear demo --resume needs --out DIR",
      "pass the run directory to resume: --out runs/demo-…",
    );
  }
  if (values.resume && (values.preset || values.config || Object.keys(overrides).length > 0)) {
    throw new ConfigError(
      "klear demo --resume continues with the run's saved config; --preset, --config and overrides would be ignored",
      "drop them, or start a new run in another --out directory",
    );
  }
  const config = resolveDemoConfig({ preset: values.preset, configFile: values.config, overrides });
  const out = values.out ?? join("runs", `demo-${timestamp()}`);

  // Ctrl-C stops at the next step boundary with a checkpoint saved; a second one exits at once.
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write("\nklear demo: stopping after this step (Ctrl-C again to quit now)\n");
  };
  process.on("SIGINT", onSigint);
  try {
    const result = await runDemo(config, {
      out,
      resume: values.resume,
      quiet: values.quiet,
      shouldStop: () => stop,
    });
    if (result.interrupted) return 130;
    console.log(demoResultLine(result));
    return 0;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
