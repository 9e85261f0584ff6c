import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { COMMANDS, helpText, main } from "../../src/cli/main.js";

const COMMANDS_DIR = join(import.meta.dirname, "..", "..", "src", "cli", "commands");

/** The command each module file is: `verify-math.ts` is `klear verify math`. */
const commandFiles = () =>
  readdirSync(COMMANDS_DIR)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => f.slice(0, -3).replace("-", " "))
    .sort();

test("klear --help lists exactly the commands that exist (one per module in src/cli/commands)", async () => {
  const listed = (await helpText())
    .split("\n")
    .filter((l) => l.startsWith("  "))
    .map((l) => {
      const name = Object.keys(COMMANDS).find((c) => l.startsWith(`  ${c} `));
      assert.ok(name, `help line names no command in the table: ${l}`);
      return name;
    })
    .sort();
  assert.deepEqual(listed, commandFiles());
  assert.deepEqual(Object.keys(COMMANDS).sort(), commandFiles());
  for (const load of Object.values(COMMANDS)) {
    const mod = await load();
    assert.equal(typeof mod.run, "function");
    assert.ok(mod.summary.length > 0);
  }
});

test("an unknown command is refused, the hint naming only commands that exist", async () => {
  const errors: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    assert.equal(await main(["nope"]), 2);
    // "report" and "sft" were once advertised before they existed; only real ones may be named.
    assert.equal(await main(["constructor"]), 2);
  } finally {
    console.error = orig;
  }
  const hint = /fix: use one of: (.*)$/m.exec(errors[0])?.[1] ?? "";
  assert.deepEqual(hint.split(", ").sort(), commandFiles());
});

test("README's command table lists exactly the commands that exist", () => {
  const readme = readFileSync(join(import.meta.dirname, "..", "..", "README.md"), "utf8");
  const table = readme.slice(readme.indexOf("| command | what it does |"));
  const rows = table
    .slice(0, table.indexOf("\n\n"))
    .split("\n")
    .slice(2)
    .map((row) => /^\| `klear ([a-z]+(?: (?:math|code))?)/.exec(row)?.[1]);
  assert.ok(rows.every(Boolean), "every row starts with `klear <command>");
  assert.deepEqual([...new Set(rows)].sort(), Object.keys(COMMANDS).sort());
});
