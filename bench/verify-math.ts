/**
 * bench:verify-math — klear's verifier against Math-Verify (PyPI, in a venv under .cache/) on the
 * same 1,000 realistic (gold, response) pairs, in one run. Gold answers come from the public
 * benchmarks in ../shared/data/benchmarks; responses are MATH-500's own worked solutions for about 150
 * items and model-style text for the rest (think blocks, boxed answers,
 * "Final Answer: … I hope it is correct", plain "Answer:" lines, display math), right in equivalent
 * forms or wrong in near-miss forms. Both sides run single-threaded on the same pairs; times are medians.
 *
 * Ends with:
 *   RESULT verify-math klear=<checks/s> peer=<checks/s> unit=checks/s ratio=<klear/peer>
 *   RESULT verify-math-agreement klear=<agree%> peer=100 unit=percent ratio=<agree/100>
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { verifyMath } from "../src/rewards/math/index.js";
import { Rng } from "../src/util/rng.js";

const ROOT = join(import.meta.dirname, "..");
const DATA = join(ROOT, "../shared/data/benchmarks");
const CACHE = join(ROOT, ".cache");
const VENV = join(CACHE, "math-verify-venv");
const PY = join(VENV, "bin/python");
const PEER = join(ROOT, "bench/peers/math_verify_peer.py");
const MV_SPEC = "math-verify==0.8.0";
const N_PAIRS = 1000;
const ROUNDS = 3;

function ensurePeer(): void {
  if (existsSync(PY)) {
    const ok = spawnSync(PY, ["-c", "import math_verify"], { encoding: "utf8" });
    if (ok.status === 0) return;
  }
  mkdirSync(CACHE, { recursive: true });
  console.error(`installing ${MV_SPEC} into ${VENV} …`);
  let venv = spawnSync("/usr/bin/python3", ["-m", "venv", VENV], { stdio: "inherit" });
  if (venv.status !== 0) {
    // Debian splits venv out of the interpreter package.
    execFileSync("apt-get", ["install", "-y", "python3-venv"], { stdio: "inherit" });
    venv = spawnSync("/usr/bin/python3", ["-m", "venv", VENV], { stdio: "inherit" });
    if (venv.status !== 0) throw new Error("could not create the Math-Verify venv (python3 -m venv failed)");
  }
  execFileSync(join(VENV, "bin/pip"), ["install", "-q", MV_SPEC], { stdio: "inherit" });
}

interface Pair {
  gold: string;
  response: string;
  source: string;
  kind: "right" | "wrong" | "none";
}

function readJsonl(file: string): Record<string, unknown>[] {
  return readFileSync(join(DATA, file), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

function loadGolds(): { gold: string; source: string; solution?: string }[] {
  const out: { gold: string; source: string; solution?: string }[] = [];
  for (const r of readJsonl("math500.jsonl")) {
    out.push({ gold: String(r.answer), source: "math500", solution: String(r.solution) });
  }
  for (const r of readJsonl("aime24.jsonl"))
    out.push({ gold: String((r.meta as Record<string, unknown>).answer), source: "aime24" });
  for (const r of readJsonl("aime25.jsonl"))
    out.push({ gold: String((r.meta as Record<string, unknown>).solution), source: "aime25" });
  for (const r of readJsonl("hmmt_feb_2025.jsonl")) out.push({ gold: String(r.answer), source: "hmmt25" });
  for (const r of readJsonl("amc23.jsonl"))
    out.push({ gold: String(Math.round(Number(r.answer))), source: "amc23" });
  const gsm = readJsonl("gsm8k_test.jsonl");
  for (const r of gsm.slice(0, N_PAIRS - out.length)) {
    out.push({ gold: String(r.answer).split("####").pop()?.trim().replace(/,/g, "") ?? "", source: "gsm8k" });
  }
  return out.slice(0, N_PAIRS);
}

const INT = /^-?\d+$/;
const FRAC = /^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$/;

function terminatingDecimal(a: number, b: number): string | null {
  let d = b;
  while (d % 2 === 0) d /= 2;
  while (d % 5 === 0) d /= 5;
  if (d !== 1) return null;
  const s = String(a / b);
  return s.length <= 8 ? s : null;
}

function withThousands(n: string): string {
  return n.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function rightForms(gold: string): string[] {
  const forms = [gold];
  const g = gold.trim();
  if (INT.test(g)) {
    if (Math.abs(Number(g)) >= 1000) forms.push(withThousands(g), withThousands(g).replace(/,/g, "{,}"));
    forms.push(`${g}.0`, `x = ${g}`);
  }
  const f = FRAC.exec(g);
  if (f) {
    const [, sign, a, b] = f;
    forms.push(`${sign}\\dfrac{${a}}{${b}}`, `${sign}${a}/${b}`);
    const dec = terminatingDecimal(Number(a), Number(b));
    if (dec) forms.push(`${sign}${dec}`);
  }
  if (g.includes("\\frac")) forms.push(g.replace(/\\frac/g, "\\dfrac"));
  if (/^\(.*\)$/.test(g)) forms.push(`\\left${g.slice(0, -1)}\\right)`);
  if (g.includes(",")) forms.push(g.replace(/,\s*/g, ", "));
  // "x = <answer>" for mathematical answers; nobody writes "x = \text{Evelyn}".
  if (!g.includes("=") && !INT.test(g) && !g.includes("\\text"))
    forms.push(`${/^[a-z]$/.test(g) ? "k" : "x"} = ${g}`);
  return forms;
}

