import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  describeEvalConfig,
  EVAL_FLAG_ALIASES,
  EVAL_PRESET_NAMES,
  type EvalConfig,
  EvalConfigSchema,
  resolveEvalConfig,
} from "../../eval/config.js";
import {
  benchmarkNames,
  buildMessages,
  createDefaultScorer,
  type EvalGenerator,
  type EvalSamplingParams,
  evaluate,
  formatResultsTable,
  getBenchmark,
  hubCachePath,
  importResponses,
  type LoadedBenchmark,
  LocalEngineGenerator,
  loadBenchmark,
  loadEvalChatTemplate,
  OpenAIGenerator,
} from "../../eval/index.js";
import { SandboxFusionClient } from "../../rewards/code/index.js";
import { atomicWriteJsonSync } from "../../util/atomic.js";
import { acceptedFlags, parseRunCommandArgs, type RunCommandOptions } from "../../util/config.js";
import { ConfigError } from "../../util/errors.js";

export const summary =
  "evaluate a model on AIME/HMMT/MATH-500/LiveCodeBench (resumable; results.json + report.html)";

const USAGE = `usage: klear eval --bench NAME[,NAME…] --out DIR (--model-dir DIR | --endpoint URL --model NAME | --responses FILE.jsonl)
                  [--preset NAME] [--config FILE.json] [--a.b=VALUE ...] [--quiet]
       klear eval --bench NAME --fetch-only      download the benchmark into the hub cache and stop

Generates the missing samples, scores each as it arrives and writes DIR/results.sqlite (resumable),
DIR/results.json, DIR/report.html and DIR/config.json (the resolved config: \`klear eval --config
DIR/config.json --out DIR\` reruns it). Rerun the same command after an interruption: finished samples
are never asked for again.

benchmarks: ${benchmarkNames().join(", ")} (aliases: lcb_v5, lcb_v6, …)

generation, one of:
  --model-dir DIR         an HF-style Qwen3 checkpoint folder, run by the local engine (a folder given to
                          --model without --endpoint is taken as one too)
  --endpoint URL --model NAME
                          an OpenAI-compatible server (vLLM, SGLang, …); repeat or comma-separate --endpoint
                          to load-balance; --api completions --chat-template DIR renders prompts here
  --responses FILE.jsonl  score responses you already have (rows: {id|problem, response|responses} or
                          Klear's inference output {meta, messages}); needs exactly one --bench

other options:
  --preset NAME           starting config: ${EVAL_PRESET_NAMES.join(", ")} (default paper)
  --config FILE.json      fields to change, layered over the preset (e.g. a run's DIR/config.json)
  --a.b=VALUE             change one field (e.g. --sampling.temperature=1), layered last
  --api-key KEY           server API key (default $OPENAI_API_KEY; never written to config.json)
  --fetch-only            download the benchmarks into the hub cache, then stop (on a machine with network)
  --quiet                 no progress bar

config fields (default = paper; the short flag that sets a field is shown beside it):
`;

/** The command line of `klear eval`: its config fields, their short flags and the extra flags. */
export const COMMAND_LINE: Omit<RunCommandOptions, "help"> = {
  aliases: EVAL_FLAG_ALIASES,
  extraStringFlags: ["api-key"],
  extraBooleanFlags: ["fetch-only"],
  resume: false,
};

/** Every flag `klear eval` accepts (a fix hint may name only these). */
export function flags(): Set<string> {
  return acceptedFlags(EvalConfigSchema, COMMAND_LINE);
}

/** An argument as the shell needs it typed. */
function shellWord(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** The user's command with `--model X` turned into `--model-dir X`. */
function withModelDir(argv: readonly string[]): string {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--model") out.push("--model-dir");
    else if (argv[i].startsWith("--model=")) out.push(`--model-dir=${argv[i].slice(8)}`);
    else out.push(argv[i]);
  }
  return `klear eval ${out.map(shellWord).join(" ")}`;
}

function isModelFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/**
 * What generates the responses. A `--model` that names a folder on disk and no server is a local
 * checkpoint (vLLM's own `--model` takes a path too); a name that is no folder and no server is an error
 * that shows the `--model-dir` form of the user's command.
 */
