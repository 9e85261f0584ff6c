// Every kernel: the native (float32) forward against the float64 reference, and the reference backward
// against central finite differences in float64 (then the native backward against the reference one).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import type { Backend } from "../../src/engine/backend.js";
import { getNativeBackend, nativeAvailable } from "../../src/engine/native.js";
import { ReferenceBackend } from "../../src/engine/reference.js";
import { Rng } from "../../src/util/rng.js";

const ref = new ReferenceBackend();
const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";
const native = (): Backend => getNativeBackend();

function randn(rng: Rng, n: number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}
const f32 = (a: Float64Array) => Float32Array.from(a);

/** max |a-b| / max(|b|, floor): scale-relative, so tiny entries do not dominate. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  assert.equal(a.length, b.length);
  let md = 0;
  let mr = floor;
  for (let i = 0; i < a.length; i++) {
    md = Math.max(md, Math.abs(a[i] - b[i]));
    mr = Math.max(mr, Math.abs(b[i]));
  }
  return md / mr;
}

function close(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  const e = relErr(actual, expected);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

/**
 * Checks d(Σ w·f(x))/dx from `analytic` against central differences of `f` at sampled indices of x.
 */
function gradCheck(
  what: string,
  x: Float64Array,
  f: () => Float64Array,
  w: Float64Array,
  analytic: Float64Array,
  samples = 24,
  tol = 1e-6,
): void {
  const rng = new Rng(7);
  const L = () => {
    const y = f();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += w[i] * y[i];
    return s;
  };
  let scale = 1e-8;
  for (let i = 0; i < analytic.length; i++) scale = Math.max(scale, Math.abs(analytic[i]));
  for (let s = 0; s < Math.min(samples, x.length); s++) {
    const i = samples >= x.length ? s : rng.int(x.length);
    const h = 1e-5 * Math.max(1, Math.abs(x[i]));
    const x0 = x[i];
    x[i] = x0 + h;
    const lp = L();
    x[i] = x0 - h;
    const lm = L();
    x[i] = x0;
    const fd = (lp - lm) / (2 * h);
    assert.ok(
      Math.abs(fd - analytic[i]) <= tol * scale + 1e-9,
      `${what}[${i}]: analytic ${analytic[i]} vs finite difference ${fd}`,
    );
  }
}

test("gemm: all transpose combinations, alpha/beta and leading dimensions", { skip }, () => {
  const rng = new Rng(1);
  for (const [tA, tB] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as const) {
    const M = 13;
    const N = 17;
    const K = 19;
    const lda = (tA ? M : K) + 3;
    const ldb = (tB ? K : N) + 2;
    const ldc = N + 5;
    const a = randn(rng, (tA ? K : M) * lda);
    const b = randn(rng, (tB ? N : K) * ldb);
    const c = randn(rng, M * ldc);
    const cRef = c.slice();
    ref.gemm(tA, tB, M, N, K, 0.7, a, lda, b, ldb, 0.3, cRef, ldc);
    const cN = f32(c);
    native().gemm(tA, tB, M, N, K, 0.7, f32(a), lda, f32(b), ldb, 0.3, cN, ldc);
    close(`gemm tA=${tA} tB=${tB}`, cN, cRef, 1e-5);
  }
});

test("gemm: sizes spanning several cache blocks, thin and wide, both gemm kernels agree", { skip }, () => {
  const rng = new Rng(11);
  for (const [M, N, K, tA, tB] of [
    [300, 70, 530, false, true],
    [9, 600, 260, false, false],
    [150, 45, 700, true, false],
    [1, 33, 257, true, true],
  ] as const) {
    const a = randn(rng, M * K);
    const b = randn(rng, N * K);
    const c = randn(rng, M * N);
    const lda = tA ? M : K;
    const ldb = tB ? K : N;
    const cRef = c.slice();
    ref.gemm(tA, tB, M, N, K, 1.5, a, lda, b, ldb, 1, cRef, N);
    const cN = f32(c);
    native().gemm(tA, tB, M, N, K, 1.5, f32(a), lda, f32(b), ldb, 1, cN, N);
    close(`gemm ${M}x${N}x${K} tA=${tA} tB=${tB}`, cN, cRef, 1e-5);
  }
});

