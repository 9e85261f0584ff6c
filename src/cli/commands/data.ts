import { readFileSync } from "node:fs";
import {
  DATA_SUBCOMMAND_NAMES,
  DATA_SUBCOMMANDS,
  type DataConfig,
  type DataSubcommand,
  type DataSubcommandName,
  describeDataConfig,
  resolveDataConfig,
} from "../../data/config.js";
import {
  type DataManifest,
  type PipelineCommonOptions,
  runConvert,
  runDecontam,
  runDedup,
  runSelect,
  runStats,
  runTag,
  sidecarPaths,
} from "../../data/pipeline.js";
import { codeScorer, mathScorer, openAiCompatibleSampler, type ResponseScorer } from "../../data/tag.js";
import { acceptedFlags, parseRunCommandArgs, type RunCommandOptions } from "../../util/config.js";
import { ConfigError } from "../../util/errors.js";

export const summary = "curate SFT/RL data: dedup | decontam | select | tag | convert | stats";

const USAGE = `usage: klear data <subcommand> INPUT... [options]   (klear data <subcommand> --help lists every field)

subcommands (INPUT and --out are .jsonl or .parquet; every output is written atomically with
OUT.manifest.json (input hashes, parameters, counts removed per rule), OUT.removed.jsonl (each
removed row with its file, line and reason) and OUT.malformed.jsonl (each unreadable row)):

${DATA_SUBCOMMAND_NAMES.map((n) => `  ${n.padEnd(9)} ${DATA_SUBCOMMANDS[n].usage}`).join("\n")}

decontam names the benchmarks as klear eval does (aime24 aime25 hmmt_feb_2025 math500 amc23 gsm8k
livecodebench_v5 livecodebench_v6; lcb_v5, lcb_v6 and eval's other aliases work too) or "all" (the eval suite).

every subcommand also takes --config FILE.json (its fields, as listed by --help), --a.b=VALUE, --text-field
a.b (where the prompt is; detected by default), --source-field a.b, --require-response and --quiet.`;

/** The command line of `klear data NAME`: its config fields, their short flags and the extra flags. */
function commandLine(d: DataSubcommand): Omit<RunCommandOptions, "help"> {
  // Every field is top-level, so each is also an undotted override: --numPerm=64.
  const topLevelFields = Object.keys((d.schema as unknown as { shape: object }).shape);
  return {
    aliases: d.aliases,
    extraStringFlags: d.extraStringFlags,
    topLevelFields,
    positionals: true,
    resume: false,
  };
}

/** Every flag `klear data NAME` accepts (a fix hint may name only these). */
export function flags(name: DataSubcommandName): Set<string> {
  const d = DATA_SUBCOMMANDS[name] as DataSubcommand;
  return acceptedFlags(d.schema, commandLine(d));
}

function report(m: DataManifest, out: string): void {
  const removed = Object.entries(m.counts.removed)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const side = sidecarPaths(out);
  const lines = [
    `${m.command}: read ${m.counts.read} rows, kept ${m.counts.kept}, removed ${removed || "0"}, malformed ${m.counts.malformed}`,
  ];
  if (m.counts.malformed > 0) {
    lines.push(
      `  malformed by reason: ${Object.entries(m.malformed.byReason)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`,
    );
    for (const e of m.malformed.examples.slice(0, 5))
      lines.push(`    ${e.file}:${e.line}: ${e.reason}: ${e.detail}`);
    lines.push(`  all malformed rows: ${side.malformed}`);
  }
  lines.push(`  output ${out}`, `  removals ${side.removed}`, `  manifest ${side.manifest}`);
  console.error(lines.join("\n"));
}

const orUndefined = <T>(v: T | null | ""): T | undefined => (v === null || v === "" ? undefined : (v as T));

/** The row options every subcommand shares. */
function rowOptions(c: DataConfig<"dedup">, quiet: boolean): PipelineCommonOptions {
  return { textField: orUndefined(c.textField), requireResponse: c.requireResponse, quiet };
}

