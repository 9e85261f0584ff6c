import { parseArgs } from "node:util";
import {
  createDefaultScorer,
  type EvalGenerator,
  type EvalSamplingParams,
  evaluate,
  formatResultsTable,
  getBenchmark,
  importResponses,
  type LoadedBenchmark,
  LocalEngineGenerator,
  loadBenchmark,
  loadEvalChatTemplate,
  OpenAIGenerator,
} from "../../eval/index.js";
import { SandboxFusionClient } from "../../rewards/code/index.js";
import { ConfigError } from "../../util/errors.js";

export const summary =
  "evaluate a model on AIME/HMMT/MATH-500/LiveCodeBench (resumable; results.json + report.html)";

const HELP = `usage: klear eval --bench NAME[,NAME…] --out DIR (--endpoint URL --model NAME | --model-dir DIR | --responses FILE.jsonl) [options]

benchmarks: aime24, aime25, hmmt_feb_2025, math500, amc23, gsm8k, livecodebench, livecodebench_v5, livecodebench_v6
  --data PATH             a benchmark file, or a folder holding it (else: the Hugging Face hub, cached)
  --cache-dir DIR         hub cache (default $KLEAR_CACHE/hub or ~/.cache/klear/hub; HF_ENDPOINT, HF_TOKEN honoured)
  --limit N               only the first N problems of each benchmark

generation, local engine (small checkpoints on this machine):
  --model-dir DIR         an HF-style Qwen3 checkpoint folder (config.json, safetensors, tokenizer)
  --enable-thinking, --no-enable-thinking
                          Qwen3's thinking switch in the chat template klear renders (--model-dir, or
                          --api completions --chat-template); default: the template's own (thinking on)

generation (OpenAI-compatible server: vLLM, SGLang, …):
  --endpoint URL          server base URL; repeat or comma-separate to load-balance over several
  --model NAME            model name the server serves
  --api chat|completions  chat (server applies the chat template, default) or completions (needs --chat-template)
  --chat-template DIR     model folder whose chat template renders prompts (with --api completions)
  --api-key KEY           default $OPENAI_API_KEY
  --n K                   samples per problem (default: 64 AIME/HMMT, 8 LiveCodeBench, …)
  --temperature T         default 0.6
  --top-p P               default 0.95
  --top-k K               default off
  --max-tokens M          default 32768
  --repetition-penalty R  default off
  --seed S                run seed (per-sample seeds derive from it; default 0)
  --prompt r1|raw|TEMPLATE  math prompt: DeepSeek-R1 style (default), the bare problem, or text with {problem}
  --concurrency C         requests in flight (default 64)
  --timeout SECONDS       per-request timeout (default 3600)
  --max-retries R         retries on 429/5xx/timeouts/dropped connections (default 8)

offline scoring:
  --responses FILE.jsonl  score responses you already have (rows: {id|problem, response|responses} or Klear's
                          inference output {meta, messages}); needs exactly one --bench

scoring and output:
  --out DIR               run folder: results.sqlite (resumable), results.json, report.html
  --ks 1,4,16             pass@k / maj@k values (default powers of two up to n)
  --bootstrap B           bootstrap resamples for the 95% CIs (default 1000)
  --code-timeout MS       per-test limit for code (default 6000)
  --score-concurrency C   responses scored at once (default 8)
  --sandbox-url URL       run code on a SandboxFusion server instead of the local bubblewrap sandbox
  --unsafe-no-sandbox     run generated code WITHOUT isolation (trusted code only)
  --quiet                 no progress bar

Rerun the same command after an interruption: finished samples are never asked for again.`;

function num(name: string, v: string | undefined, int = false): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x))) {
    throw new ConfigError(
      `--${name} "${v}" is not ${int ? "an integer" : "a number"}`,
      `pass --${name} with a number`,
    );
  }
  return x;
}

