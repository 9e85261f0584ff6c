/** Exact rationals over BigInt, always reduced with a positive denominator. */
export interface Rational {
  n: bigint;
  d: bigint;
}

const abs = (x: bigint) => (x < 0n ? -x : x);

export function gcd(a: bigint, b: bigint): bigint {
  a = abs(a);
  b = abs(b);
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function rat(n: bigint, d = 1n): Rational {
  if (d === 0n) throw new RangeError("zero denominator");
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d);
  return g > 1n ? { n: n / g, d: d / g } : { n, d };
}

export const ratAdd = (a: Rational, b: Rational) => rat(a.n * b.d + b.n * a.d, a.d * b.d);
export const ratSub = (a: Rational, b: Rational) => rat(a.n * b.d - b.n * a.d, a.d * b.d);
export const ratMul = (a: Rational, b: Rational) => rat(a.n * b.n, a.d * b.d);
export const ratDiv = (a: Rational, b: Rational) => rat(a.n * b.d, a.d * b.n);
export const ratEq = (a: Rational, b: Rational) => a.n === b.n && a.d === b.d;
export const ratIsInt = (a: Rational) => a.d === 1n;
export const ratSign = (a: Rational) => (a.n > 0n ? 1 : a.n < 0n ? -1 : 0);

export function bitLength(x: bigint): number {
  return abs(x).toString(16).length * 4;
}

/** Converts to a double without overflowing on huge numerators and denominators. */
export function ratToNumber(a: Rational): number {
  const nb = bitLength(a.n);
  const db = bitLength(a.d);
  if (nb < 1000 && db < 1000) return Number(a.n) / Number(a.d);
  const shift = BigInt(Math.max(0, Math.max(nb, db) - 900));
  return Number(a.n >> shift) / Number(a.d >> shift);
}

/** Integer power; returns null when the result would exceed `maxBits` (so `2^{10^9}` cannot hang). */
export function ratPow(a: Rational, e: bigint, maxBits = 20_000): Rational | null {
  if (e === 0n) return { n: 1n, d: 1n };
  if (a.n === 0n) return e > 0n ? { n: 0n, d: 1n } : null;
  const k = e < 0n ? -e : e;
  let r: Rational;
  if (a.d === 1n && (a.n === 1n || a.n === -1n)) r = { n: a.n === -1n && k % 2n === 1n ? -1n : 1n, d: 1n };
  else {
    if (BigInt(Math.max(bitLength(a.n), bitLength(a.d))) * k > BigInt(maxBits)) return null;
    r = { n: a.n ** k, d: a.d ** k };
  }
  return e < 0n ? rat(r.d, r.n) : r;
}

/** Exact integer k-th root, or null when x is not a perfect k-th power. */
export function intRoot(x: bigint, k: number): bigint | null {
  if (x < 0n) {
    if (k % 2 === 0) return null;
    const r = intRoot(-x, k);
    return r === null ? null : -r;
  }
  if (x < 2n) return x;
  if (bitLength(x) > 4000) return null;
  let guess = BigInt(Math.round(Number(x) ** (1 / k)));
  if (!Number.isFinite(Number(x))) {
    // Newton's method from a power of two above the root.
    guess = 1n << BigInt(Math.ceil(bitLength(x) / k) + 1);
    const K = BigInt(k);
    for (let i = 0; i < 200; i++) {
      const next = ((K - 1n) * guess + x / guess ** (K - 1n)) / K;
      if (next >= guess) break;
      guess = next;
    }
  }
  for (const c of [guess - 1n, guess, guess + 1n]) if (c >= 0n && c ** BigInt(k) === x) return c;
  return null;
}

export function ratToString(a: Rational): string {
  return a.d === 1n ? a.n.toString() : `${a.n}/${a.d}`;
}