async function runSubcommand(
  name: DataSubcommandName,
  c: DataConfig<DataSubcommandName>,
  inputs: string[],
  out: string,
  values: Record<string, string | boolean | undefined>,
): Promise<DataManifest> {
  const quiet = values.quiet === true;
  const rows = rowOptions(c as DataConfig<"dedup">, quiet);
  switch (name) {
    case "dedup": {
      const d = c as DataConfig<"dedup">;
      return runDedup(inputs, out, {
        ...rows,
        exact: d.exact,
        near: d.near,
        threshold: d.threshold,
        numPerm: d.numPerm,
        shingleSize: d.shingleSize,
        bands: orUndefined(d.bands),
        rows: orUndefined(d.rows),
        seed: d.seed,
      });
    }
    case "decontam": {
      const d = c as DataConfig<"decontam">;
      return runDecontam(inputs, out, {
        ...rows,
        benchmarks: d.benchmarks,
        n: d.ngram,
        benchmarkDir: orUndefined(d.benchDir),
      });
    }
    case "select": {
      const d = c as DataConfig<"select">;
      return runSelect(inputs, out, {
        ...rows,
        sourceScores: d.scores
          ? (JSON.parse(readFileSync(d.scores, "utf8")) as Record<string, number>)
          : undefined,
        scoreRule: d.scoreRule,
        topKSources: orUndefined(d.topKSources),
        ratios: Object.keys(d.mix).length > 0 ? d.mix : undefined,
        total: orUndefined(d.total),
        kCenter: orUndefined(d.kCenter),
        vectorDim: d.vectorDim,
        seed: d.seed,
        sourceField: orUndefined(d.sourceField),
      });
    }
    case "tag": {
      const d = c as DataConfig<"tag">;
      if (d.endpoints.length === 0 || !d.model) {
        throw new ConfigError(
          "klear data tag needs a model to sample from",
          "pass --endpoint http://HOST:PORT/v1 --model NAME (any OpenAI-compatible server: vLLM, SGLang)",
        );
      }
      const scorers: Record<string, ResponseScorer> = { math: mathScorer(), code: codeScorer() };
      const sampler = openAiCompatibleSampler({
        endpoints: d.endpoints,
        model: d.model,
        apiKey: (values["api-key"] as string | undefined) ?? process.env.OPENAI_API_KEY,
        concurrency: d.concurrency,
        temperature: d.temperature,
        topP: d.topP,
        maxTokens: d.maxTokens,
      });
      try {
        return await runTag(inputs, out, {
          ...rows,
          sampler,
          scorers,
          n: d.n,
          concurrency: d.concurrency,
          easyAtLeast: d.easyAtLeast,
          hardBelow: d.hardBelow,
          rlFilter: d.rlFilter,
          mathMajority: d.mathMajority,
          codeMinTests: d.codeMinTests,
          codeMinPassRate: d.codeMinPassRate,
        });
      } finally {
        sampler.close();
      }
    }
    case "convert": {
      const d = c as DataConfig<"convert">;
      return runConvert(inputs, out, {
        ...rows,
        to: d.to,
        dataSource: orUndefined(d.dataSource),
        ability: orUndefined(d.ability),
        split: orUndefined(d.split),
      });
    }
    default:
      throw new TypeError(`no runner for data ${name}`);
  }
}

async function stats(c: DataConfig<"stats">, inputs: string[]): Promise<number> {
  if (inputs.length === 0)
    throw new ConfigError("klear data stats: no input files", "give jsonl/parquet files");
  const r = await runStats(inputs, {
    html: orUndefined(c.html),
    json: orUndefined(c.json),
    tokenizer: orUndefined(c.tokenizer),
    sourceField: orUndefined(c.sourceField),
    textField: orUndefined(c.textField),
    requireResponse: c.requireResponse,
  });
  console.log(r.text.trimEnd());
  const bad = Object.entries(r.malformed.byReason);
  if (bad.length > 0) {
    console.error(`malformed rows (not counted above): ${bad.map(([k, n]) => `${k} ${n}`).join(", ")}`);
    for (const e of r.malformed.examples.slice(0, 5))
      console.error(`  ${e.file}:${e.line}: ${e.reason}: ${e.detail}`);
  }
  if (c.html) console.error(`html: ${c.html}`);
  if (c.json) console.error(`json: ${c.json}`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const name = argv[0];
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (!Object.hasOwn(DATA_SUBCOMMANDS, name)) {
    console.error(
      `klear data: unknown subcommand "${name}"\n  fix: use one of: ${DATA_SUBCOMMAND_NAMES.join(", ")}`,
    );
    return 2;
  }
  const sub = name as DataSubcommandName;
  const d = DATA_SUBCOMMANDS[sub] as DataSubcommand;
  const args = parseRunCommandArgs(`data ${sub}`, argv.slice(1), {
    ...commandLine(d),
    help: () =>
      `usage: klear data ${sub} ${d.usage}\n       [--config FILE.json] [--a.b=VALUE ...] [--quiet]\n\nconfig fields (the short flag that sets a field is shown beside it):\n${describeDataConfig(sub)}`,
  });
  if (!args) return 0;
  const config = resolveDataConfig(sub, {
    preset: args.values.preset as string | undefined,
    configFile: args.values.config as string | undefined,
    overrides: args.overrides,
  });
  if (sub === "stats") return stats(config as DataConfig<"stats">, args.positionals);
  const out = args.values.out as string | undefined;
  if (!out)
    throw new ConfigError(`klear data ${sub}: no output file`, "pass --out OUT.jsonl (or OUT.parquet)");
  const m = await runSubcommand(sub, config, args.positionals, out, args.values);
  report(m, out);
  return 0;
}