function thinkingSwitch(on: boolean | undefined, off: boolean | undefined): boolean | undefined {
  if (on && off) {
    throw new ConfigError(
      "--enable-thinking and --no-enable-thinking contradict each other",
      "pass at most one of them",
    );
  }
  return on ? true : off ? false : undefined;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      bench: { type: "string" },
      data: { type: "string" },
      "cache-dir": { type: "string" },
      limit: { type: "string" },
      endpoint: { type: "string", multiple: true },
      model: { type: "string" },
      "model-dir": { type: "string" },
      api: { type: "string" },
      "chat-template": { type: "string" },
      "enable-thinking": { type: "boolean" },
      "no-enable-thinking": { type: "boolean" },
      "api-key": { type: "string" },
      n: { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      "max-tokens": { type: "string" },
      "repetition-penalty": { type: "string" },
      seed: { type: "string" },
      prompt: { type: "string" },
      concurrency: { type: "string" },
      timeout: { type: "string" },
      "max-retries": { type: "string" },
      responses: { type: "string" },
      out: { type: "string" },
      ks: { type: "string" },
      bootstrap: { type: "string" },
      "code-timeout": { type: "string" },
      "score-concurrency": { type: "string" },
      quiet: { type: "boolean" },
      "sandbox-url": { type: "string" },
      "unsafe-no-sandbox": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.bench)
    throw new ConfigError("--bench is required", "e.g. --bench aime24,aime25 (see klear eval --help)");
  if (!values.out) throw new ConfigError("--out is required", "give a run folder, e.g. --out runs/eval-aime");
  const names = values.bench
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of names) getBenchmark(name);
  const endpoints = (values.endpoint ?? [])
    .flatMap((e) => e.split(","))
    .map((e) => e.trim())
    .filter(Boolean);
  if (values.responses && names.length !== 1) {
    throw new ConfigError("--responses scores one benchmark", "pass exactly one --bench with --responses");
  }
  if (!values.responses && !endpoints.length && !values["model-dir"]) {
    throw new ConfigError(
      "nothing to generate with",
      "pass --endpoint URL --model NAME (a server), --model-dir DIR (the local engine) or --responses FILE.jsonl",
    );
  }
  if (values["model-dir"] && (endpoints.length || values.responses)) {
    throw new ConfigError(
      "--model-dir runs the local engine",
      "pass only one of --model-dir, --endpoint, --responses",
    );
  }

  const enableThinking = thinkingSwitch(values["enable-thinking"], values["no-enable-thinking"]);
  if (
    enableThinking !== undefined &&
    !values["model-dir"] &&
    !(values.api === "completions" && values["chat-template"])
  ) {
    throw new ConfigError(
      `--${enableThinking ? "" : "no-"}enable-thinking switches the chat template klear renders, and this run renders none`,
      "use it with --model-dir DIR or --api completions --chat-template DIR (with --api chat the server applies its own template)",
    );
  }

  const limit = num("limit", values.limit, true);
  const benches: LoadedBenchmark[] = [];
  for (const name of names) {
    benches.push(
      await loadBenchmark(name, { data: values.data, limit, hub: { cacheDir: values["cache-dir"] } }),
    );
  }

  const sampling: Partial<EvalSamplingParams> = {};
  const t = num("temperature", values.temperature);
  if (t !== undefined) sampling.temperature = t;
  const p = num("top-p", values["top-p"]);
  if (p !== undefined) sampling.topP = p;
  const k = num("top-k", values["top-k"], true);
  if (k !== undefined) sampling.topK = k;
  const m = num("max-tokens", values["max-tokens"], true);
  if (m !== undefined) sampling.maxTokens = m;
  const rp = num("repetition-penalty", values["repetition-penalty"]);
  if (rp !== undefined) sampling.repetitionPenalty = rp;

  let n = num("n", values.n, true);
  let generator: EvalGenerator | undefined;
  let model = values.model ?? "unknown";
  if (values.responses) {
    const imported = await importResponses(values.responses, benches[0], values.out);
    if (!values.quiet) {
      console.error(
        `klear eval: loaded ${imported.samples} new responses from ${values.responses}` +
          (imported.unmatched
            ? ` (${imported.unmatched} rows matched no ${names[0]} problem and were skipped)`
            : ""),
      );
    }
    n ??= Math.max(1, imported.maxPerProblem);
    if (!values.model) model = `responses:${values.responses}`;
  } else if (values["model-dir"]) {
    generator = await LocalEngineGenerator.load(values["model-dir"], { enableThinking });
    model = values.model ?? values["model-dir"];
  } else {
    if (!values.model)
      throw new ConfigError("--model is required with --endpoint", "pass the served model's name");
    const api = values.api === "completions" ? "completions" : values.api === undefined ? "chat" : values.api;
    const chatTemplate = values["chat-template"]
      ? await loadEvalChatTemplate(values["chat-template"], { enableThinking })
      : undefined;
    if (api === "completions" && !chatTemplate) {
      throw new ConfigError(
        "--api completions sends raw prompts, so it needs the model's chat template",
        "pass --chat-template MODEL_DIR (or tokenizer_config.json), or use --api chat",
      );
    }
    generator = new OpenAIGenerator({
      endpoints,
      model,
      api: api as "chat" | "completions",
      chatTemplate,
      apiKey: values["api-key"] ?? process.env.OPENAI_API_KEY,
      concurrency: num("concurrency", values.concurrency, true),
      timeoutMs: (num("timeout", values.timeout) ?? 3600) * 1000,
      maxRetries: num("max-retries", values["max-retries"], true),
    });
  }

  // The run fingerprint (which guards a resumed run against other settings) covers the model name, so the
  // switch joins it there: thinking and non-thinking samples never mix in one run folder.
  if (enableThinking !== undefined && generator) model = `${model} [enable_thinking=${enableThinking}]`;

  const scorer = createDefaultScorer({
    codeTimeoutMs: num("code-timeout", values["code-timeout"], true),
    sandbox: values["sandbox-url"]
      ? new SandboxFusionClient({ url: values["sandbox-url"] })
      : values["unsafe-no-sandbox"]
        ? "unsafe-none"
        : "bwrap",
  });
  try {
    const outcome = await evaluate({
      benchmarks: benches,
      generator,
      scorer,
      outDir: values.out,
      n,
      sampling,
      promptTemplate: values.prompt,
      seed: num("seed", values.seed, true),
      model,
      ks: values.ks ? values.ks.split(",").map((s) => num("ks", s.trim(), true)!) : undefined,
      bootstrap: num("bootstrap", values.bootstrap, true),
      scoreConcurrency: num("score-concurrency", values["score-concurrency"], true),
      progress: { silent: values.quiet },
    });
    console.log(formatResultsTable(outcome.results));
    console.log(
      `\nresults: ${outcome.resultsPath}${outcome.reportPath ? `\nreport:  ${outcome.reportPath}` : ""}`,
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
