/**
 * The layer rules of .dependency-cruiser.cjs fire: dependency-cruiser, run with klear's own rule file on
 * a fixture tree with an upward import, a sideways import and a lazy-import cycle, exits non-zero and
 * names each rule; the same tree without them passes. (scripts/test.sh runs the rules on src/ itself.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";

const root = join(import.meta.dirname, "..");
const configPath = join(root, ".dependency-cruiser.cjs");
const depcruise = join(root, "node_modules", ".bin", "depcruise");
const { klear } = createRequire(import.meta.url)(configPath) as {
  klear: { TEMPORARY_EXCEPTIONS: [string, string, string, string][] };
};

const work = mkdtempSync(join(tmpdir(), "klear-layers-"));
after(() => rmSync(work, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", strict: true } }),
  );
  return dir;
}

function cruise(dir: string): { status: number | null; output: string } {
  const run = spawnSync(depcruise, ["src", "--config", configPath, "--output-type", "err"], {
    cwd: dir,
    encoding: "utf8",
  });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const clean = {
  "src/util/errors.ts": "export const fail = 1;\n",
  "src/rl/loss.ts": 'import { fail } from "../util/errors.js";\nexport const loss = fail;\n',
  "src/data/io.ts": 'export async function read() { return (await import("./parquet.js")).parse; }\n',
  "src/data/parquet.ts": "export const parse = 2;\n",
  "src/cli/main.ts":
    'import { loss } from "../rl/loss.js";\nimport { read } from "../data/io.js";\nexport { loss, read };\n',
};

describe(
  "layer rules (.dependency-cruiser.cjs)",
  { skip: existsSync(depcruise) ? false : "dependency-cruiser is not installed (npm install)" },
  () => {
    test("a tree that imports only downward passes", () => {
      const result = cruise(tree("clean", clean));
      assert.equal(result.status, 0, result.output);
    });

    test("an upward import, a sideways import and a lazy-import cycle each fail, named by rule", () => {
      const result = cruise(
        tree("broken", {
          ...clean,
          // util reaching up into rl; rl reaching sideways into data; data/parquet importing io back.
          "src/util/errors.ts":
            'import type { loss } from "../rl/loss.js";\nexport const fail = 1;\nexport type L = typeof loss;\n',
          "src/rl/loss.ts":
            'import { fail } from "../util/errors.js";\nimport { read } from "../data/io.js";\nexport const loss = fail;\nexport { read };\n',
          "src/data/parquet.ts":
            'import { read } from "./io.js";\nexport const parse = 2;\nexport { read };\n',
        }),
      );
      assert.notEqual(result.status, 0, result.output);
      assert.match(result.output, /layer-upward:util: src\/util\/errors\.ts → src\/rl\/loss\.ts/);
      assert.match(result.output, /layer-sideways:rl: src\/rl\/loss\.ts → src\/data\/io\.ts/);
      assert.match(result.output, /no-circular: src\/data\/(io|parquet)\.ts →\s+src\/data\/(parquet|io)\.ts/);
    });

    test("every temporary exception still names an import that exists (else drop it)", (t) => {
      const stale = klear.TEMPORARY_EXCEPTIONS.filter(([, from, to]) => {
        const file = join(root, from.replace(/^\^/, "").replace(/\$$/, "").replaceAll("\\.", "."));
        const target = to
          .replace(/^\^src\//, "")
          .replace(/\$$/, "")
          .replaceAll("\\.", ".")
          .replace(/\.ts$/, ".js");
        return (
          !existsSync(file) || !readFileSync(file, "utf8").includes(target.split("/").slice(-2).join("/"))
        );
      });
      for (const [rule, from, to] of stale)
        t.diagnostic(`stale exception ${rule} ${from} → ${to}: remove it`);
      assert.deepEqual(
        stale,
        [],
        "delete these entries from TEMPORARY_EXCEPTIONS in .dependency-cruiser.cjs",
      );
    });
  },
);