test("rmsnorm forward and backward", { skip }, () => {
  const rng = new Rng(2);
  const rows = 9;
  const dim = 24;
  const x = randn(rng, rows * dim);
  const w = randn(rng, dim, 0.5).map((v) => v + 1);
  const y = new Float64Array(rows * dim);
  const rstd = new Float64Array(rows);
  const fwd = () => {
    ref.rmsnorm(x, w, y, rstd, rows, dim, 1e-6);
    return y.slice();
  };
  const yRef = fwd();
  const yN = new Float32Array(rows * dim);
  const rstdN = new Float32Array(rows);
  native().rmsnorm(f32(x), f32(w), yN, rstdN, rows, dim, 1e-6);
  close("rmsnorm y", yN, yRef, 1e-5);
  const dy = randn(rng, rows * dim);
  const dx = new Float64Array(rows * dim);
  const dw = new Float64Array(dim);
  fwd();
  ref.rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim, false);
  gradCheck("rmsnorm dx", x, fwd, dy, dx);
  gradCheck("rmsnorm dw", w, fwd, dy, dw);
  const dxN = new Float32Array(rows * dim).fill(1);
  const dwN = new Float32Array(dim);
  native().rmsnormBackward(f32(dy), f32(x), f32(w), rstdN, dxN, dwN, rows, dim, true);
  close(
    "rmsnorm dx native (accumulating onto 1)",
    dxN,
    dx.map((v) => v + 1),
    1e-5,
  );
  close("rmsnorm dw native", dwN, dw, 1e-5);
});

test("rope forward, inverse and backward", { skip }, () => {
  const rng = new Rng(3);
  const rows = 6;
  const heads = 3;
  const hd = 8;
  const maxPos = 10;
  const half = hd / 2;
  const cos = new Float64Array(maxPos * half);
  const sin = new Float64Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const ang = p * 10000 ** (-(2 * i) / hd);
      cos[p * half + i] = Math.cos(ang) * 1.1;
      sin[p * half + i] = Math.sin(ang) * 1.1;
    }
  }
  const pos = Int32Array.from([0, 3, 9, 1, 5, 5]);
  const x = randn(rng, rows * heads * hd);
  const fwd = () => {
    const y = x.slice();
    ref.rope(y, cos, sin, pos, rows, heads, hd, false);
    return y;
  };
  const yRef = fwd();
  const yN = f32(x);
  native().rope(yN, f32(cos), f32(sin), pos, rows, heads, hd, false);
  close("rope", yN, yRef, 1e-5);
  const dy = randn(rng, x.length);
  const dx = dy.slice();
  ref.rope(dx, cos, sin, pos, rows, heads, hd, true);
  gradCheck("rope dx", x, fwd, dy, dx);
  const dxN = f32(dy);
  native().rope(dxN, f32(cos), f32(sin), pos, rows, heads, hd, true);
  close("rope backward native", dxN, dx, 1e-5);
});

function attentionCase(
  seed: number,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  hd: number,
  lengths: number[] | null,
) {
  const rng = new Rng(seed);
  const q = randn(rng, B * T * H * hd);
  const k = randn(rng, B * T * Hkv * hd);
  const v = randn(rng, B * T * Hkv * hd);
  const lens = lengths ? Int32Array.from(lengths) : null;
  const scale = 1 / Math.sqrt(hd);
  const out = new Float64Array(q.length);
  const lse = new Float64Array(B * H * T);
  const fwd = () => {
    ref.attention(q, k, v, out, lse, B, T, H, Hkv, hd, lens, scale);
    return out.slice();
  };
  return { rng, q, k, v, lens, scale, out, lse, fwd };
}

