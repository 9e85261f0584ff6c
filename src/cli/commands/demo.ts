import { recipeResultLines, runRecipeDemo } from "../../tasks/recipe-demo.js";
import {
  describeRecipeDemoConfig,
  RECIPE_DEMO_PRESET_NAMES,
  RecipeDemoConfigSchema,
  resolveRecipeDemoConfig,
} from "../../tasks/recipe-demo-config.js";
import {
  acceptedFlags,
  defaultRunDir,
  parseRunCommandArgs,
  type RunCommandOptions,
  withGracefulStop,
} from "../../util/config.js";

export const summary =
  "the Klear recipe in miniature: SFT a tiny Qwen3 on math + code teacher traces, eval, GPPO RL with the verifier and sandbox, eval, report (CPU, minutes)";

const USAGE = `usage: klear demo [--preset NAME] [--config FILE.json] [--a.b=VALUE ...] [--out DIR] [--resume] [--quiet]

The Klear recipe in miniature, on the real components, from nothing (docs/demo.md):
  data     synthetic math word problems (3 levels, answered in \\boxed{}) and stdin/stdout programs with
           tests; a programmatic teacher writes <think> traces, some wrong (data.teacherNoise): DIR/data
  sft      a fresh tiny Qwen3 (byte tokenizer, a small chat template) trained by klear sft: DIR/sft
  eval     held-out math and code through the eval harness (avg@k, pass@k, maj@k, CIs): DIR/eval-sft
  rl       GPPO from the SFT checkpoint: math verifier and code sandbox rewards, dynamic sampling, the
           positive-sample SFT term (the rl.* fields): DIR/rl.  --rl.steps=0 skips it.
  eval     again on the RL checkpoint: DIR/eval-rl
  report   DIR/report.html (its path is printed)
--resume continues whichever phase was interrupted.

options:
  --preset NAME       starting config: ${RECIPE_DEMO_PRESET_NAMES.join(", ")} (default tiny-cpu)
  --config FILE.json  fields to change, layered over the preset
  --a.b=VALUE         change one field (e.g. --sft.steps=100, --rl.steps=0, --seed=3), layered last
  --out DIR           run directory (default runs/demo-<UTC timestamp>)
  --resume            continue the run in --out, with its saved config
  --quiet             no progress bars

The last lines are
  RESULT demo-rl klear=<accuracy after RL> peer=<after SFT> unit=accuracy ratio=<r>     (when RL ran)
  RESULT demo klear=<final accuracy> peer=<after SFT> unit=accuracy ratio=<r> math_sft=… math_rl=… code_sft=… code_rl=… minutes=…
with accuracy = avg@k over all held-out problems and r = (klear + 1/N) / (peer + 1/N) over N of them.

config fields (default = tiny-cpu):
`;

/** The command line of `klear demo` beside its config fields. */
export const COMMAND_LINE: Omit<RunCommandOptions, "help"> = { topLevelFields: ["seed"] };

/** Every flag `klear demo` accepts (a fix hint may name only these). */
export function flags(): Set<string> {
  return acceptedFlags(RecipeDemoConfigSchema, COMMAND_LINE);
}

export async function run(argv: string[]): Promise<number> {
  const args = parseRunCommandArgs("demo", argv, {
    ...COMMAND_LINE,
    help: () => USAGE + describeRecipeDemoConfig(),
  });
  if (!args) return 0;
  const { values, overrides } = args;
  const config = resolveRecipeDemoConfig({
    preset: values.preset as string | undefined,
    configFile: values.config as string | undefined,
    overrides,
  });
  const out = (values.out as string | undefined) ?? defaultRunDir("demo");
  return withGracefulStop("demo", async (shouldStop) => {
    const result = await runRecipeDemo(config, {
      out,
      resume: values.resume === true,
      quiet: values.quiet === true,
      shouldStop,
    });
    if (result.interrupted) return 130;
    for (const line of recipeResultLines(result, config.data.heldOutSize)) console.log(line);
    return 0;
  });
}
