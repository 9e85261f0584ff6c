import { experimentResultLine, runExperiment } from "../../tasks/experiment.js";
import {
  describeExperimentConfig,
  EXPERIMENT_PRESET_NAMES,
  resolveExperimentConfig,
} from "../../tasks/experiment-config.js";
import { defaultRunDir, parseRunCommandArgs, withGracefulStop } from "../../util/config.js";
import { ConfigError } from "../../util/errors.js";

export const summary =
  "the paper's loss ablation: RL from one SFT checkpoint with GPPO, clip-higher, CISPO… over seeds";

const USAGE = `usage: klear experiment losses [--preset NAME] [--config FILE.json] [--losses a,b,c] [--seeds 1,2,3]
                               [--init CKPT] [--a.b=VALUE ...] [--out DIR] [--resume] [--quiet]

The paper's GPPO ablation (Figures 2–3) at demo scale, on the recipe demo (klear demo): one SFT
checkpoint (the demo's SFT phase into DIR, or --init), its held-out accuracy through the eval harness
(DIR/eval-sft), then one RL run per loss and seed in DIR/<loss>/seed-<s>, everything else equal, each
final checkpoint evaluated the same way (DIR/<loss>/seed-<s>/eval: avg@k over demo.eval.samples samples
per held-out math and code problem). Writes DIR/experiment.json (final accuracy and entropy per run,
mean ± std per loss) and DIR/report.html (the table, and accuracy / entropy / clip-fraction curves, each
loss the mean of its seeds). --resume keeps finished runs, continues an interrupted one and starts the rest.

options:
  --preset NAME       starting config: ${EXPERIMENT_PRESET_NAMES.join(", ")} (default tiny-cpu)
  --config FILE.json  fields to change, layered over the preset
  --losses a,b,c      registered policy losses to compare (default gppo,clip-higher,cispo)
  --seeds 1,2,3       RL seeds per loss (default 1,2,3)
  --init CKPT         SFT checkpoint to start every run from (default: run the demo's SFT phase)
  --a.b=VALUE         change one field (e.g. --demo.rl.steps=10, --demo.eval.samples=8), layered last
  --out DIR           experiment directory (default runs/experiment-<UTC timestamp>)
  --resume            continue the experiment in --out with its saved config
  --quiet             no progress bars

The last line is
  RESULT experiment-losses klear=<GPPO mean accuracy> peer=<best other loss's> unit=accuracy ratio=<r> peer_loss=<name>

config fields (schema defaults; the tiny-cpu preset sets demo.* to klear demo's tiny-cpu settings):
`;

export async function run(argv: string[]): Promise<number> {
  if (argv[0] !== "losses" && argv[0] !== "--help" && argv[0] !== "-h") {
    throw new ConfigError(
      `klear experiment: unknown experiment "${argv[0] ?? ""}"`,
      "use `klear experiment losses` (the loss ablation)",
    );
  }
  const args = parseRunCommandArgs("experiment losses", argv[0] === "losses" ? argv.slice(1) : argv, {
    help: () => USAGE + describeExperimentConfig(),
    aliases: [
      { flag: "losses", path: "losses", kind: "list" },
      { flag: "seeds", path: "seeds", kind: "ints" },
      { flag: "init", path: "init", kind: "string" },
    ],
  });
  if (!args) return 0;
  const { values, overrides } = args;
  const config = resolveExperimentConfig({
    preset: values.preset as string | undefined,
    configFile: values.config as string | undefined,
    overrides,
  });
  const out = (values.out as string | undefined) ?? defaultRunDir("experiment");
  return withGracefulStop("experiment", async (shouldStop) => {
    const result = await runExperiment(config, {
      out,
      resume: values.resume === true,
      quiet: values.quiet === true,
      shouldStop,
    });
    if (result.interrupted) return 130;
    console.log(experimentResultLine(result.summary));
    return 0;
  });
}
