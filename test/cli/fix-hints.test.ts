import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import * as data from "../../src/cli/commands/data.js";
import * as demo from "../../src/cli/commands/demo.js";
import * as evalCmd from "../../src/cli/commands/eval.js";
import * as rl from "../../src/cli/commands/rl.js";
import { COMMANDS } from "../../src/cli/main.js";
import { DATA_SUBCOMMAND_NAMES } from "../../src/data/config.js";
import { KlearError } from "../../src/util/errors.js";

/**
 * Every fix hint may name only flags that the command it is about accepts. Each scenario below makes a
 * command fail (its own checks and the layers below it: registry, hub cache, config files, row
 * pipeline); the flags its fix names are looked up in the command's own option list. A command quoted in
 * the hint (`klear eval --bench X --fetch-only`) is checked against that command's options instead.
 */
const FLAGS: Record<string, Set<string>> = {
  eval: evalCmd.flags(),
  rl: rl.flags(),
  demo: demo.flags(),
  ...Object.fromEntries(DATA_SUBCOMMAND_NAMES.map((n) => [`data ${n}`, data.flags(n)])),
};

const root = mkdtempSync(join(tmpdir(), "klear-fix-hints-"));
after(() => rmSync(root, { recursive: true, force: true }));
const rows = join(root, "rows.jsonl");
writeFileSync(rows, `${JSON.stringify({ prompt: "Name a colour.", response: "Blue." })}\n`);
const emptyDir = join(root, "empty");
mkdirSync(emptyDir);
const badConfig = join(root, "bad.json");
writeFileSync(badConfig, JSON.stringify({ sampling: { topP: 7 } }));
const offline = { cacheDir: join(root, "no-cache") };
const longProblems = join(root, "long.jsonl");
writeFileSync(
  longProblems,
  `${JSON.stringify({ problem: "Add up all of these numbers. ".repeat(30), answer: "1" })}\n`,
);
const TINY_MODEL = join(import.meta.dirname, "..", "..", "fixtures", "model", "hf-tiny-qwen3");
const out = join(root, "out.jsonl");

const SCENARIOS: { command: string; argv: string[] }[] = [
  { command: "eval", argv: ["--out", out] },
  { command: "eval", argv: ["--bench", "aime24"] },
  { command: "eval", argv: ["--bench", "aime2099", "--out", out] },
  { command: "eval", argv: ["--bench", "aime24", "--out", out] },
  { command: "eval", argv: ["--bench", "aime24", "--model", "not/a/folder", "--out", out] },
  {
    command: "eval",
    argv: ["--bench", "aime24", "--model-dir", "m", "--endpoint", "http://x", "--out", out],
  },
  { command: "eval", argv: ["--bench", "aime24,math500", "--responses", rows, "--out", out] },
  {
    command: "eval",
    argv: [
      "--bench",
      "aime24",
      "--endpoint",
      "http://x",
      "--model",
      "m",
      "--no-enable-thinking",
      "--out",
      out,
    ],
  },
  {
    command: "eval",
    argv: [
      "--bench",
      "aime24",
      "--endpoint",
      "http://x",
      "--model",
      "m",
      "--api",
      "completions",
      "--out",
      out,
    ],
  },
  { command: "eval", argv: ["--bench", "aime24", "--top-p", "high", "--out", out] },
  { command: "eval", argv: ["--bench", "aime24", "--ks", "1,x", "--out", out] },
  { command: "eval", argv: ["--bench", "aime24", "--sampling.topPp=1", "--out", out] },
  { command: "eval", argv: ["--config", badConfig, "--bench", "aime24", "--out", out] },
  { command: "eval", argv: ["--config", join(root, "missing.json"), "--out", out] },
  { command: "eval", argv: ["--bench", "aime24", "--bogus", "--out", out] },
  {
    command: "eval",
    argv: ["--bench", "aime24", "--data", join(root, "nope"), "--responses", rows, "--out", out],
  },
  {
    command: "eval",
    argv: ["--bench", "livecodebench_v6", "--data", emptyDir, "--responses", rows, "--out", out],
  },
  {
    command: "eval",
    argv: ["--bench", "livecodebench_v6", "--cache-dir", offline.cacheDir, "--responses", rows, "--out", out],
  },
  { command: "eval", argv: ["--bench", "aime24", "--fetch-only", "--cache-dir", offline.cacheDir] },
  {
    command: "eval",
    argv: ["--bench", "math500", "--data", longProblems, "--model", TINY_MODEL, "--out", out],
  },
  { command: "data decontam", argv: [rows, "--out", out, "--bench", "lcb_v6", "--bench-dir", emptyDir] },
  {
    command: "data decontam",
    argv: [rows, "--out", out, "--bench", "livecodebench_v6", "--bench-dir", emptyDir],
  },
  { command: "data decontam", argv: [rows, "--out", out, "--bench", "nonesuch"] },
  { command: "data decontam", argv: [rows, "--out", out] },
  { command: "data decontam", argv: [rows, "--bench", "aime24"] },
  { command: "data dedup", argv: [rows, "--out", out, "--threshold", "x"] },
  { command: "data dedup", argv: [rows, "--out", out, "--numPerm=0"] },
  { command: "data dedup", argv: ["--out", out] },
  { command: "data select", argv: [rows, "--out", out, "--mix", "a:1"] },
  { command: "data select", argv: [rows, "--out", out, "--score-rule", "best"] },
  { command: "data tag", argv: [rows, "--out", out] },
  { command: "data convert", argv: [rows, "--out", join(root, "x.parquet"), "--to", "verl"] },
  { command: "data convert", argv: [join(root, "missing.jsonl"), "--out", out] },
  { command: "data convert", argv: [rows, "--out", out, "--to", "yaml"] },
  { command: "data stats", argv: [] },
  { command: "rl", argv: ["--resume"] },
  { command: "rl", argv: ["--out", join(root, "r"), "--resume", "--steps=3"] },
  { command: "rl", argv: ["--loss.nam=gppo"] },
  { command: "rl", argv: ["--rollout.n=0"] },
  { command: "demo", argv: ["--train.stepz=1"] },
  { command: "demo", argv: ["--preset", "huge"] },
];

