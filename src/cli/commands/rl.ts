import { join } from "node:path";
import { parseArgs } from "node:util";
import { rlResultLine, runRl } from "../../rl/trainer.js";
import { describeRlConfig, RL_PRESET_NAMES, resolveRlConfig } from "../../rl/trainer-config.js";
import { ConfigError } from "../../util/errors.js";
import { splitOverrides } from "../../util/overrides.js";

export const summary = "GPPO reinforcement learning from a checkpoint (arithmetic on CPU, or math rows)";

const USAGE = `usage: klear rl --init CHECKPOINT_DIR [--preset NAME] [--config FILE.json] [--a.b=VALUE ...] [--out DIR] [--quiet]
       klear rl --out DIR --resume

Reinforcement learning the Klear-Reasoner way: each step samples prompts, generates n responses per
prompt, scores them with the task's verifier, drops groups whose responses all agree, computes group
advantages, recomputes old log-probs with the current policy, and takes one AdamW step per mini-batch with
the policy loss (GPPO by default) plus the positive-sample SFT term. Metrics go to DIR/metrics.jsonl,
rollouts to DIR/samples.sqlite, resumable checkpoints to DIR/checkpoints/step-N.

options:
  --init DIR          checkpoint the policy starts from (e.g. runs/demo-…/checkpoints/step-300)
  --preset NAME       starting config: ${RL_PRESET_NAMES.join(", ")} (default tiny-cpu)
  --config FILE.json  fields to change, layered over the preset
  --a.b=VALUE         change one field (e.g. --loss.name=cispo, --steps=20), layered last
  --out DIR           run directory (default runs/rl-<UTC timestamp>)
  --resume            continue the run in --out from its last checkpoint, with its saved config
  --quiet             no progress bar

The last line is
  RESULT rl klear=<held-out accuracy after RL> peer=<before RL> unit=accuracy ratio=<r>
with r = (after + 1/N) / (before + 1/N) over N held-out prompts (> 1 means RL helped).

config fields (default = tiny-cpu):
`;

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
}

export async function run(argv: string[]): Promise<number> {
  const split = splitOverrides(argv);
  const { overrides } = split;
  // Top-level scalar fields (--steps=N, --seed=N, --checkpointEvery=N) are overrides too, though undotted.
  const rest: string[] = [];
  for (const a of split.rest) {
    const m = /^--(steps|seed|checkpointEvery)=(.*)$/s.exec(a);
    if (m) overrides[m[1]] = m[2];
    else rest.push(a);
  }
  let values: {
    init?: string;
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
        init: { type: "string" },
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
    throw new ConfigError(`klear rl: ${(e as Error).message}`, "see `klear rl --help`");
  }
  if (values.help) {
    console.log(USAGE + describeRlConfig());
    return 0;
  }
  if (values.resume) {
    if (!values.out) {
      throw new ConfigError(
        "klear rl --resume needs --out DIR",
        "pass the run directory to resume: --out runs/rl-…",
      );
    }
    if (values.init || values.preset || values.config || Object.keys(overrides).length > 0) {
      throw new ConfigError(
        "klear rl --resume continues with the run's saved config; --init, --preset, --config and overrides would be ignored",
        "drop them, or start a new run in another --out directory",
      );
    }
  }
  const config = resolveRlConfig({ preset: values.preset, configFile: values.config, overrides });
  const out = values.out ?? join("runs", `rl-${timestamp()}`);

  // Ctrl-C stops at the next step boundary with a checkpoint saved; a second one exits at once.
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write("\nklear rl: stopping after this step (Ctrl-C again to quit now)\n");
  };
  process.on("SIGINT", onSigint);
  try {
    const result = await runRl({
      config,
      out,
      init: values.init,
      resume: values.resume,
      quiet: values.quiet,
      shouldStop: () => stop,
    });
    if (result.interrupted) return 130;
    console.log(rlResultLine(result));
    return 0;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
