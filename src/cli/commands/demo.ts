import { demoResultLine, demoRlResultLine, runDemo } from "../../tasks/demo.js";
import {
  DEMO_PRESET_NAMES,
  DemoConfigSchema,
  describeDemoConfig,
  resolveDemoConfig,
} from "../../tasks/demo-config.js";
import {
  acceptedFlags,
  defaultRunDir,
  parseRunCommandArgs,
  type RunCommandOptions,
  withGracefulStop,
} from "../../util/config.js";

export const summary =
  "the recipe in miniature: SFT a tiny Qwen3 from scratch on synthetic arithmetic, then GPPO RL (CPU, ~2–3 min)";

const USAGE = `usage: klear demo [--preset NAME] [--config FILE.json] [--a.b=VALUE ...] [--out DIR] [--resume] [--quiet]

The Klear recipe in miniature, on a synthetic arithmetic task (add a few one-digit numbers with a
running-sum chain of thought and a \\boxed{} answer):
  phase 1  supervised fine-tuning of a tiny Qwen3 from scratch on teacher solutions, half of which have a
           wrong step (task.teacherNoise); checkpoints in DIR/checkpoints
  phase 2  GPPO RL from the SFT checkpoint with the verifier's ±1 reward (the rl.* fields, \`klear rl\`'s
           tiny-cpu defaults); a run directory of its own in DIR/rl.  --rl.steps=0 skips it.
Greedy held-out accuracy is measured before training, after SFT and after RL, each on the checkpoint
reloaded from disk; the demo ends by sampling from the final checkpoint. --resume continues whichever
phase was interrupted.

options:
  --preset NAME       starting config: ${DEMO_PRESET_NAMES.join(", ")} (default tiny-cpu)
  --config FILE.json  fields to change, layered over the preset
  --a.b=VALUE         change one field (e.g. --train.steps=100, --rl.steps=0, --seed=3), layered last
  --out DIR           run directory (default runs/demo-<UTC timestamp>)
  --resume            continue the run in --out from its last checkpoint, with its saved config
  --quiet             no progress bar

The last lines are
  RESULT demo-rl klear=<accuracy after RL> peer=<after SFT> unit=accuracy ratio=<r>     (when RL ran)
  RESULT demo klear=<final held-out accuracy> peer=<accuracy before training> unit=accuracy ratio=<r>
with r = (after + 1/N) / (before + 1/N) over N held-out problems (> 1 means training helped; the 1/N
keeps it finite when the untrained model scores 0).

config fields (default = tiny-cpu):
`;

/** The command line of `klear demo` beside its config fields. */
export const COMMAND_LINE: Omit<RunCommandOptions, "help"> = { topLevelFields: ["seed"] };

/** Every flag `klear demo` accepts (a fix hint may name only these). */
export function flags(): Set<string> {
  return acceptedFlags(DemoConfigSchema, COMMAND_LINE);
}

export async function run(argv: string[]): Promise<number> {
  const args = parseRunCommandArgs("demo", argv, {
    ...COMMAND_LINE,
    help: () => USAGE + describeDemoConfig(),
  });
  if (!args) return 0;
  const { values, overrides } = args;
  const config = resolveDemoConfig({
    preset: values.preset as string | undefined,
    configFile: values.config as string | undefined,
    overrides,
  });
  const out = (values.out as string | undefined) ?? defaultRunDir("demo");
  return withGracefulStop("demo", async (shouldStop) => {
    const result = await runDemo(config, {
      out,
      resume: values.resume === true,
      quiet: values.quiet === true,
      shouldStop,
    });
    if (result.interrupted) return 130;
    const rlLine = demoRlResultLine(result);
    if (rlLine) console.log(rlLine);
    console.log(demoResultLine(result));
    return 0;
  });
}