test("causal GQA attention forward (padding lengths) and backward", { skip }, () => {
  const B = 2;
  const T = 7;
  const H = 4;
  const Hkv = 2;
  const hd = 8;
  const c = attentionCase(4, B, T, H, Hkv, hd, [7, 4]);
  const outRef = c.fwd();
  const outN = new Float32Array(outRef.length);
  const lseN = new Float32Array(c.lse.length);
  native().attention(f32(c.q), f32(c.k), f32(c.v), outN, lseN, B, T, H, Hkv, hd, c.lens, c.scale);
  close("attention out", outN, outRef, 1e-5);
  close("attention lse", lseN, c.lse, 1e-5);
  for (let t = 4; t < T; t++)
    for (let d = 0; d < H * hd; d++) assert.equal(outN[(1 * T + t) * H * hd + d], 0);

  const dOut = randn(c.rng, outRef.length);
  const dq = new Float64Array(c.q.length);
  const dk = new Float64Array(c.k.length);
  const dv = new Float64Array(c.v.length);
  c.fwd();
  ref.attentionBackward(dOut, c.q, c.k, c.v, c.out, c.lse, dq, dk, dv, B, T, H, Hkv, hd, c.lens, c.scale);
  gradCheck("attention dq", c.q, c.fwd, dOut, dq, 40);
  gradCheck("attention dk", c.k, c.fwd, dOut, dk, 40);
  gradCheck("attention dv", c.v, c.fwd, dOut, dv, 40);
  const dqN = new Float32Array(dq.length).fill(9);
  const dkN = new Float32Array(dk.length).fill(9);
  const dvN = new Float32Array(dv.length).fill(9);
  native().attentionBackward(
    f32(dOut),
    f32(c.q),
    f32(c.k),
    f32(c.v),
    outN,
    lseN,
    dqN,
    dkN,
    dvN,
    B,
    T,
    H,
    Hkv,
    hd,
    c.lens,
    c.scale,
  );
  close("attention dq native", dqN, dq, 2e-5);
  close("attention dk native", dkN, dk, 2e-5);
  close("attention dv native", dvN, dv, 2e-5);
});

test("attention over packed documents (segStart) forward and backward", { skip }, () => {
  const B = 2;
  const T = 9;
  const H = 2;
  const Hkv = 1;
  const hd = 8;
  const c = attentionCase(14, B, T, H, Hkv, hd, [9, 7]);
  // Row 0: documents [0,3) [3,4) [4,9); row 1: [0,5) [5,7) then padding.
  const segStart = Int32Array.from([0, 0, 0, 3, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 5, 5, 7, 7]);
  const fwd = () => {
    ref.attention(c.q, c.k, c.v, c.out, c.lse, B, T, H, Hkv, hd, c.lens, c.scale, segStart);
    return c.out.slice();
  };
  const outRef = fwd();
  const outN = new Float32Array(outRef.length);
  const lseN = new Float32Array(c.lse.length);
  native().attention(f32(c.q), f32(c.k), f32(c.v), outN, lseN, B, T, H, Hkv, hd, c.lens, c.scale, segStart);
  close("packed attention out", outN, outRef, 1e-5);
  // A document's first token attends only to itself: its output is its own value row.
  for (let d = 0; d < hd; d++) assert.ok(Math.abs(outN[3 * H * hd + d] - c.v[3 * Hkv * hd + d]) < 1e-5);
  const dOut = randn(c.rng, outRef.length);
  const dq = new Float64Array(c.q.length);
  const dk = new Float64Array(c.k.length);
  const dv = new Float64Array(c.v.length);
  fwd();
  ref.attentionBackward(
    dOut,
    c.q,
    c.k,
    c.v,
    c.out,
    c.lse,
    dq,
    dk,
    dv,
    B,
    T,
    H,
    Hkv,
    hd,
    c.lens,
    c.scale,
    segStart,
  );
  gradCheck("packed attention dq", c.q, fwd, dOut, dq, 30);
  gradCheck("packed attention dk", c.k, fwd, dOut, dk, 30);
  const dqN = new Float32Array(dq.length);
  const dkN = new Float32Array(dk.length);
  const dvN = new Float32Array(dv.length);
  native().attentionBackward(
    f32(dOut),
    f32(c.q),
    f32(c.k),
    f32(c.v),
    outN,
    lseN,
    dqN,
    dkN,
    dvN,
    B,
    T,
    H,
    Hkv,
    hd,
    c.lens,
    c.scale,
    segStart,
  );
  close("packed attention dq native", dqN, dq, 2e-5);
  close("packed attention dk native", dkN, dk, 2e-5);
  close("packed attention dv native", dvN, dv, 2e-5);
});

