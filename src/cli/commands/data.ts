import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  type DataManifest,
  runConvert,
  runDecontam,
  runDedup,
  runSelect,
  runStats,
  runTag,
  sidecarPaths,
} from "../../data/pipeline.js";
import { ROW_FORMATS, type RowFormat } from "../../data/rows.js";
import { SOURCE_SCORE_RULES, type SourceScoreRule } from "../../data/select.js";
import { codeScorer, mathScorer, openAiCompatibleSampler, type ResponseScorer } from "../../data/tag.js";
import { ConfigError, checkChoice } from "../../util/errors.js";

export const summary = "curate SFT/RL data: dedup | decontam | select | tag | convert | stats";

const USAGE = `usage: klear data <subcommand> INPUT... [options]

subcommands (INPUT and --out are .jsonl or .parquet; every output is written atomically with
OUT.manifest.json (input hashes, parameters, counts removed per rule), OUT.removed.jsonl (each
removed row with its file, line and reason) and OUT.malformed.jsonl (each unreadable row)):

  dedup     INPUT... --out OUT [--no-exact] [--no-near] [--threshold 0.8] [--num-perm 128]
            [--shingle 3] [--bands B --rows R] [--seed 1]
  decontam  INPUT... --out OUT --bench NAME_OR_FILE [--bench ...] [--ngram 9] [--bench-dir DIR]
            names: aime24 aime25 hmmt_feb_2025 math500 amc23 gsm8k lcb_v5 lcb_v6, or "all" (the eval
            suite); local copies in --bench-dir, default $KLEAR_BENCHMARK_DIR or ../shared/data/benchmarks
  select    INPUT... --out OUT [--scores FILE.json | --score-rule hard-fraction|mean-response-tokens|rows]
            [--top-k-sources K] [--mix src=ratio,src=ratio] [--total N] [--k-center N] [--dim 256] [--seed 0]
  tag       INPUT... --out OUT --endpoint URL --model NAME [--n 16] [--temperature 0.6] [--top-p 0.95]
            [--max-tokens 4096] [--concurrency 8] [--easy-at-least 0.75] [--hard-below 0.25]
            [--rl-filter] [--math-majority more-than-half|at-least-half] [--code-min-tests 16]
            [--code-min-pass-rate 0.5]
  convert   INPUT... --out OUT [--to verl|chat|problem|same] [--data-source NAME] [--ability math|code]
            [--split train]
  stats     INPUT... [--html OUT.html] [--json OUT.json] [--tokenizer MODEL_DIR|tokenizer.json]

common options: --text-field a.b (where the prompt is; detected by default), --require-response,
--source-field a.b, --quiet`;

const COMMON = {
  out: { type: "string", short: "o" },
  "text-field": { type: "string" },
  "source-field": { type: "string" },
  "require-response": { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

function num(v: string | undefined, flag: string, dflt?: number): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n))
    throw new ConfigError(`--${flag} must be a number, got "${v}"`, `e.g. --${flag}=16`);
  return n;
}

function needOut(out: string | undefined, sub: string): string {
  if (!out)
    throw new ConfigError(`klear data ${sub}: no output file`, "pass --out OUT.jsonl (or OUT.parquet)");
  return out;
}

function parseMix(spec: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of spec.split(",")) {
    const m = /^(.+)=([\d.eE+-]+)$/.exec(part.trim());
    if (!m)
      throw new ConfigError(
        `--mix entry "${part}" is not source=ratio`,
        "e.g. --mix openthoughts=0.7,numina=0.3",
      );
    out[m[1]] = Number(m[2]);
  }
  return out;
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