function resolveGeneration(config: EvalConfig, argv: readonly string[], quiet: boolean): EvalConfig {
  const g = config.generation;
  if (g.responses || g.modelDir || g.endpoints.length > 0) return config;
  if (g.model && isModelFolder(g.model)) {
    if (!quiet)
      console.error(`klear eval: --model ${g.model} is a folder here: running it with the local engine`);
    return { ...config, generation: { ...g, modelDir: g.model, model: "" } };
  }
  if (g.model) {
    throw new ConfigError(
      `nothing to generate with: --model ${g.model} names a model on a server, and no --endpoint was given (and ${g.model} is no folder here)`,
      `for a local checkpoint folder pass --model-dir: ${withModelDir(argv)}; for a server add --endpoint URL`,
    );
  }
  throw new ConfigError(
    "nothing to generate with",
    "pass --model-dir DIR (the local engine), --endpoint URL --model NAME (a server) or --responses FILE.jsonl",
  );
}

/** Stops before the run when a prompt leaves no room in the local model's context (each request would fail). */
function checkPromptsFit(
  generator: LocalEngineGenerator,
  benches: LoadedBenchmark[],
  template: string,
): void {
  const { positions, dir } = generator.context;
  for (const b of benches) {
    const lengths = generator.promptTokens(b.problems.map((p) => buildMessages(p, template)));
    const tooLong = lengths.filter((n) => n >= positions).length;
    if (tooLong === 0) continue;
    const longest = Math.max(...lengths);
    let raw = "";
    if (b.spec.kind === "math" && template !== "raw") {
      const rawLongest = Math.max(...generator.promptTokens(b.problems.map((p) => buildMessages(p, "raw"))));
      if (rawLongest < positions) raw = `, or --prompt raw (the bare problem: at most ${rawLongest} tokens)`;
    }
    throw new ConfigError(
      `${b.spec.name}: ${tooLong} of ${lengths.length} prompts do not fit the model's context: the longest is ${longest} tokens, and ${dir} has a ${positions}-token context (max_position_embeddings), which must also hold the response`,
      `use a checkpoint whose context is above ${longest} tokens (max_position_embeddings in ${join(dir, "config.json")})${raw}`,
    );
  }
}