/** The flags a hint names, each with the command it must belong to. */
export function suggestedFlags(fix: string, command: string): { flag: string; command: string }[] {
  const found: { flag: string; command: string }[] = [];
  const quoted = new Set<string>();
  for (const m of fix.matchAll(/`klear ((?:data )?[a-z]+)([^`]*)`/g)) {
    quoted.add(m[0]);
    for (const f of m[2].matchAll(/(?<![\w-])(--?[A-Za-z][\w.-]*)/g))
      found.push({ flag: f[1], command: m[1] });
  }
  let rest = fix;
  for (const q of quoted) rest = rest.split(q).join(" ");
  for (const f of rest.matchAll(/(?<![\w/.-])(--[A-Za-z][\w.-]*)/g)) found.push({ flag: f[1], command });
  return found.map((x) => ({ ...x, flag: x.flag.replace(/[.,;:]+$/, "") }));
}

const RUN: Record<string, (argv: string[]) => Promise<number>> = {
  eval: evalCmd.run,
  rl: rl.run,
  demo: demo.run,
  ...Object.fromEntries(
    DATA_SUBCOMMAND_NAMES.map((n) => [`data ${n}`, (argv: string[]) => data.run([n, ...argv])]),
  ),
};

test("every fix hint names only flags that the command accepts", async () => {
  const oldOffline = process.env.HF_HUB_OFFLINE;
  process.env.HF_HUB_OFFLINE = "1";
  const bad: string[] = [];
  let checked = 0;
  try {
    for (const s of SCENARIOS) {
      let error: unknown;
      try {
        await RUN[s.command](s.argv);
      } catch (e) {
        error = e;
      }
      assert.ok(
        error instanceof KlearError,
        `klear ${s.command} ${s.argv.join(" ")} should fail with a KlearError, got ${error}`,
      );
      for (const { flag, command } of suggestedFlags(error.fix, s.command)) {
        checked++;
        const accepted = FLAGS[command];
        assert.ok(accepted, `the hint quotes an unknown command "klear ${command}": ${error.fix}`);
        if (!accepted.has(flag))
          bad.push(
            `klear ${s.command} ${s.argv.join(" ")}\n    hint names ${flag}, which klear ${command} does not take: ${error.fix}`,
          );
      }
    }
  } finally {
    if (oldOffline === undefined) delete process.env.HF_HUB_OFFLINE;
    else process.env.HF_HUB_OFFLINE = oldOffline;
  }
  assert.deepEqual(bad, []);
  assert.ok(checked > 30, `only ${checked} flags were named in all the hints`);
});

test("the walker reads flags inside and outside quoted commands", () => {
  assert.deepEqual(
    suggestedFlags("run `klear eval --bench x --fetch-only`, or pass --bench-dir DIR.", "data decontam"),
    [
      { flag: "--bench", command: "eval" },
      { flag: "--fetch-only", command: "eval" },
      { flag: "--bench-dir", command: "data decontam" },
    ],
  );
  // The old decontam hint that named a flag decontam lacks.
  const old = suggestedFlags(
    "put one of lcb_v6_problems.jsonl there, or pass the file itself with --data",
    "data decontam",
  );
  assert.ok(!FLAGS["data decontam"].has(old[0].flag));
});

/** The flags a command's own `--help` names: the option list of commands that export no flags(). */
async function helpFlags(command: string): Promise<Set<string>> {
  let text = "";
  const log = console.log;
  console.log = (...a: unknown[]) => (text += `${a.join(" ")}\n`);
  try {
    await (await COMMANDS[command]()).run(["--help"]);
  } finally {
    console.log = log;
  }
  return new Set(["--help", "-h", ...[...text.matchAll(/--[A-Za-z][\w.-]*/g)].map((m) => m[0])]);
}

test("the other commands' fix hints name only flags their own --help lists", async () => {
  const scenarios: { command: string; argv: string[] }[] = [
    { command: "sft", argv: [] },
    { command: "sft", argv: ["--init", join(root, "nope")] },
    { command: "verify math", argv: [] },
    { command: "verify code", argv: [] },
    { command: "report", argv: [] },
    { command: "experiment", argv: [] },
    { command: "experiment", argv: ["losses", "--bogus"] },
  ].filter((s) => s.command in COMMANDS);
  const bad: string[] = [];
  let checked = 0;
  for (const s of scenarios) {
    const accepted = await helpFlags(s.command);
    let error: unknown;
    try {
      await (await COMMANDS[s.command]()).run(s.argv);
    } catch (e) {
      error = e;
    }
    if (!(error instanceof KlearError)) continue; // a command that reports its usage error itself
    for (const { flag, command } of suggestedFlags(error.fix, s.command)) {
      checked++;
      // A quoted command with an exact option list is checked against it, anything else against this one's help.
      if (!(FLAGS[command] ?? accepted).has(flag))
        bad.push(`klear ${s.command} ${s.argv.join(" ")}: hint names ${flag}: ${error.fix}`);
    }
  }
  assert.deepEqual(bad, []);
  assert.ok(checked >= 4, `only ${checked} flags were named`);
});