test("decode attention over a KV cache equals training attention", { skip }, () => {
  const B = 2;
  const T = 6;
  const H = 4;
  const Hkv = 1;
  const hd = 16;
  const maxLen = 9;
  const c = attentionCase(5, B, T, H, Hkv, hd, null);
  const outRef = c.fwd();
  for (const be of [ref, native()] as Backend[]) {
    const kc = new Float32Array(B * Hkv * maxLen * hd);
    const vc = new Float32Array(B * Hkv * maxLen * hd);
    const rows = B * T;
    const rowSeq = new Int32Array(rows);
    const rowPos = new Int32Array(rows);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        rowSeq[b * T + t] = b;
        rowPos[b * T + t] = t;
      }
    }
    be.kvWrite(f32(c.k), kc, rowSeq, rowPos, rows, Hkv, hd, maxLen);
    be.kvWrite(f32(c.v), vc, rowSeq, rowPos, rows, Hkv, hd, maxLen);
    const out = new Float32Array(rows * H * hd);
    be.attentionDecode(f32(c.q), kc, vc, out, rowSeq, rowPos, rows, H, Hkv, hd, maxLen, c.scale);
    close(`decode attention (${be.name})`, out, outRef, 1e-5);
  }
});

test("swiglu forward and backward", { skip }, () => {
  const rng = new Rng(6);
  const n = 50;
  const g = randn(rng, n, 3);
  const u = randn(rng, n);
  const out = new Float64Array(n);
  const fwd = () => {
    ref.swiglu(g, u, out, n);
    return out.slice();
  };
  const oRef = fwd();
  const oN = new Float32Array(n);
  native().swiglu(f32(g), f32(u), oN, n);
  close("swiglu", oN, oRef, 1e-5);
  const d = randn(rng, n);
  const dg = new Float64Array(n);
  const du = new Float64Array(n);
  ref.swigluBackward(d, g, u, dg, du, n);
  gradCheck("swiglu dgate", g, fwd, d, dg, n);
  gradCheck("swiglu dup", u, fwd, d, du, n);
  const dgN = new Float32Array(n);
  const duN = new Float32Array(n);
  native().swigluBackward(f32(d), f32(g), f32(u), dgN, duN, n);
  close("swiglu dgate native", dgN, dg, 1e-5);
  close("swiglu dup native", duN, du, 1e-5);
});

test("log-softmax-gather with entropy: forward, backward, masked rows", { skip }, () => {
  const rng = new Rng(8);
  const rows = 5;
  const V = 33;
  const z = randn(rng, rows * V, 2);
  z[3] = 40; // a dominant logit must not overflow
  const targets = Int32Array.from([3, 0, -1, 32, 7]);
  const logp = new Float64Array(rows);
  const lse = new Float64Array(rows);
  const ent = new Float64Array(rows);
  const fwd = () => {
    ref.logSoftmaxGather(z, targets, rows, V, logp, lse, ent);
    const y = new Float64Array(2 * rows);
    y.set(logp);
    y.set(ent, rows);
    return y;
  };
  fwd();
  const logpN = new Float32Array(rows);
  const lseN = new Float32Array(rows);
  const entN = new Float32Array(rows);
  native().logSoftmaxGather(f32(z), targets, rows, V, logpN, lseN, entN);
  close("logp", logpN, logp, 1e-5);
  close("entropy", entN, ent, 1e-5);
  assert.equal(logpN[2], 0);
  assert.equal(entN[2], 0);
  const dlp = randn(rng, rows);
  const dent = randn(rng, rows);
  const w = new Float64Array(2 * rows);
  w.set(dlp);
  w.set(dent, rows);
  const dz = new Float64Array(rows * V);
  fwd();
  ref.logSoftmaxGatherBackward(z, targets, lse, ent, dlp, dent, dz, rows, V);
  gradCheck("dlogits", z, fwd, w, dz, 60);
  const dzN = new Float32Array(rows * V);
  native().logSoftmaxGatherBackward(f32(z), targets, lseN, entN, f32(dlp), f32(dent), dzN, rows, V);
  close("dlogits native", dzN, dz, 1e-5);
  const dzN2 = new Float32Array(rows * V);
  native().logSoftmaxGatherBackward(f32(z), targets, lseN, null, f32(dlp), null, dzN2, rows, V);
  const dz2 = new Float64Array(rows * V);
  ref.logSoftmaxGatherBackward(z, targets, lse, null, dlp, null, dz2, rows, V);
  close("dlogits native without entropy", dzN2, dz2, 1e-5);
});

