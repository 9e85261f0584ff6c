import { parseArgs } from "node:util";
import {
  CODE_FORMAT_ERROR_REWARD,
  CODE_MISSING_THINK_CLOSE_REWARD,
  CODE_MISSING_THINK_OPEN_REWARD,
  CODE_REWARD_MODES,
  type CodeExecutor,
  CodeRunnerPool,
  type CodeTest,
  codeReward,
  extractCode,
  fnNameFromStarter,
  SandboxFusionClient,
  sampleCodeTests,
} from "../../rewards/code/index.js";
import { atomicWriteFile } from "../../util/atomic.js";
import { ConfigError, checkChoice, KlearError } from "../../util/errors.js";
import { readJsonl } from "../../util/jsonl.js";
import { createProgress } from "../../util/progress.js";

export const summary =
  "run generated Python against tests in a sandbox and add verdicts and rewards to a JSONL file";

const HELP = `usage: klear verify code --in FILE.jsonl --out FILE.jsonl [options]

Each input line has \`response\` (a model response; the last \`\`\`python block after </think> is run)
or \`code\` (a bare program), \`tests\` ([{input, output, testtype: "stdin"|"functional"}], or Klear's
ground truth {"inputs": [...], "outputs": [...]}, either as JSON or a JSON string) and, for
functional tests, \`fn_name\` or \`starter_code\`. Each line is written back with \`passed\`,
\`pass_rate\`, \`reward\` and per-test \`verdicts\` added.

options:
  --reward MODE            hard | soft | pass-rate (default hard). soft = 2·pass_rate − 1 (Klear)
  --max-tests N            sample at most N tests per line with --seed (default: all; Klear uses 16)
  --seed N                 test-sampling seed (default 0)
  --timeout-ms MS          wall limit per test (default 6000)
  --memory-mb MB           address-space limit per test (default 1024)
  --[no-]stop-at-first-failure  (default: stop for hard, run all for soft and pass-rate)
  --concurrency N          solutions at once (default: number of cores)
  --think-gate             Klear's gate for responses: no </think> → reward −0.5, no <think> → −2
  --sandbox-url URL        run on a SandboxFusion server instead of locally
  --unsafe-no-sandbox      run WITHOUT isolation (trusted code only)
  --quiet                  no progress output`;

interface Row {
  line: number;
  value: Record<string, unknown>;
}

