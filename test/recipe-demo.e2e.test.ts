import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { readMetrics, runPaths } from "../src/store/run.js";

// The recipe demo's `ci` preset through the CLI: the whole recipe, short, asserting what issue 12 asks of it.
const CLI = ["--import", "tsx", "src/cli/main.ts"];
const root = mkdtempSync(join(tmpdir(), "klear-recipe-demo-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));

const sum = (rows: Record<string, unknown>[], key: string) =>
  rows.reduce((n, m) => n + (typeof m[key] === "number" ? (m[key] as number) : 0), 0);

it("klear demo --preset ci: report written, verifier and sandbox called (in the metrics), RL raised held-out accuracy", () => {
  const out = join(root, "ci");
  const r = spawnSync(process.execPath, [...CLI, "demo", "--preset", "ci", "--out", out, "--quiet"], {
    encoding: "utf8",
    timeout: 3_000_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const last = r.stdout.trim().split("\n").pop() ?? "";
  const m = /^RESULT demo klear=(\S+) peer=(\S+) unit=accuracy .* minutes=(\S+)$/.exec(last);
  assert.ok(m, last);
  assert.ok(existsSync(join(out, "report.html")), "report.html");
  assert.match(
    r.stdout,
    new RegExp(`report: ${join(out, "report.html").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
  );

  // Counted per RL step into the RL run's metrics, and per evaluation into the demo's.
  const rl = readMetrics(runPaths(join(out, "rl")));
  assert.ok(sum(rl, "verifierCalls") > 0, "RL called the math verifier");
  assert.ok(sum(rl, "sandboxCalls") > 0, "RL ran programs in the sandbox");
  const demo = readMetrics(runPaths(out));
  assert.ok(sum(demo, "verifierCalls") > 0 && sum(demo, "sandboxCalls") > 0, "evaluation called both");

  // RL's own held-out evaluation (one sample per problem, Klear's think gate) before vs after RL. The eval
  // harness's avg@k over the ci preset's 24 problems is too coarse to rank 6 RL steps (docs/demo.md).
  const rlResult = JSON.parse(readFileSync(join(out, "rl", "result.json"), "utf8"));
  assert.ok(
    rlResult.accuracyAfter > rlResult.accuracyBefore,
    `RL held-out accuracy ${rlResult.accuracyBefore} → ${rlResult.accuracyAfter}`,
  );
  const result = JSON.parse(readFileSync(join(out, "result.json"), "utf8"));
  assert.ok(Number.isFinite(result.evalRl.overall) && Number.isFinite(result.evalSft.overall));
});
