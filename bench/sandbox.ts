/**
 * Sandbox throughput: the same workload (solutions × stdin tests, every test run) through klear's
 * pool (one bubblewrap sandbox per solution, fork per test, LCB prelude) and through a bare
 * `/usr/bin/python3` subprocess per test (no isolation at all), both with 2 solutions in flight.
 * Prints medians over repetitions, then one RESULT line (solutions/s; ratio > 1: klear faster).
 */
import { spawn } from "node:child_process";
import { CodeRunnerPool, type CodeTest, compareCodeStdout } from "../src/rewards/code/index.js";
import { mapConcurrent } from "../src/util/concurrency.js";

const SOLUTIONS = Number(process.env.BENCH_SANDBOX_SOLUTIONS ?? 40);
const TESTS = Number(process.env.BENCH_SANDBOX_TESTS ?? 10);
const REPS = Number(process.env.BENCH_SANDBOX_REPS ?? 3);
const CONCURRENCY = 2;

const PROGRAMS = [
  "import sys\ndata = sys.stdin.read().split()\nn = int(data[0])\nprint(sum(map(int, data[1:1 + n])))",
  "n = int(input())\na = sorted(map(int, input().split()))\nprint(*a[:3])",
  "import sys\ninput = sys.stdin.readline\nn = int(input())\nseen = set()\nfor x in map(int, input().split()):\n    seen.add(x % 7)\nprint(len(seen))",
  "from collections import Counter\nn = int(input())\nc = Counter(input().split())\nprint(max(c.values()))",
];

function mostCommonCount(xs: number[]): number {
  const counts = new Map<number, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  return Math.max(...counts.values());
}

function workload(): { code: string; tests: CodeTest[] }[] {
  return Array.from({ length: SOLUTIONS }, (_, s) => {
    const kind = s % PROGRAMS.length;
    const tests: CodeTest[] = Array.from({ length: TESTS }, (_, t) => {
      const n = 50 + ((s * 31 + t * 17) % 200);
      const a = Array.from({ length: n }, (_, i) => (i * 7919 + s * 13 + t) % 1000);
      const out =
        kind === 0
          ? String(a.reduce((x, y) => x + y, 0))
          : kind === 1
            ? [...a]
                .sort((x, y) => x - y)
                .slice(0, 3)
                .join(" ")
            : kind === 2
              ? String(new Set(a.map((x) => x % 7)).size)
              : String(mostCommonCount(a));
      return { input: `${n}\n${a.join(" ")}\n`, output: `${out}\n`, testtype: "stdin" };
    });
    return { code: PROGRAMS[kind], tests };
  });
}

function barePython(
  code: string,
  input: string,
  timeoutMs: number,
): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn("/usr/bin/python3", ["-I", "-c", code], { stdio: ["pipe", "pipe", "ignore"] });
    let stdout = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      stdout += d;
    });
    child.stdin.on("error", () => {});
    child.on("close", (c) => {
      clearTimeout(timer);
      resolve({ stdout, code: c });
    });
    child.stdin.end(input);
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const jobs = workload();
  const pool = new CodeRunnerPool({ concurrency: CONCURRENCY });
  const klearRates: number[] = [];
  const peerRates: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    let t0 = performance.now();
    const ours = await Promise.all(jobs.map((j) => pool.run(j.code, j.tests, { stopAtFirstFailure: false })));
    klearRates.push(SOLUTIONS / ((performance.now() - t0) / 1000));
    const oursPassed = ours.filter((r) => r.passed).length;

    t0 = performance.now();
    const theirs = await mapConcurrent(jobs, CONCURRENCY, async (j) => {
      let passes = 0;
      for (const t of j.tests) {
        const r = await barePython(j.code, t.input, 6000);
        if (r.code === 0 && compareCodeStdout(r.stdout, t.output) === null) passes++;
      }
      return passes === j.tests.length;
    });
    peerRates.push(SOLUTIONS / ((performance.now() - t0) / 1000));
    const theirsPassed = theirs.filter(Boolean).length;
    if (oursPassed !== SOLUTIONS || theirsPassed !== SOLUTIONS) {
      throw new Error(
        `workload check failed: klear passed ${oursPassed}, peer ${theirsPassed} of ${SOLUTIONS}`,
      );
    }
    console.log(
      `rep ${rep + 1}: klear ${klearRates[rep].toFixed(2)} solutions/s, bare python3 per test ${peerRates[rep].toFixed(2)} solutions/s`,
    );
  }
  const k = median(klearRates);
  const p = median(peerRates);
  console.log(
    `workload: ${SOLUTIONS} solutions × ${TESTS} stdin tests, ${CONCURRENCY} in flight, ${REPS} reps (medians)`,
  );
  console.log(
    `RESULT sandbox klear=${k.toFixed(2)} peer=${p.toFixed(2)} unit=solutions/s ratio=${(k / p).toFixed(2)}`,
  );
}

await main();
