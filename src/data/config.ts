import { z } from "zod";
import {
  type ConfigLayers,
  describeConfig,
  type FlagAlias,
  kebabFlagAliases,
  parseConfigWith,
  resolveConfig,
} from "../util/config.js";
import { ConfigError } from "../util/errors.js";
import { ROW_FORMATS } from "./rows.js";
import { SOURCE_SCORE_RULES } from "./select.js";

/**
 * The configs of the `klear data` subcommands, one typed object each with a documented default for every
 * field, on the same path as the run commands: preset → `--config FILE` → short flags → `--a.b=c`.
 * The fields every subcommand shares (where the prompt is, what counts as malformed) come first.
 */
const rowFields = {
  textField: z
    .string()
    .default("")
    .describe("dotted path of the prompt text in a row (e.g. extra_info.question); empty = detected"),
  sourceField: z
    .string()
    .default("")
    .describe("dotted path of the row's source (for select and stats); empty = detected"),
  requireResponse: z
    .boolean()
    .default(false)
    .describe("count rows without a response as malformed (SFT data)"),
};

const DedupSchema = z.strictObject({
  ...rowFields,
  exact: z.boolean().default(true).describe("remove rows whose normalised prompt equals an earlier one's"),
  near: z.boolean().default(true).describe("remove MinHash-LSH near duplicates"),
  threshold: z
    .number()
    .gt(0)
    .max(1)
    .default(0.8)
    .describe("Jaccard similarity that counts as a near duplicate"),
  numPerm: z.number().int().positive().default(128).describe("MinHash permutations"),
  shingleSize: z.number().int().positive().default(3).describe("words per shingle"),
  bands: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe("LSH bands; null = optimal for threshold"),
  rows: z.number().int().positive().nullable().default(null).describe("LSH rows per band; null = optimal"),
  seed: z.number().int().default(1).describe("seeds the MinHash permutations"),
});

const DecontamSchema = z.strictObject({
  ...rowFields,
  benchmarks: z
    .array(z.string().min(1))
    .default([])
    .describe('benchmark names (as klear eval names them) or files; "all" = the eval suite; required'),
  ngram: z
    .number()
    .int()
    .positive()
    .default(9)
    .describe("shared n-word window that marks a row contaminated (paper: 9)"),
  benchDir: z
    .string()
    .default("")
    .describe("folder of local benchmark copies; empty = $KLEAR_BENCHMARK_DIR or ../shared/data/benchmarks"),
});

const SelectSchema = z.strictObject({
  ...rowFields,
  scores: z
    .string()
    .default("")
    .describe("JSON file of quality scores per source; empty = computed by scoreRule"),
  scoreRule: z
    .enum(SOURCE_SCORE_RULES)
    .default("hard-fraction")
    .describe("how a source's quality is computed"),
  topKSources: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe("keep only the K best sources; null = all"),
  mix: z
    .record(z.string(), z.number().min(0))
    .default({})
    .describe("mix sources by these ratios, e.g. {a: 0.7, b: 0.3}"),
  total: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe("rows to keep with mix; null = as many as the ratios allow"),
  kCenter: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe("pick N diverse rows by K-Center Greedy; null = off"),
  vectorDim: z.number().int().positive().default(256).describe("hashed n-gram vector size for K-Center"),
  seed: z.number().int().default(0).describe("seeds sampling and K-Center"),
});

const TagSchema = z.strictObject({
  ...rowFields,
  endpoints: z
    .array(z.string().min(1))
    .default([])
    .describe("OpenAI-compatible server URLs (vLLM, SGLang); required"),
  model: z.string().default("").describe("the model name the server serves; required"),
  n: z.number().int().positive().default(16).describe("samples per problem"),
  temperature: z.number().min(0).default(0.6).describe("sampling temperature"),
  topP: z.number().gt(0).max(1).default(0.95).describe("nucleus sampling"),
  maxTokens: z.number().int().positive().default(4096).describe("longest sampled response"),
  concurrency: z.number().int().positive().default(8).describe("requests in flight"),
  easyAtLeast: z
    .number()
    .min(0)
    .max(1)
    .default(0.75)
    .describe("pass rate at or above which a problem is easy"),
  hardBelow: z.number().min(0).max(1).default(0.25).describe("pass rate below which a problem is hard"),
  rlFilter: z
    .boolean()
    .default(false)
    .describe(
      "apply the paper's RL keep rule: math needs a majority of correct samples, code enough tests and passes",
    ),
  mathMajority: z
    .enum(["more-than-half", "at-least-half"])
    .default("more-than-half")
    .describe("RL filter: a math majority is more than half (9 of 16) or at least half (8 of 16)"),
  codeMinTests: z.number().int().min(0).default(16).describe("RL filter: fewest tests a code problem needs"),
  codeMinPassRate: z
    .number()
    .min(0)
    .max(1)
    .default(0.5)
    .describe("RL filter: lowest fraction of samples passing all tests"),
});

const ConvertSchema = z.strictObject({
  ...rowFields,
  to: z
    .enum(ROW_FORMATS)
    .default("same")
    .describe("verl (RL rows), chat (SFT messages), problem, or same (re-encode)"),
  dataSource: z.string().default("").describe("verl data_source; empty = the row's source"),
  ability: z.string().default("").describe("verl ability (math, code); empty = detected"),
  split: z.string().default("").describe("verl extra_info.split (adds extra_info.index); empty = none"),
});

