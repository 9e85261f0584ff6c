#!/usr/bin/env node
import { KlearError } from "../util/errors.js";

/**
 * The CLI is a thin dispatcher over one table: each command lives in its own module under ./commands and
 * exports `run(argv): Promise<number>` (the exit code) and `summary` (one line for the help text).
 * Adding a command is one entry here; `klear --help` and the unknown-command hint are generated from the
 * table, and each entry is a static import, so the typecheck fails on an entry whose module does not
 * exist: the CLI can never advertise a command it lacks. Modules load lazily so `klear verify math`
 * never pays for the engine.
 */
export interface CommandModule {
  run(argv: string[]): Promise<number>;
  summary: string;
}

export const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  demo: () => import("./commands/demo.js"),
  sft: () => import("./commands/sft.js"),
  rl: () => import("./commands/rl.js"),
  eval: () => import("./commands/eval.js"),
  data: () => import("./commands/data.js"),
  report: () => import("./commands/report.js"),
  experiment: () => import("./commands/experiment.js"),
  "verify math": () => import("./commands/verify-math.js"),
  "verify code": () => import("./commands/verify-code.js"),
};

/** The help text: every command in the table with its one-line summary. */
export async function helpText(): Promise<string> {
  const lines = [
    "usage: klear <command> [options]   (klear <command> --help for its options)",
    "",
    "commands:",
  ];
  for (const [name, load] of Object.entries(COMMANDS))
    lines.push(`  ${name.padEnd(14)} ${(await load()).summary}`);
  return lines.join("\n");
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    console.log(await helpText());
    return 0;
  }
  const two = `${argv[0]} ${argv[1] ?? ""}`;
  const [name, rest] = two in COMMANDS ? [two, argv.slice(2)] : [argv[0], argv.slice(1)];
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    const valid = Object.keys(COMMANDS).join(", ");
    console.error(`klear: unknown command "${argv.slice(0, 2).join(" ")}"\n  fix: use one of: ${valid}`);
    return 2;
  }
  return (await load()).run(rest);
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
