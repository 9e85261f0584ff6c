import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseSftConfig } from "../sft/config.js";
import { runSft } from "../sft/trainer.js";
import { atomicWriteFileSync } from "../util/atomic.js";
import { ConfigError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { demoTokenizer, type TinyModelShape, writeFreshCheckpoint } from "./tiny-model.js";

/**
 * A synthetic reasoning task small enough for a tiny model to learn on a CPU in a minute or two:
 * add a few one-digit numbers, showing a running sum one line per step (the chain of thought), then
 * give the answer in `\boxed{}` as the real math tasks do.
 *
 *   prompt      "7+5+3="
 *   completion  "7+5=12\n12+3=15\n\boxed{15}"
 *
 * Every character belongs to `ARITHMETIC_ALPHABET`, so a char-level vocabulary of a few dozen tokens covers it.
 */
export interface ArithmeticTaskOptions {
  /** Fewest numbers to add (≥ 2). */
  minTerms: number;
  /** Most numbers to add. */
  maxTerms: number;
  /** Operands are drawn uniformly from [0, maxOperand]. */
  maxOperand: number;
  /**
   * Probability that the programmatic teacher gets one step wrong (off by one), so its final answer is
   * wrong too: a noisy teacher, as RL on imperfect SFT data meets in practice. 0 = always right.
   */
  teacherNoise: number;
}

export const DEFAULT_ARITHMETIC_OPTIONS: ArithmeticTaskOptions = {
  minTerms: 2,
  maxTerms: 3,
  maxOperand: 9,
  teacherNoise: 0,
};

/** Every character a prompt or a teacher completion can contain. */
export const ARITHMETIC_ALPHABET = "0123456789+-=\n\\boxed{}";

export interface ArithmeticProblem {
  /** The numbers to add, in order. */
  terms: number[];
  /** What the model is given, e.g. "7+5+3=". */
  prompt: string;
  /** The teacher's worked solution (wrong when the noisy teacher erred; see `teacherCorrect`). */
  completion: string;
  /** The true sum. */
  answer: number;
  teacherCorrect: boolean;
}

function checkOptions(o: ArithmeticTaskOptions): void {
  const fail = (field: string, why: string, fix: string) => {
    throw new ConfigError(`arithmetic task: ${field} ${why}`, fix);
  };
  if (!Number.isInteger(o.minTerms) || o.minTerms < 2)
    fail("minTerms", `must be an integer ≥ 2, got ${o.minTerms}`, "use 2 or more");
  if (!Number.isInteger(o.maxTerms) || o.maxTerms < o.minTerms) {
    fail("maxTerms", `must be an integer ≥ minTerms (${o.minTerms}), got ${o.maxTerms}`, "raise maxTerms");
  }
  if (!Number.isInteger(o.maxOperand) || o.maxOperand < 1)
    fail("maxOperand", `must be an integer ≥ 1, got ${o.maxOperand}`, "use 9 for one-digit numbers");
  if (!(o.teacherNoise >= 0 && o.teacherNoise <= 1))
    fail("teacherNoise", `must be in [0, 1], got ${o.teacherNoise}`, "use 0 for a perfect teacher");
}

/** The problem for given terms, with the teacher's worked solution (exact unless `errStep` ≥ 0). */
export function arithmeticProblem(terms: number[], errStep = -1): ArithmeticProblem {
  const answer = terms.reduce((a, b) => a + b, 0);
  const lines: string[] = [];
  let running = terms[0];
  for (let i = 1; i < terms.length; i++) {
    let next = running + terms[i];
    if (i - 1 === errStep) next += next === 0 ? 1 : -1;
    lines.push(`${running}+${terms[i]}=${next}`);
    running = next;
  }
  lines.push(`\\boxed{${running}}`);
  return {
    terms,
    prompt: `${terms.join("+")}=`,
    completion: lines.join("\n"),
    answer,
    teacherCorrect: running === answer,
  };
}

/** One random problem drawn with `rng`. */
export function sampleArithmeticProblem(
  rng: Rng,
  options: Partial<ArithmeticTaskOptions> = {},
): ArithmeticProblem {
  const o = { ...DEFAULT_ARITHMETIC_OPTIONS, ...options };
  checkOptions(o);
  const count = o.minTerms + rng.int(o.maxTerms - o.minTerms + 1);
  const terms = Array.from({ length: count }, () => rng.int(o.maxOperand + 1));
  const errStep = o.teacherNoise > 0 && rng.uniform() < o.teacherNoise ? rng.int(count - 1) : -1;
  return arithmeticProblem(terms, errStep);
}

export interface ArithmeticSplit {
  /** Held-out problems, distinct from each other (by prompt). */
  test: ArithmeticProblem[];
  /** An endless stream of training problems, none of whose prompts is in `test`. Deterministic by seed. */
  train: () => ArithmeticProblem;
  /** Prompts held out of training. */
  heldOut: ReadonlySet<string>;
  /** One training problem drawn with `rng` (never a held-out prompt): for streams seeded by position. */
  drawTrain: (rng: Rng) => ArithmeticProblem;
}

/**
 * A deterministic train/test split by seed: `testSize` distinct held-out problems (always taught
 * correctly: they measure the model, not the teacher), and a training stream that never shows them.
 */
export function arithmeticSplit(
  seed: number,
  testSize: number,
  options: Partial<ArithmeticTaskOptions> = {},
): ArithmeticSplit {
  const o = { ...DEFAULT_ARITHMETIC_OPTIONS, ...options };
  checkOptions(o);
  let space = 0;
  for (let k = o.minTerms; k <= o.maxTerms; k++) space += (o.maxOperand + 1) ** k;
  if (testSize > space / 2) {
    throw new ConfigError(
      `arithmetic task: ${testSize} held-out problems would leave too few of the ${space} possible ones for training`,
      "lower the test size or raise maxTerms / maxOperand",
    );
  }
  const testRng = new Rng(seed ^ 0x7e57);
  const heldOut = new Set<string>();
  const test: ArithmeticProblem[] = [];
  while (test.length < testSize) {
    const p = sampleArithmeticProblem(testRng, { ...o, teacherNoise: 0 });
    if (heldOut.has(p.prompt)) continue;
    heldOut.add(p.prompt);
    test.push(p);
  }
  const drawTrain = (rng: Rng) => {
    for (;;) {
      const p = sampleArithmeticProblem(rng, o);
      if (!heldOut.has(p.prompt)) return p;
    }
  };
  const trainRng = new Rng(seed);
  return { test, train: () => drawTrain(trainRng), heldOut, drawTrain };
}

export interface ArithmeticVerdict {
  correct: boolean;
  /** The integer read from the last `\boxed{}`, or null. */
  extracted: number | null;
  reason: "correct" | "wrong-answer" | "no-boxed-answer" | "not-an-integer";
}

/** Checks a completion's final `\boxed{}` against the true sum; the chain of thought is not graded. */
export function verifyArithmetic(answer: number, completion: string): ArithmeticVerdict {
  const at = completion.lastIndexOf("\\boxed{");
  if (at < 0) return { correct: false, extracted: null, reason: "no-boxed-answer" };
  const end = completion.indexOf("}", at);
  const inner = completion.slice(at + 7, end < 0 ? undefined : end).trim();
  if (end < 0 || !/^[+-]?\d+$/.test(inner))
    return { correct: false, extracted: null, reason: "not-an-integer" };
  const extracted = Number.parseInt(inner, 10);
  return extracted === answer
    ? { correct: true, extracted, reason: "correct" }
    : { correct: false, extracted, reason: "wrong-answer" };
}

/** The arithmetic starting policy's model: small enough to learn the task on a CPU in a minute or two. */
export const ARITHMETIC_SFT_MODEL: TinyModelShape = {
  hiddenSize: 96,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
  intermediateSize: 256,
  maxPositions: 256,
};

export interface ArithmeticSftOptions {
  /** Seeds the model's init, the rows and the held-out split they avoid (default 0). */
  seed?: number;
  /** Optimizer steps, one epoch of steps × batchSize teacher rows in stream order (default 300). */
  steps?: number;
  batchSize?: number;
  /** Problems kept out of the rows: `arithmeticSplit(seed, heldOutSize)`'s test set (default 50). */
  heldOutSize?: number;
  /** The problems and the teacher (default: the task's defaults with teacherNoise 0.5). */
  task?: Partial<ArithmeticTaskOptions>;
  /** Fields over {@link ARITHMETIC_SFT_MODEL} (d96 × 2 layers, 4/2 heads of 16, SwiGLU 256, untied, context 256). */
  model?: Partial<TinyModelShape>;
  quiet?: boolean;
  log?: (line: string) => void;
}

/**
 * A starting policy for RL on the arithmetic task (`klear rl`'s tiny-cpu preset, the RL and server tests): a
 * fresh tiny Qwen3 supervised by `runSft` on a noisy teacher's solutions (half of them one step wrong by
 * default), so its samples are right about half the time and RL has something to fix. Writes `dir/data`,
 * `dir/checkpoints/init` and the SFT run `dir/sft`; resumes or reuses what is there. Returns the final
 * SFT checkpoint.
 */
export async function arithmeticSftCheckpoint(dir: string, opts: ArithmeticSftOptions = {}): Promise<string> {
  const seed = opts.seed ?? 0;
  const steps = opts.steps ?? 300;
  const batchSize = opts.batchSize ?? 32;
  const out = join(dir, "sft");
  const done = join(out, "result.json");
  if (existsSync(done)) return (JSON.parse(readFileSync(done, "utf8")) as { checkpoint: string }).checkpoint;
  const split = arithmeticSplit(seed, opts.heldOutSize ?? 50, { teacherNoise: 0.5, ...opts.task });
  const data = join(dir, "data", "sft.jsonl");
  if (!existsSync(data)) {
    const rows = Array.from({ length: steps * batchSize }, () => {
      const p = split.train();
      return `${JSON.stringify({ prompt: p.prompt, completion: p.completion })}\n`;
    });
    mkdirSync(dirname(data), { recursive: true });
    atomicWriteFileSync(data, rows.join(""));
  }
  const shape: TinyModelShape = { ...ARITHMETIC_SFT_MODEL, ...opts.model };
  const init = await writeFreshCheckpoint(join(dir, "checkpoints", "init"), demoTokenizer(), shape, seed);
  const config = parseSftConfig(
    {
      seed,
      init,
      data: { sources: [{ path: data, weight: 1 }], heldOutRows: 0 },
      // Prompt + completion + EOS as plain text, the loss on the completion and EOS.
      render: { template: "none" },
      pack: { maxTokens: shape.maxPositions, packing: false },
      train: { epochs: 1, shuffle: false, sequencesPerStep: batchSize, microSequences: batchSize },
      optimizer: { lr: 3e-3, minLrRatio: 0.1, warmupSteps: 20, weightDecay: 0.01, beta2: 0.99, gradClip: 1 },
      evalEvery: 0,
      checkpointEvery: steps,
    },
    "arithmetic sft",
  );
  const r = await runSft({
    config,
    out,
    resume: existsSync(join(out, "config.json")),
    quiet: opts.quiet,
    log: opts.log ?? (() => {}),
  });
  return r.checkpoint;
}