const StatsSchema = z.strictObject({
  ...rowFields,
  html: z.string().default("").describe("write an HTML report here"),
  json: z.string().default("").describe("write the figures as JSON here"),
  tokenizer: z
    .string()
    .default("")
    .describe("model folder or tokenizer.json to count tokens; empty = approximate"),
});

function parseMix(spec: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of spec.split(",")) {
    const m = /^(.+)=([\d.eE+-]+)$/.exec(part.trim());
    if (!m) {
      throw new ConfigError(
        `--mix entry "${part}" is not source=ratio`,
        "e.g. --mix openthoughts=0.7,numina=0.3",
      );
    }
    out[m[1]] = Number(m[2]);
  }
  return out;
}

export interface DataSubcommand<S extends z.ZodType = z.ZodType> {
  name: string;
  /** One line of usage after `klear data NAME`. */
  usage: string;
  schema: S;
  aliases: FlagAlias[];
  /** Flags outside the config (a secret never written anywhere). */
  extraStringFlags?: string[];
}

const sub = <S extends z.ZodType>(d: DataSubcommand<S>) => d;

export const DATA_SUBCOMMANDS = {
  dedup: sub({
    name: "dedup",
    usage:
      "INPUT... --out OUT [--no-exact] [--no-near] [--threshold 0.8] [--num-perm 128] [--shingle 3] [--bands B --rows R] [--seed 1]",
    schema: DedupSchema,
    aliases: kebabFlagAliases(DedupSchema, {
      exact: [{ flag: "no-exact", kind: "false" }],
      near: [{ flag: "no-near", kind: "false" }],
      shingleSize: [{ flag: "shingle", kind: "number" }],
    }),
  }),
  decontam: sub({
    name: "decontam",
    usage: "INPUT... --out OUT --bench NAME_OR_FILE [--bench ...] [--ngram 9] [--bench-dir DIR]",
    schema: DecontamSchema,
    aliases: kebabFlagAliases(DecontamSchema, { benchmarks: [{ flag: "bench", kind: "list" }] }),
  }),
  select: sub({
    name: "select",
    usage:
      "INPUT... --out OUT [--scores FILE.json | --score-rule hard-fraction|mean-response-tokens|rows] [--top-k-sources K] [--mix src=ratio,src=ratio] [--total N] [--k-center N] [--dim 256] [--seed 0]",
    schema: SelectSchema,
    aliases: kebabFlagAliases(SelectSchema, {
      mix: [{ flag: "mix", kind: "string", parse: parseMix }],
      vectorDim: [{ flag: "dim", kind: "number" }],
    }),
  }),
  tag: sub({
    name: "tag",
    usage:
      "INPUT... --out OUT --endpoint URL --model NAME [--n 16] [--temperature 0.6] [--top-p 0.95] [--max-tokens 4096] [--concurrency 8] [--easy-at-least 0.75] [--hard-below 0.25] [--rl-filter] [--math-majority more-than-half|at-least-half] [--code-min-tests 16] [--code-min-pass-rate 0.5] [--api-key KEY]",
    schema: TagSchema,
    extraStringFlags: ["api-key"],
    aliases: kebabFlagAliases(TagSchema, { endpoints: [{ flag: "endpoint", kind: "list" }] }),
  }),
  convert: sub({
    name: "convert",
    usage:
      "INPUT... --out OUT [--to verl|chat|problem|same] [--data-source NAME] [--ability math|code] [--split train]",
    schema: ConvertSchema,
    aliases: kebabFlagAliases(ConvertSchema),
  }),
  stats: sub({
    name: "stats",
    usage: "INPUT... [--html OUT.html] [--json OUT.json] [--tokenizer MODEL_DIR|tokenizer.json]",
    schema: StatsSchema,
    aliases: kebabFlagAliases(StatsSchema),
  }),
};

export type DataSubcommandName = keyof typeof DATA_SUBCOMMANDS;
export const DATA_SUBCOMMAND_NAMES = Object.keys(DATA_SUBCOMMANDS) as DataSubcommandName[];
export type DataConfig<K extends DataSubcommandName> = z.infer<(typeof DATA_SUBCOMMANDS)[K]["schema"]>;

/** preset (`default`: every field's default) → config file → short flags and `--a.b=c` overrides. */
export function resolveDataConfig<K extends DataSubcommandName>(
  name: K,
  layers: ConfigLayers,
): DataConfig<K> {
  const d = DATA_SUBCOMMANDS[name] as DataSubcommand;
  const command = `data ${name}`;
  return resolveConfig(
    {
      command,
      presets: { default: {} },
      parse: (value, source) => parseConfigWith(d.schema, value, source, command),
      exampleSection: Object.keys((d.schema as unknown as { shape: object }).shape).at(-1) ?? "",
    },
    layers,
  ) as DataConfig<K>;
}

/** Every field of a subcommand's config with its default, meaning and short flag, for `--help`. */
export function describeDataConfig(name: DataSubcommandName): string {
  const d = DATA_SUBCOMMANDS[name] as DataSubcommand;
  return describeConfig(d.schema, { aliases: d.aliases, flagWidth: 44 });
}