function samplingOf(c: EvalConfig): Partial<EvalSamplingParams> {
  const s = c.sampling;
  const sampling: Partial<EvalSamplingParams> = {
    temperature: s.temperature,
    topP: s.topP,
    maxTokens: s.maxTokens,
  };
  if (s.topK !== null) sampling.topK = s.topK;
  if (s.repetitionPenalty !== null) sampling.repetitionPenalty = s.repetitionPenalty;
  return sampling;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseRunCommandArgs("eval", argv, {
    ...COMMAND_LINE,
    help: () => USAGE + describeEvalConfig(),
  });
  if (!args) return 0;
  const { values } = args;
  const quiet = values.quiet === true;
  let config = resolveEvalConfig({
    preset: values.preset as string | undefined,
    configFile: values.config as string | undefined,
    overrides: args.overrides,
  });
  if (config.bench.length === 0) {
    throw new ConfigError("--bench is required", "e.g. --bench aime24,aime25 (see klear eval --help)");
  }
  for (const name of config.bench) getBenchmark(name);
  const loadOpts = {
    data: config.data.path || undefined,
    limit: config.data.limit || undefined,
    hub: { cacheDir: config.data.cacheDir || undefined },
  };
  if (values["fetch-only"]) {
    for (const name of config.bench) {
      const b = await loadBenchmark(name, loadOpts);
      const files = loadOpts.data
        ? b.source
        : b.spec.hub.files.map((f) => hubCachePath(b.spec.hub.repo, f, loadOpts.hub));
      console.log(`${b.spec.name}: ${b.problems.length} problems in ${files.join(", ")}`);
    }
    return 0;
  }
  const out = values.out as string | undefined;
  if (!out) throw new ConfigError("--out is required", "give a run folder, e.g. --out runs/eval-aime");
  if (config.generation.responses && config.bench.length !== 1) {
    throw new ConfigError("--responses scores one benchmark", "pass exactly one --bench with --responses");
  }
  config = resolveGeneration(config, argv, quiet);
  const g = config.generation;

  const enableThinking = g.enableThinking ?? undefined;
  if (enableThinking !== undefined && !g.modelDir && !(g.api === "completions" && g.chatTemplate)) {
    throw new ConfigError(
      `--${enableThinking ? "" : "no-"}enable-thinking switches the chat template klear renders, and this run renders none`,
      "use it with --model-dir DIR or --api completions --chat-template DIR (with --api chat the server applies its own template)",
    );
  }

  const benches: LoadedBenchmark[] = [];
  for (const name of config.bench) benches.push(await loadBenchmark(name, loadOpts));

  let n = config.sampling.n ?? undefined;
  let generator: EvalGenerator | undefined;
  let model = g.model || "unknown";
  if (g.responses) {
    const imported = await importResponses(g.responses, benches[0], out);
    if (!quiet) {
      console.error(
        `klear eval: loaded ${imported.samples} new responses from ${g.responses}` +
          (imported.unmatched
            ? ` (${imported.unmatched} rows matched no ${benches[0].spec.name} problem and were skipped)`
            : ""),
      );
    }
    n ??= Math.max(1, imported.maxPerProblem);
    if (!g.model) model = `responses:${g.responses}`;
  } else if (g.modelDir) {
    const local = await LocalEngineGenerator.load(g.modelDir, { enableThinking });
    checkPromptsFit(local, benches, config.sampling.prompt);
    generator = local;
    model = g.model || g.modelDir;
  } else {
    if (!g.model)
      throw new ConfigError("--model is required with --endpoint", "pass the served model's name");
    const chatTemplate = g.chatTemplate
      ? await loadEvalChatTemplate(g.chatTemplate, { enableThinking })
      : undefined;
    if (g.api === "completions" && !chatTemplate) {
      throw new ConfigError(
        "--api completions sends raw prompts, so it needs the model's chat template",
        "pass --chat-template MODEL_DIR (or tokenizer_config.json), or use --api chat",
      );
    }
    generator = new OpenAIGenerator({
      endpoints: g.endpoints,
      model,
      api: g.api,
      chatTemplate,
      apiKey: (values["api-key"] as string | undefined) ?? process.env.OPENAI_API_KEY,
      concurrency: g.concurrency,
      timeoutMs: g.timeoutSeconds * 1000,
      maxRetries: g.maxRetries,
    });
  }

  // The run fingerprint (which guards a resumed run against other settings) covers the model name, so the
  // switch joins it there: thinking and non-thinking samples never mix in one run folder.
  if (enableThinking !== undefined && generator) model = `${model} [enable_thinking=${enableThinking}]`;

  const configPath = join(out, "config.json");
  // Written first for a new run folder (so an interrupted run keeps it) and again at the end, so it always
  // describes the run whose figures are in results.json.
  if (!existsSync(configPath)) atomicWriteJsonSync(configPath, config);
  const scorer = createDefaultScorer({
    codeTimeoutMs: config.scoring.codeTimeoutMs,
    sandbox: config.scoring.sandboxUrl
      ? new SandboxFusionClient({ url: config.scoring.sandboxUrl })
      : config.scoring.unsafeNoSandbox
        ? "unsafe-none"
        : "bwrap",
  });
  try {
    const outcome = await evaluate({
      benchmarks: benches,
      generator,
      scorer,
      outDir: out,
      n,
      sampling: samplingOf(config),
      promptTemplate: config.sampling.prompt,
      seed: config.sampling.seed,
      model,
      ks: config.scoring.ks.length > 0 ? config.scoring.ks : undefined,
      bootstrap: config.scoring.bootstrap,
      scoreConcurrency: config.scoring.concurrency,
      progress: { silent: quiet },
    });
    atomicWriteJsonSync(configPath, config);
    console.log(formatResultsTable(outcome.results));
    console.log(
      `\nresults: ${outcome.resultsPath}${outcome.reportPath ? `\nreport:  ${outcome.reportPath}` : ""}\nconfig:  ${configPath}`,
    );
    for (const b of outcome.results.benchmarks) {
      const short = b.perProblem.filter((p) => p.n < b.n).length;
      if (short && !generator) {
        console.error(
          `klear eval: ${b.name}: ${short} problems have fewer than ${b.n} responses (${b.missingSamples} missing); their figures use the samples present`,
        );
      }
    }
    if (outcome.failed > 0) {
      console.error(
        `klear eval: ${outcome.failed} requests failed for good; rerun the same command to retry only those (results so far are written)`,
      );
      return 1;
    }
    return 0;
  } finally {
    generator?.close?.();
    await scorer.close?.();
  }
}