function wrongForms(gold: string): string[] {
  const g = gold.trim();
  if (INT.test(g)) {
    const n = BigInt(g);
    return [String(n + 1n), String(n - 1n), String(n * 2n), String(n === 0n ? 7n : -n)];
  }
  const f = FRAC.exec(g);
  if (f) {
    const [, sign, a, b] = f;
    const out = [
      `${sign}\\frac{${Number(a) + 1}}{${b}}`,
      (Number(`${sign}1`) * (Number(a) / Number(b))).toFixed(2),
    ];
    if (a !== b) out.push(`${sign}\\frac{${b}}{${a}}`);
    return out;
  }
  const digit = /\d/.exec(g);
  if (digit) {
    const d = (Number(digit[0]) + 1) % 10;
    return [g.slice(0, digit.index) + String(d) + g.slice(digit.index + 1), `${g} + 1`];
  }
  return [`${g} + 1`, "0"];
}

const REASONING = [
  "First, we compute $2 \\cdot 3 = 6$ and add $4$ to get $10$.",
  "Let $x$ be the unknown. Then $3x + 5 = 20$, so $x = 5$.",
  "We expand $(a+b)^2 = a^2 + 2ab + b^2$ and substitute the values from the problem.",
  "Checking small cases: for $n = 1$ we get $1$, for $n = 2$ we get $4$, and the pattern continues.",
  "Since the triangle has sides $3$, $4$ and $5$, its area is $\\frac{1}{2} \\cdot 3 \\cdot 4 = 6$.",
  "By the quadratic formula, $x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}$.",
  "There are $\\binom{5}{2} = 10$ ways to choose the pair, and each is equally likely.",
  "Multiplying both sides by $12$ clears the denominators: $4a + 3b = 24$.",
];

function reasoning(rng: Rng): string {
  const k = 1 + rng.int(3);
  return Array.from({ length: k }, () => REASONING[rng.int(REASONING.length)]).join(" ");
}

function respond(ans: string, rng: Rng, decoy: string): string {
  const r = reasoning(rng);
  const plainOk = /^-?[\d,.]+$/.test(ans);
  const t = rng.int(plainOk ? 8 : 7);
  switch (t) {
    case 0:
      return `<think>\n${r}\n</think>\n\nTherefore, the answer is $\\boxed{${ans}}$.`;
    case 1:
      return `${r}\n\nThe final answer is $\\boxed{${ans}}$.`;
    case 2:
      return `${r}\nFinal Answer: The final answer is $${ans}$. I hope it is correct.`;
    case 3:
      return `${r}\n\n**Answer:** $${ans}$`;
    case 4:
      return `<think>${r}</think>\nSo we get\n\\[\n${ans}\n\\]`;
    case 5:
      return `<think>${r} Maybe it is \\boxed{${decoy}}? Let me recheck.</think>\n\n${r}\nThe answer is \\boxed{${ans}}.`;
    case 6:
      return `${r} Putting it together, \\(${ans}\\) is the value we want, i.e. \\boxed{${ans}}`;
    default:
      return `${r}\nSo the answer is ${ans}.`;
  }
}

