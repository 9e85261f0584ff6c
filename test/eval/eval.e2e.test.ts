import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import Database from "better-sqlite3";
import { sampleSeed } from "../../src/eval/index.js";
import { type FakeOpenAI, startFakeOpenAI } from "../helpers/fake-openai.js";

const root = mkdtempSync(join(tmpdir(), "klear-eval-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));

const PROBLEMS = Array.from({ length: 6 }, (_, i) => ({
  id: `q${i}`,
  question: `What is ${i} + ${i}?`,
  answer: String(2 * i),
}));
const N = 16;
const dataFile = join(root, "mini.jsonl");
writeFileSync(
  dataFile,
  PROBLEMS.map((p) =>
    JSON.stringify({
      messages: [{ role: "user", content: p.question }],
      meta: { unique_id: p.id, solution: p.answer },
    }),
  ).join("\n"),
);

/** Problem i gets sample j right iff j < 2i + 1 (q5 gets 11 of 16), found from the request's seed. */
function cannedResponder() {
  const bySeed = new Map<number, string>();
  PROBLEMS.forEach((p, i) => {
    for (let j = 0; j < N; j++) {
      const right = j < 2 * i + 1;
      bySeed.set(
        sampleSeed(0, "aime24", p.id, j),
        `<think>${"hmm ".repeat(j + 1)}</think>\nThe answer is $\\boxed{${right ? p.answer : String(1000 + j)}}$.`,
      );
    }
  });
  return (r: { seed?: number }) => bySeed.get(r.seed ?? -1) ?? "I do not know.";
}

function cli(args: string[]): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "eval", ...args], {
    cwd: join(import.meta.dirname, "..", ".."),
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function finish(
  child: ChildProcess,
): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (err += d));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, out, err })));
}

const argsFor = (fake: FakeOpenAI, out: string) => [
  "--bench",
  "aime24",
  "--data",
  dataFile,
  "--endpoint",
  fake.url,
  "--model",
  "fake-model",
  "--n",
  String(N),
  "--concurrency",
  "4",
  "--timeout",
  "5",
  "--out",
  out,
  "--quiet",
];

test("SIGKILL mid-run, then resume: no finished sample is asked again and the results equal an uninterrupted run's", async () => {
  const total = PROBLEMS.length * N;
  // Uninterrupted reference run.
  const refFake = await startFakeOpenAI({ respond: cannedResponder() });
  const refOut = join(root, "ref");
  const ref = await finish(cli(argsFor(refFake, refOut)));
  await refFake.close();
  assert.equal(ref.code, 0, ref.err);
  assert.match(ref.out, /aime24\s+6\s+16/);
  assert.equal(refFake.stats.answered, total);

  // Interrupted run: slow replies, killed with SIGKILL once about a third is done.
  const fake = await startFakeOpenAI({ respond: cannedResponder(), faultPlan: () => "slow", slowMs: 40 });
  const out = join(root, "killed");
  const child = cli(argsFor(fake, out));
  const done = finish(child);
  const deadline = Date.now() + 60_000;
  while (fake.stats.answered < total / 3 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  child.kill("SIGKILL");
  const killed = await done;
  assert.equal(killed.signal, "SIGKILL");
  assert.ok(fake.stats.answered < total, "killed before the end");

  const db = new Database(join(out, "results.sqlite"), { readonly: true });
  const storedBefore = new Set(
    (
      db.prepare("SELECT problem_id, sample_idx FROM samples").all() as {
        problem_id: string;
        sample_idx: number;
      }[]
    ).map((r) => sampleSeed(0, "aime24", r.problem_id, r.sample_idx)),
  );
  db.close();
  assert.ok(storedBefore.size > 0 && storedBefore.size < total, `stored ${storedBefore.size}`);

  // Resume against a fresh server that records which samples it is asked for.
  const asked: number[] = [];
  const respond = cannedResponder();
  const fake2 = await startFakeOpenAI({
    respond: (r) => {
      asked.push(r.seed ?? -1);
      return respond(r);
    },
    faults: { status500: 0.1, drop: 0.05 },
  });
  const resumed = await finish(cli(argsFor(fake2, out)));
  await fake.close();
  await fake2.close();
  assert.equal(resumed.code, 0, resumed.err);
  for (const s of asked) assert.ok(!storedBefore.has(s), "a stored sample was requested again");
  assert.equal(new Set(asked).size, total - storedBefore.size);

  // Same figures, byte for byte, as the uninterrupted run.
  assert.equal(
    readFileSync(join(out, "results.json"), "utf8"),
    readFileSync(join(refOut, "results.json"), "utf8"),
  );
  assert.equal(
    readFileSync(join(out, "report.html"), "utf8"),
    readFileSync(join(refOut, "report.html"), "utf8"),
  );
  const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  const b = results.benchmarks[0];
  // hand-computed: sum over i of (2i+1)/16, over 6 problems = 36 / 96
  assert.equal(b.metrics["avg@16"].value, 36 / 96);
  assert.equal(b.samples, total);
  assert.deepEqual(
    b.perProblem.map((p: { correct: number }) => p.correct),
    [1, 3, 5, 7, 9, 11],
  );
});

test("offline scoring: klear eval --responses FILE.jsonl (Klear's inference output format)", async () => {
  const file = join(root, "inference_results.jsonl");
  const rows: string[] = [];
  let k = 0;
  for (const p of PROBLEMS) {
    for (let j = 0; j < 4; j++) {
      const content = j < 2 ? `so \\boxed{${p.answer}}` : "so \\boxed{-1}";
      rows.push(
        JSON.stringify({
          id: k++,
          meta: { meta: { unique_id: p.id, solution: p.answer } },
          messages: [
            { role: "user", content: p.question },
            { role: "assistant", content },
          ],
        }),
      );
    }
  }
  writeFileSync(file, rows.join("\n"));
  const out = join(root, "offline");
  const r = await finish(
    cli(["--bench", "aime24", "--data", dataFile, "--responses", file, "--out", out, "--quiet"]),
  );
  assert.equal(r.code, 0, r.err);
  const b = JSON.parse(readFileSync(join(out, "results.json"), "utf8")).benchmarks[0];
  assert.equal(b.n, 4);
  assert.equal(b.metrics["avg@4"].value, 0.5);
  assert.equal(b.metrics["pass@4"].value, 1);
  assert.ok(existsSync(join(out, "report.html")));
});

test("usage errors name the fix", async () => {
  const r = await finish(
    cli([
      "--bench",
      "aime2099",
      "--out",
      join(root, "x"),
      "--endpoint",
      "http://127.0.0.1:1",
      "--model",
      "m",
    ]),
  );
  assert.notEqual(r.code, 0);
  assert.match(r.err, /unknown benchmark "aime2099"/);
  assert.match(r.err, /fix: use one of/);
  // The server applies its own template with --api chat, so the thinking switch would be silently lost.
  const thinking = await finish(
    cli([
      "--bench",
      "aime24",
      "--out",
      join(root, "x"),
      "--endpoint",
      "http://127.0.0.1:1",
      "--model",
      "m",
      "--no-enable-thinking",
    ]),
  );
  assert.notEqual(thinking.code, 0);
  assert.match(thinking.err, /--no-enable-thinking switches the chat template klear renders/);
  assert.match(thinking.err, /fix: use it with --model-dir DIR or --api completions --chat-template DIR/);
  const h = await finish(cli(["--help"]));
  assert.equal(h.code, 0);
  assert.match(h.out, /--responses FILE\.jsonl/);
});