export async function run(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(USAGE);
    return sub === undefined ? 2 : 0;
  }
  const rest = argv.slice(1);
  switch (sub) {
    case "dedup": {
      const { values: v, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...COMMON,
          "no-exact": { type: "boolean" },
          "no-near": { type: "boolean" },
          threshold: { type: "string" },
          "num-perm": { type: "string" },
          shingle: { type: "string" },
          bands: { type: "string" },
          rows: { type: "string" },
          seed: { type: "string" },
        },
      });
      if (v.help) return usage();
      const out = needOut(v.out, sub);
      const m = await runDedup(positionals, out, {
        exact: !v["no-exact"],
        near: !v["no-near"],
        threshold: num(v.threshold, "threshold"),
        numPerm: num(v["num-perm"], "num-perm"),
        shingleSize: num(v.shingle, "shingle"),
        bands: num(v.bands, "bands"),
        rows: num(v.rows, "rows"),
        seed: num(v.seed, "seed"),
        textField: v["text-field"],
        requireResponse: v["require-response"],
        quiet: v.quiet,
      });
      report(m, out);
      return 0;
    }
    case "decontam": {
      const { values: v, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...COMMON,
          bench: { type: "string", multiple: true },
          ngram: { type: "string" },
          "bench-dir": { type: "string" },
        },
      });
      if (v.help) return usage();
      const out = needOut(v.out, sub);
      const m = await runDecontam(positionals, out, {
        benchmarks: (v.bench ?? []).flatMap((b) => b.split(",")).filter((b) => b !== ""),
        n: num(v.ngram, "ngram"),
        benchmarkDir: v["bench-dir"],
        textField: v["text-field"],
        requireResponse: v["require-response"],
        quiet: v.quiet,
      });
      report(m, out);
      return 0;
    }
    case "select": {
      const { values: v, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...COMMON,
          scores: { type: "string" },
          "score-rule": { type: "string" },
          "top-k-sources": { type: "string" },
          mix: { type: "string" },
          total: { type: "string" },
          "k-center": { type: "string" },
          dim: { type: "string" },
          seed: { type: "string" },
        },
      });
      if (v.help) return usage();
      const out = needOut(v.out, sub);
      const m = await runSelect(positionals, out, {
        sourceScores: v.scores
          ? (JSON.parse(readFileSync(v.scores, "utf8")) as Record<string, number>)
          : undefined,
        scoreRule: v["score-rule"]
          ? checkChoice<SourceScoreRule>("score rule", v["score-rule"], SOURCE_SCORE_RULES)
          : undefined,
        topKSources: num(v["top-k-sources"], "top-k-sources"),
        ratios: v.mix ? parseMix(v.mix) : undefined,
        total: num(v.total, "total"),
        kCenter: num(v["k-center"], "k-center"),
        vectorDim: num(v.dim, "dim"),
        seed: num(v.seed, "seed"),
        textField: v["text-field"],
        sourceField: v["source-field"],
        requireResponse: v["require-response"],
        quiet: v.quiet,
      });
      report(m, out);
      return 0;
    }
    case "tag": {
      const { values: v, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...COMMON,
          endpoint: { type: "string" },
          model: { type: "string" },
          "api-key": { type: "string" },
          n: { type: "string" },
          temperature: { type: "string" },
          "top-p": { type: "string" },
          "max-tokens": { type: "string" },
          concurrency: { type: "string" },
          "easy-at-least": { type: "string" },
          "hard-below": { type: "string" },
          "rl-filter": { type: "boolean" },
          "math-majority": { type: "string" },
          "code-min-tests": { type: "string" },
          "code-min-pass-rate": { type: "string" },
        },
      });
      if (v.help) return usage();
      const out = needOut(v.out, sub);
      if (!v.endpoint || !v.model) {
        throw new ConfigError(
          "klear data tag needs a model to sample from",
          "pass --endpoint http://HOST:PORT/v1 --model NAME (any OpenAI-compatible server: vLLM, SGLang)",
        );
      }
      const scorers: Record<string, ResponseScorer> = { math: mathScorer(), code: codeScorer() };
      const sampler = openAiCompatibleSampler({
        endpoints: v.endpoint.split(","),
        model: v.model,
        apiKey: v["api-key"] ?? process.env.OPENAI_API_KEY,
        concurrency: num(v.concurrency, "concurrency", 8),
        temperature: num(v.temperature, "temperature"),
        topP: num(v["top-p"], "top-p"),
        maxTokens: num(v["max-tokens"], "max-tokens"),
      });
      const m = await runTag(positionals, out, {
        sampler,
        scorers,
        n: num(v.n, "n"),
        concurrency: num(v.concurrency, "concurrency"),
        easyAtLeast: num(v["easy-at-least"], "easy-at-least"),
        hardBelow: num(v["hard-below"], "hard-below"),
        rlFilter: v["rl-filter"],
        mathMajority: v["math-majority"]
          ? checkChoice("math majority rule", v["math-majority"], [
              "more-than-half",
              "at-least-half",
            ] as const)
          : undefined,
        codeMinTests: num(v["code-min-tests"], "code-min-tests"),
        codeMinPassRate: num(v["code-min-pass-rate"], "code-min-pass-rate"),
        textField: v["text-field"],
        requireResponse: v["require-response"],
        quiet: v.quiet,
      });
      sampler.close();
      report(m, out);
      return 0;
    }
    case "convert": {
      const { values: v, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...COMMON,
          to: { type: "string" },
          "data-source": { type: "string" },
          ability: { type: "string" },
          split: { type: "string" },
        },
      });
      if (v.help) return usage();
      const out = needOut(v.out, sub);
      const m = await runConvert(positionals, out, {
        to: v.to ? checkChoice<RowFormat>("row format", v.to, ROW_FORMATS) : "same",
        dataSource: v["data-source"],
        ability: v.ability,
        split: v.split,
        textField: v["text-field"],
        requireResponse: v["require-response"],
        quiet: v.quiet,
      });
      report(m, out);
      return 0;
    }
    case "stats": {
      const { values: v, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...COMMON,
          html: { type: "string" },
          json: { type: "string" },
          tokenizer: { type: "string" },
        },
      });
      if (v.help) return usage();
      if (positionals.length === 0)
        throw new ConfigError("klear data stats: no input files", "give jsonl/parquet files");
      const r = await runStats(positionals, {
        html: v.html,
        json: v.json,
        tokenizer: v.tokenizer,
        sourceField: v["source-field"],
        textField: v["text-field"],
        requireResponse: v["require-response"],
      });
      console.log(r.text.trimEnd());
      const bad = Object.entries(r.malformed.byReason);
      if (bad.length > 0) {
        console.error(`malformed rows (not counted above): ${bad.map(([k, n]) => `${k} ${n}`).join(", ")}`);
        for (const e of r.malformed.examples.slice(0, 5))
          console.error(`  ${e.file}:${e.line}: ${e.reason}: ${e.detail}`);
      }
      if (v.html) console.error(`html: ${v.html}`);
      if (v.json) console.error(`json: ${v.json}`);
      return 0;
    }
    default:
      console.error(
        `klear data: unknown subcommand "${sub}"\n  fix: use one of: dedup, decontam, select, tag, convert, stats`,
      );
      return 2;
  }
}

function usage(): number {
  console.log(USAGE);
  return 0;
}
