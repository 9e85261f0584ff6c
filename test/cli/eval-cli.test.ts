import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { run } from "../../src/cli/commands/eval.js";
import { EvalConfigSchema, resolveEvalConfig } from "../../src/eval/config.js";
import type { ConfigError } from "../../src/util/errors.js";

const root = mkdtempSync(join(tmpdir(), "klear-eval-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));
const TINY_MODEL = join(import.meta.dirname, "..", "..", "fixtures", "model", "hf-tiny-qwen3");

const dataFile = join(root, "mini.jsonl");
writeFileSync(
  dataFile,
  [0, 1, 2]
    .map((i) =>
      JSON.stringify({
        messages: [{ role: "user", content: `What is ${i} + ${i}?` }],
        meta: { unique_id: `q${i}`, solution: String(2 * i) },
      }),
    )
    .join("\n"),
);
const responsesFile = join(root, "responses.jsonl");
writeFileSync(
  responsesFile,
  [0, 1, 2]
    .flatMap((i) => [
      { id: `q${i}`, response: `so \\boxed{${2 * i}}` },
      { id: `q${i}`, response: "so \\boxed{-1}" },
    ])
    .map((r) => JSON.stringify(r))
    .join("\n"),
);

/** Runs `klear eval` in-process with stdout and stderr captured. */
async function evalCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => (out += `${a.join(" ")}\n`);
  console.error = (...a: unknown[]) => (err += `${a.join(" ")}\n`);
  try {
    return { code: await run(argv), out, err };
  } finally {
    [console.log, console.error] = [log, error];
  }
}

test("klear eval --config FILE runs the eval a config file describes, and the run folder keeps the resolved config", async () => {
  const configFile = join(root, "eval.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      bench: ["aime24"],
      data: { path: dataFile },
      generation: { responses: responsesFile },
      scoring: { bootstrap: 10 },
    }),
  );
  const out = join(root, "from-config");
  const r = await evalCli(["--config", configFile, "--out", out, "--quiet"]);
  assert.equal(r.code, 0, r.err);
  const b = JSON.parse(readFileSync(join(out, "results.json"), "utf8")).benchmarks[0];
  assert.equal(b.metrics["avg@2"].value, 0.5);
  const saved = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
  assert.deepEqual(saved, resolveEvalConfig({ configFile }));
  assert.deepEqual(saved, EvalConfigSchema.parse(saved), "config.json is a complete, valid config");

  // The saved config reruns the same eval; the old flags and --a.b=c layer over a config file.
  const again = join(root, "again");
  const r2 = await evalCli(["--config", join(out, "config.json"), "--out", again, "--quiet"]);
  assert.equal(r2.code, 0, r2.err);
  assert.equal(
    readFileSync(join(again, "results.json"), "utf8"),
    readFileSync(join(out, "results.json"), "utf8"),
  );
  const layered = resolveEvalConfig({ configFile, overrides: { "sampling.topP": "0.5" } });
  assert.equal(layered.sampling.topP, 0.5);
  assert.equal(layered.scoring.bootstrap, 10);
});

test("flags set config fields and a bad value names its flag", async () => {
  await assert.rejects(
    evalCli(["--bench", "aime24", "--out", join(root, "x"), "--top-p", "abc", "--responses", responsesFile]),
    (e: ConfigError) => /--top-p "abc" is not a number/.test(e.message) && /--top-p/.test(e.fix),
  );
  await assert.rejects(
    evalCli(["--bench", "aime24", "--out", join(root, "x"), "--enable-thinking", "--no-enable-thinking"]),
    /contradict each other/,
  );
  const help = await evalCli(["--help"]);
  for (const field of [
    "--sampling.topP=0.95 (--top-p)",
    '--generation.modelDir="" (--model-dir)',
    "--data.limit=0",
  ])
    assert.ok(help.out.includes(field), `help lists ${field}`);
});

test("a --model name that is no folder, with no server, is an error showing the --model-dir command", async () => {
  // (A folder given to --model is shown running locally by the context test below.)
  const out = join(root, "local");
  const missing = join(root, "runs", "x", "checkpoints", "step-300");
  await assert.rejects(
    evalCli(["--bench", "aime24", "--model", missing, "--out", out]),
    (e: ConfigError) =>
      e.message.includes("nothing to generate with") &&
      e.fix.includes(`klear eval --bench aime24 --model-dir ${missing} --out ${out}`),
  );
});

test("--model FOLDER runs the local engine; a context too short for its prompts stops the run once, before it starts, with both numbers and the fix", async () => {
  const longFile = join(root, "long.jsonl");
  writeFileSync(
    longFile,
    [0, 1]
      .map((i) =>
        JSON.stringify({ problem: `${"Compute the sum of many numbers. ".repeat(40)} (${i})`, answer: "1" }),
      )
      .join("\n"),
  );
  const out = join(root, "short-context");
  const r = evalCli([
    "--bench",
    "math500",
    "--data",
    longFile,
    "--model",
    TINY_MODEL,
    "--out",
    out,
    "--quiet",
    "--n",
    "1",
  ]);
  await assert.rejects(r, (e: ConfigError) => {
    assert.match(
      e.message,
      /math500: 2 of 2 prompts do not fit the model's context: the longest is (\d+) tokens/,
    );
    assert.match(e.message, /128-token context/);
    assert.match(
      e.fix,
      /use a checkpoint whose context is above \d+ tokens \(max_position_embeddings in .*config\.json\)/,
    );
    return true;
  });
  assert.ok(!existsSync(out), "nothing was started");
});
