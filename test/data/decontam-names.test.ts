import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import {
  expandBenchmarkSpecs,
  KNOWN_DECONTAM_BENCHMARKS,
  loadDecontamBenchmark,
} from "../../src/data/decontam.js";
import { benchmarkNames } from "../../src/eval/index.js";

const LCB_FIXTURE_DIR = join(import.meta.dirname, "..", "..", "fixtures", "lcb");

test("decontam names benchmarks as eval does; the lcb_* aliases are accepted and reported under the eval name", async () => {
  assert.deepEqual(KNOWN_DECONTAM_BENCHMARKS, benchmarkNames());
  assert.deepEqual(expandBenchmarkSpecs(["lcb_v6", "livecodebench_v6", "hmmt25", "all"]), [
    "livecodebench_v6",
    "hmmt_feb_2025",
    "aime24",
    "aime25",
    "math500",
    "amc23",
    "livecodebench_v5",
  ]);
  // Both names load the same v6 problems (the release file in --bench-dir), labelled by the eval name.
  const byAlias = await loadDecontamBenchmark("lcb_v6", LCB_FIXTURE_DIR);
  const byName = await loadDecontamBenchmark("livecodebench_v6", LCB_FIXTURE_DIR);
  assert.deepEqual(byAlias, byName);
  assert.deepEqual(
    byName.map((b) => [b.benchmark, b.id]),
    [
      ["livecodebench_v6", "abc400_a"],
      ["livecodebench_v6", "3600"],
    ],
  );
});