/** Accepts LCB-style test lists and Klear's {"inputs", "outputs"} ground truth, raw or as JSON strings. */
function testsOf(row: Record<string, unknown>, where: string): CodeTest[] {
  let t = row.tests;
  if (t === undefined && row.reward_model && typeof row.reward_model === "object") {
    t = (row.reward_model as Record<string, unknown>).ground_truth;
  }
  if (typeof t === "string") {
    try {
      t = JSON.parse(t);
    } catch {
      throw new KlearError(
        "CODE_TESTS_INVALID",
        `${where}: "tests" is a string but not JSON`,
        "store tests as a JSON list",
      );
    }
  }
  if (t && typeof t === "object" && !Array.isArray(t)) {
    const gt = t as Record<string, unknown>;
    if (Array.isArray(gt.inputs) && Array.isArray(gt.outputs)) {
      const join = (x: unknown) => (Array.isArray(x) ? x.join(", ") : String(x));
      return gt.inputs.map((input, k) => ({
        input: join(input),
        output: join((gt.outputs as unknown[])[k]),
        testtype: "stdin",
      }));
    }
  }
  if (!Array.isArray(t)) {
    throw new KlearError(
      "CODE_TESTS_INVALID",
      `${where}: no "tests" list`,
      'give "tests": [{"input": "...", "output": "...", "testtype": "stdin"}]',
    );
  }
  return t.map((x, k) => {
    const o = x as Record<string, unknown>;
    if (typeof o?.input !== "string" || typeof o?.output !== "string") {
      throw new KlearError(
        "CODE_TESTS_INVALID",
        `${where}: tests[${k}] needs string "input" and "output"`,
        "fix that test case",
      );
    }
    const testtype = o.testtype === "functional" ? "functional" : "stdin";
    return { input: o.input, output: o.output, testtype };
  });
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      in: { type: "string" },
      out: { type: "string" },
      reward: { type: "string", default: "hard" },
      "max-tests": { type: "string" },
      seed: { type: "string", default: "0" },
      "timeout-ms": { type: "string", default: "6000" },
      "memory-mb": { type: "string", default: "1024" },
      "stop-at-first-failure": { type: "boolean" },
      "no-stop-at-first-failure": { type: "boolean" },
      concurrency: { type: "string" },
      "sandbox-url": { type: "string" },
      "think-gate": { type: "boolean", default: false },
      "unsafe-no-sandbox": { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.in || !values.out)
    throw new ConfigError("klear verify code needs --in and --out", "pass --in FILE.jsonl --out FILE.jsonl");
  const mode = checkChoice("--reward", values.reward as string, CODE_REWARD_MODES);
  const int = (name: string, raw: string | undefined, min: number): number | undefined => {
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new ConfigError(
        `--${name} must be an integer >= ${min}, got "${raw}"`,
        `pass e.g. --${name}=${Math.max(min, 1)}`,
      );
    return n;
  };
  const maxTests = int("max-tests", values["max-tests"], 1) ?? Number.POSITIVE_INFINITY;
  const seed = int("seed", values.seed, 0) ?? 0;
  const timeoutMs = int("timeout-ms", values["timeout-ms"], 1) ?? 6000;
  const memoryMb = int("memory-mb", values["memory-mb"], 16) ?? 1024;
  const concurrency = int("concurrency", values.concurrency, 1);
  const stopAtFirstFailure = values["no-stop-at-first-failure"]
    ? false
    : (values["stop-at-first-failure"] ?? mode === "hard");
  let sandbox: "bwrap" | "unsafe-none" | CodeExecutor = "bwrap";
  if (values["sandbox-url"]) sandbox = new SandboxFusionClient({ url: values["sandbox-url"] });
  else if (values["unsafe-no-sandbox"]) sandbox = "unsafe-none";
  const pool = new CodeRunnerPool({ concurrency, sandbox });

  const rows: Row[] = [];
  for await (const l of readJsonl(values.in)) {
    if (!l.ok)
      throw new KlearError(
        "JSONL_MALFORMED",
        `${values.in}:${l.line}: not valid JSON (${l.error})`,
        "fix or remove that line",
      );
    if (typeof l.value !== "object" || l.value === null || Array.isArray(l.value)) {
      throw new KlearError(
        "JSONL_MALFORMED",
        `${values.in}:${l.line}: expected a JSON object`,
        "each line must be one JSON object",
      );
    }
    rows.push({ line: l.line, value: l.value as Record<string, unknown> });
  }
  const progress = createProgress("verify code", rows.length, { unit: "solutions", silent: values.quiet });
  let passedCount = 0;
  const outputs = await Promise.all(
    rows.map(async ({ line, value }) => {
      const where = `${values.in}:${line}`;
      const tests = sampleCodeTests(testsOf(value, where), { max: maxTests, seed });
      const code =
        typeof value.code === "string"
          ? value.code
          : typeof value.response === "string"
            ? extractCode(value.response)
            : null;
      if (typeof value.code !== "string" && typeof value.response !== "string") {
        throw new KlearError(
          "CODE_INPUT_INVALID",
          `${where}: neither "response" nor "code" is a string`,
          'add a "response" or "code" field',
        );
      }
      let out: Record<string, unknown>;
      const response = typeof value.code === "string" ? null : (value.response as string);
      const gate =
        !values["think-gate"] || response === null
          ? null
          : !response.includes("</think>")
            ? { reward: CODE_MISSING_THINK_CLOSE_REWARD, error: "no </think>" }
            : !response.includes("<think>")
              ? { reward: CODE_MISSING_THINK_OPEN_REWARD, error: "no <think>" }
              : null;
      if (gate) {
        out = { ...value, passed: false, pass_rate: 0, ...gate, verdicts: [] };
      } else if (code === null) {
        out = {
          ...value,
          passed: false,
          pass_rate: 0,
          reward: CODE_FORMAT_ERROR_REWARD,
          verdicts: [],
          error: "no ```python block after </think>",
        };
      } else {
        const fnName =
          typeof value.fn_name === "string"
            ? value.fn_name
            : fnNameFromStarter(value.starter_code as string | undefined);
        const result = await pool.run(code, tests, { fnName, timeoutMs, memoryMb, stopAtFirstFailure });
        out = {
          ...value,
          passed: result.passed,
          pass_rate: result.passRate,
          reward: codeReward(result, mode),
          verdicts: result.verdicts,
        };
        if (result.passed) passedCount++;
      }
      progress.tick(1, { passed: passedCount });
      return out;
    }),
  );
  progress.stop();
  await atomicWriteFile(values.out, outputs.map((o) => `${JSON.stringify(o)}\n`).join(""));
  if (!values.quiet) {
    process.stderr.write(
      `verify code: ${passedCount}/${rows.length} passed every test; wrote ${values.out}\n`,
    );
  }
  return 0;
}
