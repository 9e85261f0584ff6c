#!/usr/bin/env node
// The published entry: runs the compiled CLI. `npm run build` (done by scripts/setup.sh) makes dist/.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (!existsSync(main)) {
  console.error(
    "klear: the CLI is not built yet\n  fix: run `npm run setup` (or `npm run build`) in the klear folder",
  );
  process.exit(1);
}
const { main: run } = await import(main);
const { KlearError } = await import(new URL("../dist/util/errors.js", import.meta.url).href);
try {
  process.exitCode = await run(process.argv.slice(2));
} catch (e) {
  console.error(e instanceof KlearError ? `klear: ${e.message}` : e);
  process.exitCode = 1;
}
