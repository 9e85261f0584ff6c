#!/usr/bin/env node
import { KlearError } from "../util/errors.js";

/**
 * The CLI is a thin dispatcher: each command lives in its own module under ./commands and exports
 * `run(argv): Promise<number>` (the exit code) and `summary` (one line for the help text).
 * Modules load lazily so `klear verify math` never pays for the engine.
 */
const COMMANDS: Record<string, string> = {
  demo: "./commands/demo.js",
  "verify math": "./commands/verify-math.js",
  "verify code": "./commands/verify-code.js",
  eval: "./commands/eval.js",
  data: "./commands/data.js",
  sft: "./commands/sft.js",
  rl: "./commands/rl.js",
  report: "./commands/report.js",
};

interface CommandModule {
  run(argv: string[]): Promise<number>;
  summary?: string;
}

async function load(path: string): Promise<CommandModule | null> {
  try {
    return (await import(path)) as CommandModule;
  } catch (e) {
    if (
      (e as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND" &&
      String((e as Error).message).includes(path.slice(2, -3))
    ) {
      return null;
    }
    throw e;
  }
}

async function help(): Promise<void> {
  const lines = [
    "usage: klear <command> [options]   (klear <command> --help for its options)",
    "",
    "commands:",
  ];
  for (const [name, path] of Object.entries(COMMANDS)) {
    const mod = await load(path);
    if (mod) lines.push(`  ${name.padEnd(14)} ${mod.summary ?? ""}`);
  }
  console.log(lines.join("\n"));
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    await help();
    return 0;
  }
  const two = `${argv[0]} ${argv[1] ?? ""}`;
  const [name, rest] = two in COMMANDS ? [two, argv.slice(2)] : [argv[0], argv.slice(1)];
  const path = COMMANDS[name];
  const mod = path ? await load(path) : null;
  if (!mod) {
    const valid = Object.keys(COMMANDS).join(", ");
    console.error(`klear: unknown command "${argv.slice(0, 2).join(" ")}"\n  fix: use one of: ${valid}`);
    return 2;
  }
  return mod.run(rest);
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop() ?? "\0");
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      if (e instanceof KlearError) console.error(`klear: ${e.message}`);
      else console.error(e);
      process.exitCode = 1;
    },
  );
}
