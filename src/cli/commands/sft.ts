import { describeSftConfig, resolveSftConfig, SFT_PRESET_NAMES } from "../../sft/config.js";
import { runSft, sftResultLine } from "../../sft/trainer.js";
import { defaultRunDir, parseRunCommandArgs, withGracefulStop } from "../../util/config.js";
import { ConfigError } from "../../util/errors.js";

export const summary = "supervised fine-tuning (long-CoT SFT) of a checkpoint on chat rows";

const USAGE = `usage: klear sft --init CHECKPOINT_DIR --data FILE... [--preset NAME] [--config FILE.json] [--a.b=VALUE ...] [--out DIR] [--quiet]
       klear sft --out DIR --resume

Supervised fine-tuning the Klear-Reasoner way (long chain-of-thought SFT): every row is rendered with the
checkpoint's own chat template, the loss is the token-mean NLL of the assistant's tokens (its <think>
reasoning included) over each optimizer batch, rows are packed into sequences of pack.maxTokens without
attention across rows, and AdamW runs with warmup then cosine decay to a floor. Metrics (loss, lr, grad norm,
tokens/s, padding fraction, held-out loss) go to DIR/metrics.jsonl, HF-loadable resumable checkpoints to
DIR/checkpoints/step-N (\`klear rl --init\` and \`klear eval\` take them).

Rows: jsonl, .jsonl.gz, parquet or JSON files, or folders of shards, in any of
  {"messages": [{"role": "user", "content": …}, {"role": "assistant", "content": …, "reasoning_content"?: …}]}
  {"conversations": [{"from": "human", "value": …}, {"from": "gpt", "value": …}], "system"?: …}
  {"prompt": …, "completion": …}             (text, or lists of turns)
Field names: data.fields.* (or a source's fields); several sources with mixing weights: data.sources in --config.
Malformed rows are reported with file and line and skipped (data.onBadRow=skip, counted per cause) or stop
the run (data.onBadRow=error).

options:
  --init DIR          checkpoint to fine-tune (an HF-style Qwen3 folder: config.json, safetensors, tokenizer)
  --data FILE...      row files or folders (each a source of weight 1; replaces data.sources)
  --preset NAME       starting config: ${SFT_PRESET_NAMES.join(", ")} (default tiny-cpu)
  --config FILE.json  fields to change, layered over the preset
  --a.b=VALUE         change one field (e.g. --pack.maxTokens=4096, --train.epochs=1), layered last
  --out DIR           run directory (default runs/sft-<UTC timestamp>)
  --resume            continue the run in --out from its last checkpoint, with its saved config
  --quiet             no progress bar

The last line is
  RESULT sft klear=<held-out NLL after> peer=<before> unit=heldout-nll ratio=<before / after>

config fields (default = tiny-cpu):
`;

/** Takes `--data A B …` (values up to the next flag) and `--data=A` out of argv. */
function splitDataFlag(argv: string[]): { data: string[]; rest: string[] } {
  const data: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--data=")) data.push(a.slice("--data=".length));
    else if (a === "--data") {
      const before = data.length;
      while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) data.push(argv[++i]);
      if (data.length === before)
        throw new ConfigError("klear sft: --data needs at least one file", "pass --data FILE...");
    } else rest.push(a);
  }
  return { data, rest };
}

export async function run(argv: string[]): Promise<number> {
  const { data, rest } = splitDataFlag(argv);
  const args = parseRunCommandArgs("sft", rest, {
    help: () => USAGE + describeSftConfig(),
    extraStringFlags: ["init"],
    configFlags: ["init"],
    topLevelFields: ["seed", "evalEvery", "checkpointEvery"],
  });
  if (!args) return 0;
  const { values, overrides } = args;
  if (values.resume && data.length > 0) {
    throw new ConfigError(
      "klear sft --resume continues with the run's saved data; --data would be ignored",
      "drop --data, or start a new run in another --out directory",
    );
  }
  const config = resolveSftConfig({
    preset: values.preset as string | undefined,
    configFile: values.config as string | undefined,
    overrides,
  });
  const out = (values.out as string | undefined) ?? defaultRunDir("sft");
  return withGracefulStop("sft", async (shouldStop) => {
    const result = await runSft({
      config,
      out,
      init: values.init as string | undefined,
      data,
      resume: values.resume === true,
      quiet: values.quiet === true,
      shouldStop,
    });
    if (result.interrupted) {
      console.log(`continue with: klear sft --out ${out} --resume`);
      return 130;
    }
    console.log(sftResultLine(result));
    return 0;
  });
}