export function buildPairs(seed = 20241128): Pair[] {
  const rng = new Rng(seed);
  const pairs: Pair[] = [];
  for (const { gold, source, solution } of loadGolds()) {
    const u = rng.uniform();
    // A share of MATH-500 items use the dataset's own worked solution: real prose, real boxing habits.
    if (solution && rng.uniform() < 0.3) {
      pairs.push({ gold, source, kind: "right", response: solution });
      continue;
    }
    if (u < 0.03) {
      pairs.push({ gold, source, kind: "none", response: `<think>${reasoning(rng)} Hmm, let me reconsider` });
      continue;
    }
    const right = u < 0.6;
    const forms = right ? rightForms(gold) : wrongForms(gold);
    const ans = forms[rng.int(forms.length)];
    const decoy = wrongForms(gold)[0];
    pairs.push({ gold, source, kind: right ? "right" : "wrong", response: respond(ans, rng, decoy) });
  }
  return pairs;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function main(): void {
  if (!existsSync(DATA)) {
    console.error(`bench:verify-math needs ${DATA} (the shared public data); not found`);
    process.exit(1);
  }
  ensurePeer();
  const pairs = buildPairs();
  mkdirSync(join(CACHE, "bench"), { recursive: true });
  const pairFile = join(CACHE, "bench/verify-math-pairs.json");
  writeFileSync(pairFile, JSON.stringify(pairs.map(({ gold, response }) => ({ gold, response }))));
  const kinds = pairs.reduce<Record<string, number>>((m, p) => {
    m[p.kind] = (m[p.kind] ?? 0) + 1;
    return m;
  }, {});
  console.log(
    `pairs: ${pairs.length} (${Object.entries(kinds)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")})`,
  );

  // Rounds interleave klear and Math-Verify so that load from other processes on a shared machine
  // falls on both alike; each round runs klear twice (single-threaded, warmed up) and the peer once.
  for (const p of pairs.slice(0, 50)) verifyMath(p.gold, p.response);
  let verdicts: boolean[] = [];
  const klearSecs: number[] = [];
  const peerSecs: number[] = [];
  let peer: { verdicts: boolean[]; seconds: number[]; version: string } = {
    verdicts: [],
    seconds: [],
    version: "",
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < 2; k++) {
      const t0 = performance.now();
      verdicts = pairs.map((p) => verifyMath(p.gold, p.response).correct);
      klearSecs.push((performance.now() - t0) / 1000);
    }
    const out = execFileSync(PY, [PEER, pairFile, "--runs", "1"], { encoding: "utf8", maxBuffer: 64 << 20 });
    peer = JSON.parse(out);
    peerSecs.push(...peer.seconds);
  }

  let agree = 0;
  const diffs: string[] = [];
  for (const [i, p] of pairs.entries()) {
    if (verdicts[i] === peer.verdicts[i]) agree++;
    else if (diffs.length < 25) {
      diffs.push(
        `  [${p.source}/${p.kind}] gold ${JSON.stringify(p.gold)} klear=${verdicts[i]} math-verify=${peer.verdicts[i]}\n    ${JSON.stringify(p.response.slice(-140))}`,
      );
    }
  }
  const kSec = median(klearSecs);
  const pSec = median(peerSecs);
  const kRate = pairs.length / kSec;
  const pRate = pairs.length / pSec;
  const agreePct = (100 * agree) / pairs.length;
  const correctK = verdicts.filter(Boolean).length;
  const correctP = peer.verdicts.filter(Boolean).length;
  console.log(
    `klear: ${klearSecs.map((s) => s.toFixed(3)).join(" ")} s per pass (median ${kSec.toFixed(3)}), ${correctK} judged correct`,
  );
  console.log(
    `math-verify ${peer.version}: ${peerSecs.map((s) => s.toFixed(3)).join(" ")} s per pass (median ${pSec.toFixed(3)}), ${correctP} judged correct`,
  );
  console.log(`agreement: ${agree}/${pairs.length}`);
  if (diffs.length) console.log(`disagreements (first ${diffs.length}):\n${diffs.join("\n")}`);
  console.log(
    `RESULT verify-math klear=${kRate.toFixed(1)} peer=${pRate.toFixed(1)} unit=checks/s ratio=${(kRate / pRate).toFixed(2)}`,
  );
  console.log(
    `RESULT verify-math-agreement klear=${agreePct.toFixed(1)} peer=100 unit=percent ratio=${(agreePct / 100).toFixed(3)}`,
  );
}

// Runs when invoked as the bench; importing it (to reuse the pair builder) runs nothing.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
