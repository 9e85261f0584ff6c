import { rlResultLine, runRl } from "../../rl/trainer.js";
import {
  describeRlConfig,
  RL_PRESET_NAMES,
  RlConfigSchema,
  resolveRlConfig,
} from "../../rl/trainer-config.js";
import { rlTaskFromConfig } from "../../tasks/rl-tasks.js";
import {
  acceptedFlags,
  defaultRunDir,
  parseRunCommandArgs,
  type RunCommandOptions,
  withGracefulStop,
} from "../../util/config.js";

export const summary = "GPPO reinforcement learning from a checkpoint (arithmetic on CPU, or math rows)";

const USAGE = `usage: klear rl --init CHECKPOINT_DIR [--preset NAME] [--config FILE.json] [--a.b=VALUE ...] [--out DIR] [--quiet]
       klear rl --out DIR --resume

Reinforcement learning the Klear-Reasoner way: each step samples prompts, generates n responses per
prompt, scores them with the task's verifier, drops groups whose responses all agree, computes group
advantages, recomputes old log-probs with the current policy, and takes one AdamW step per mini-batch with
the policy loss (GPPO by default) plus the positive-sample SFT term. Metrics go to DIR/metrics.jsonl,
rollouts to DIR/samples.sqlite, resumable checkpoints to DIR/checkpoints/step-N.

options:
  --init DIR          checkpoint the policy starts from (e.g. runs/demo-…/checkpoints/step-300, the demo's SFT phase)
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

/** The command line of `klear rl` beside its config fields. */
export const COMMAND_LINE: Omit<RunCommandOptions, "help"> = {
  extraStringFlags: ["init"],
  configFlags: ["init"],
  // Top-level scalar fields are overrides too, though undotted: --steps=N, --seed=N, --checkpointEvery=N.
  topLevelFields: ["steps", "seed", "checkpointEvery"],
};

/** Every flag `klear rl` accepts (a fix hint may name only these). */
export function flags(): Set<string> {
  return acceptedFlags(RlConfigSchema, COMMAND_LINE);
}

export async function run(argv: string[]): Promise<number> {
  const args = parseRunCommandArgs("rl", argv, { ...COMMAND_LINE, help: () => USAGE + describeRlConfig() });
  if (!args) return 0;
  const { values, overrides } = args;
  const config = resolveRlConfig({
    preset: values.preset as string | undefined,
    configFile: values.config as string | undefined,
    overrides,
  });
  const out = (values.out as string | undefined) ?? defaultRunDir("rl");
  return withGracefulStop("rl", async (shouldStop) => {
    const result = await runRl({
      config,
      task: rlTaskFromConfig,
      out,
      init: values.init as string | undefined,
      resume: values.resume === true,
      quiet: values.quiet === true,
      shouldStop,
    });
    if (result.interrupted) return 130;
    console.log(rlResultLine(result));
    return 0;
  });
}
