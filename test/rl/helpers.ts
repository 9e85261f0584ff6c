// Shared fixtures for the rl tests: random token batches from a seeded Rng.
import { Rng } from "../../src/util/rng.js";

export interface RandomBatch {
  logp: number[][];
  oldLogp: number[][];
  refLogp: number[][];
  entropy: number[][];
  mask: number[][];
  advantages: number[];
}

/** Rows of random lengths, ratios within ±`spread` in log space, about 20% masked tokens, some empty rows. */
export function randomBatch(seed: number, rows = 6, maxLen = 9, spread = 0.6): RandomBatch {
  const rng = new Rng(seed);
  const batch: RandomBatch = { logp: [], oldLogp: [], refLogp: [], entropy: [], mask: [], advantages: [] };
  for (let i = 0; i < rows; i++) {
    const n = 1 + Math.floor(rng.uniform() * maxLen);
    const old = Array.from({ length: n }, () => -0.1 - 3 * rng.uniform());
    batch.oldLogp.push(old);
    batch.logp.push(old.map((o) => o + spread * (2 * rng.uniform() - 1)));
    batch.refLogp.push(old.map((o) => o + 0.3 * (2 * rng.uniform() - 1)));
    batch.entropy.push(old.map(() => 2 * rng.uniform()));
    const emptyRow = i === rows - 1;
    batch.mask.push(old.map(() => (emptyRow || rng.uniform() < 0.2 ? 0 : 1)));
    batch.advantages.push(2 * rng.uniform() - 1);
  }
  return batch;
}

export function close(actual: number, expected: number, tol: number, what: string): void {
  const err = Math.abs(actual - expected);
  if (!(err <= tol * Math.max(1, Math.abs(expected)))) {
    throw new Error(`${what}: ${actual} vs ${expected} (|diff| ${err})`);
  }
}
