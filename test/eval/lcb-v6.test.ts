import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { run as evalCli } from "../../src/cli/commands/eval.js";
import { hubCachePath, loadBenchmark } from "../../src/eval/index.js";
import { KlearError } from "../../src/util/errors.js";

/** Three problems in the real release format (fixtures/lcb/make_test6.py): compressed private tests. */
const FIXTURE_DIR = join(import.meta.dirname, "..", "..", "fixtures", "lcb");
const FIXTURE = join(FIXTURE_DIR, "test6.jsonl");
const root = mkdtempSync(join(tmpdir(), "klear-lcb-v6-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("the v6 loader reads the release jsonl: base64(zlib(pickle(json))) private tests, metadata, the date window", async () => {
  const v6 = await loadBenchmark("livecodebench_v6", { data: FIXTURE });
  // The 2025-01-11 problem lies before the v6 window (2025-02-01..2025-05-01).
  assert.deepEqual(
    v6.problems.map((p) => p.id),
    ["abc400_a", "3600"],
  );
  const [stdin, functional] = v6.problems;
  assert.equal(stdin.tests?.length, 13, "1 public + 12 private tests");
  assert.deepEqual(stdin.tests?.[1], { input: "0 0\n", output: "0\n", testtype: "stdin" });
  assert.equal(stdin.starterCode, "");
  assert.equal(stdin.date, "2025-03-01");
  assert.equal(functional.fnName, "countEven");
  assert.match(functional.starterCode ?? "", /def countEven\(self, nums/);
  assert.deepEqual(
    functional.tests?.map((t) => t.testtype),
    ["functional", "functional"],
  );
  // Without the window all three load; the third's private test pickles to > 64 KiB (BINUNICODE, no frame).
  const all = await loadBenchmark("livecodebench", { data: FIXTURE });
  assert.equal(all.problems.length, 3);
  assert.ok((all.problems[2].tests?.[1].input.length ?? 0) > 100_000);
  // A folder holding the release file is found by its release name, under either benchmark name.
  const byFolder = await loadBenchmark("lcb_v6", { data: FIXTURE_DIR });
  assert.deepEqual(byFolder.source, [FIXTURE]);
});

test("offline, the v6 error names the HF dataset and file, the one command that fetches it, and the exact path for a copy", async () => {
  const cacheDir = join(root, "empty-cache");
  const exact = join(cacheDir, "datasets", "livecodebench", "code_generation_lite", "main", "test6.jsonl");
  await assert.rejects(
    loadBenchmark("livecodebench_v6", { hub: { cacheDir, offline: true } }),
    (e: KlearError) => {
      assert.ok(e instanceof KlearError);
      assert.equal(e.code, "BENCHMARK_NOT_AVAILABLE");
      assert.match(e.message, /Hugging Face dataset livecodebench\/code_generation_lite, file test6\.jsonl/);
      assert.ok(
        e.fix.includes(`klear eval --bench livecodebench_v6 --fetch-only --cache-dir ${cacheDir}`),
        e.fix,
      );
      assert.ok(e.fix.includes(`put the file at ${exact}`), e.fix);
      assert.ok(e.fix.includes("--data FILE"), e.fix);
      return true;
    },
  );
  // A copy put at that exact path is used offline.
  mkdirSync(dirname(exact), { recursive: true });
  copyFileSync(FIXTURE, exact);
  assert.equal(hubCachePath("livecodebench/code_generation_lite", "test6.jsonl", { cacheDir }), exact);
  const loaded = await loadBenchmark("livecodebench_v6", { hub: { cacheDir, offline: true } });
  assert.equal(loaded.problems.length, 2);
});

test("`klear eval --bench livecodebench_v6 --fetch-only` downloads the file into the cache path the error names", async () => {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(req.url ?? "");
    if (req.url === "/datasets/livecodebench/code_generation_lite/resolve/main/test6.jsonl") {
      res.end(readFileSync(FIXTURE));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const old = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const cacheDir = join(root, "fetched");
  const log = console.log;
  let out = "";
  console.log = (...a: unknown[]) => (out += a.join(" "));
  try {
    assert.equal(await evalCli(["--bench", "livecodebench_v6", "--fetch-only", "--cache-dir", cacheDir]), 0);
  } finally {
    console.log = log;
    if (old === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = old;
    server.close();
  }
  const exact = hubCachePath("livecodebench/code_generation_lite", "test6.jsonl", { cacheDir });
  assert.ok(existsSync(exact));
  assert.match(out, /livecodebench_v6: 2 problems in .*test6\.jsonl/);
  assert.deepEqual(asked, ["/datasets/livecodebench/code_generation_lite/resolve/main/test6.jsonl"]);
});