test("embedding gather and scatter-add (repeated ids)", { skip }, () => {
  const rng = new Rng(9);
  const V = 6;
  const D = 5;
  const table = randn(rng, V * D);
  const ids = Int32Array.from([1, 4, 1, 0, 5, 1]);
  const out = new Float32Array(ids.length * D);
  native().embedding(f32(table), ids, out, ids.length, D);
  const outRef = new Float64Array(ids.length * D);
  ref.embedding(table, ids, outRef, ids.length, D);
  close("embedding", out, outRef, 1e-6);
  const d = randn(rng, ids.length * D);
  const gRef = new Float64Array(V * D);
  ref.embeddingBackward(d, ids, gRef, ids.length, D);
  gradCheck(
    "embedding dtable",
    table,
    () => {
      ref.embedding(table, ids, outRef, ids.length, D);
      return outRef.slice();
    },
    d,
    gRef,
    V * D,
  );
  const g = new Float32Array(V * D);
  native().embeddingBackward(f32(d), ids, g, ids.length, D);
  close("embedding backward native", g, gRef, 1e-5);
});

test("adamw, add, scale and sumSquares match the reference", { skip }, () => {
  const rng = new Rng(10);
  const n = 100_003;
  const p = randn(rng, n);
  const g = randn(rng, n);
  const pN = f32(p);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  const mN = new Float32Array(n);
  const vN = new Float32Array(n);
  for (let step = 1; step <= 3; step++) {
    ref.adamw(p, g, m, v, n, 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
    native().adamw(pN, f32(g), mN, vN, n, 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
  }
  close("adamw params", pN, p, 1e-5);
  close("adamw m", mN, m, 1e-5);
  close("adamw v", vN, v, 1e-5);
  const x = f32(randn(rng, n));
  const ss = native().sumSquares(x, n);
  assert.ok(Math.abs(ss - ref.sumSquares(x, n)) <= 1e-9 * ss);
  const y = x.slice();
  native().scale(y, 0.5, n);
  native().add(y, x, n);
  for (let i = 0; i < n; i += 997) assert.equal(y[i], Math.fround(Math.fround(x[i] * 0.5) + x[i]));
});

test("one AdamW step equals PyTorch's formula on a hand-checked value", { skip }, () => {
  // torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.5), p=1, g=2, one step:
  // p = 1·(1 - 0.1·0.5) - 0.1 · (0.2/0.1) / (sqrt(0.004)/sqrt(0.001) + 1e-8) = 0.95 - 0.1 = 0.85
  const p = Float32Array.from([1]);
  native().adamw(
    p,
    Float32Array.from([2]),
    new Float32Array(1),
    new Float32Array(1),
    1,
    0.1,
    0.9,
    0.999,
    1e-8,
    0.5,
    1,
  );
  assert.ok(Math.abs(p[0] - 0.85) < 1e-6, `got ${p[0]}`);
});

test("the OpenBLAS path (row-loop attention, cblas_sgemm) passes the same kernel tests", { skip }, () => {
  if (process.env.KLEAR_GEMM) return; // already the child run
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", import.meta.filename], {
    encoding: "utf8",
    env: { ...process.env, KLEAR_GEMM: "openblas" },
  });
  assert.equal(r.status, 0, `KLEAR_GEMM=openblas kernel tests failed:\n${r.stdout.slice(-3000)}`);
});
