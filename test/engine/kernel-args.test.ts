// Every native kernel family checks the arrays it is given against the dimensions it is told: a wrong
// length or an out-of-range id throws a KlearError naming the kernel and the argument, before any
// memory is touched (and a correct call still works right after).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../../src/engine/backend.js";
import {
  getNativeBackend,
  getNativeConvert,
  NATIVE_BAD_ARGUMENT,
  nativeAvailable,
} from "../../src/engine/native.js";
import { KlearError } from "../../src/util/errors.js";

const skip = nativeAvailable() ? false : "native addon not built: run `npm run setup`";
const f = (n: number) => new Float32Array(n);
const i32 = (n: number) => new Int32Array(n);

function rejects(call: () => unknown, kernel: string, argument: string): void {
  assert.throws(call, (e: unknown) => {
    assert.ok(e instanceof KlearError, `expected a KlearError, got ${String(e)}`);
    assert.equal(e.code, NATIVE_BAD_ARGUMENT);
    assert.match(e.message, new RegExp(`${kernel}: .*${argument}`));
    return true;
  });
}

test("gemm: short operands, small leading dimensions and non-integer sizes are named", { skip }, () => {
  const be: Backend = getNativeBackend();
  // C[2×3] = A[2×4]·B[4×3]
  be.gemm(false, false, 2, 3, 4, 1, f(8), 4, f(12), 3, 0, f(6), 3);
  rejects(() => be.gemm(false, false, 2, 3, 4, 1, f(7), 4, f(12), 3, 0, f(6), 3), "gemm", "a holds 7");
  rejects(() => be.gemm(false, true, 2, 3, 4, 1, f(8), 4, f(11), 4, 0, f(6), 3), "gemm", "b holds 11");
  rejects(() => be.gemm(false, false, 2, 3, 4, 1, f(8), 4, f(12), 3, 0, f(5), 3), "gemm", "c holds 5");
  rejects(
    () => be.gemm(false, false, 2, 3, 4, 1, f(8), 2, f(12), 3, 0, f(6), 3),
    "gemm",
    "leading dimension",
  );
  rejects(() => be.gemm(false, false, 2.5, 3, 4, 1, f(8), 4, f(12), 3, 0, f(6), 3), "gemm", "m = 2.5");
  rejects(() => be.gemm(false, false, -1, 3, 4, 1, f(8), 4, f(12), 3, 0, f(6), 3), "gemm", "non-negative");
});

test("rmsnorm family: x, weight, rstd and dWeight lengths", { skip }, () => {
  const be = getNativeBackend();
  be.rmsnorm(f(12), f(4), f(12), f(3), 3, 4, 1e-6);
  rejects(() => be.rmsnorm(f(11), f(4), f(12), f(3), 3, 4, 1e-6), "rmsnorm", "x holds 11");
  rejects(() => be.rmsnorm(f(12), f(3), f(12), f(3), 3, 4, 1e-6), "rmsnorm", "weight holds 3");
  rejects(() => be.rmsnorm(f(12), f(4), f(12), f(2), 3, 4, 1e-6), "rmsnorm", "rstd holds 2");
  rejects(
    () => be.rmsnormBackward(f(12), f(12), f(4), f(3), f(12), f(3), 3, 4, false),
    "rmsnormBackward",
    "dWeight holds 3",
  );
});

test("rope: x length, an odd head size and positions past the table", { skip }, () => {
  const be = getNativeBackend();
  const cos = f(8 * 2);
  const sin = f(8 * 2);
  be.rope(f(2 * 3 * 4), cos, sin, Int32Array.from([0, 7]), 2, 3, 4, false);
  rejects(() => be.rope(f(23), cos, sin, Int32Array.from([0, 7]), 2, 3, 4, false), "rope", "x holds 23");
  rejects(
    () => be.rope(f(24), cos, sin, Int32Array.from([0, 8]), 2, 3, 4, false),
    "rope",
    "positions\\[1\\] = 8",
  );
  rejects(() => be.rope(f(24), cos, f(4), Int32Array.from([0, 1]), 2, 3, 4, false), "rope", "sin holds 4");
  rejects(() => be.rope(f(18), cos, sin, Int32Array.from([0, 1]), 2, 3, 3, false), "rope", "even");
  rejects(() => be.rope(f(24), cos, sin, i32(1), 2, 3, 4, false), "rope", "positions holds 1");
});

test("attention family: training, backward, KV writes and decode", { skip }, () => {
  const be = getNativeBackend();
  const [B, T, H, Hkv, hd] = [2, 3, 4, 2, 2];
  const q = () => f(B * T * H * hd);
  const kv = () => f(B * T * Hkv * hd);
  const lse = () => f(B * H * T);
  be.attention(q(), kv(), kv(), q(), lse(), B, T, H, Hkv, hd, null, 1);
  rejects(
    () => be.attention(q(), f(5), kv(), q(), lse(), B, T, H, Hkv, hd, null, 1),
    "attention",
    "k holds 5",
  );
  rejects(
    () => be.attention(q(), kv(), kv(), q(), f(3), B, T, H, Hkv, hd, null, 1),
    "attention",
    "lse holds 3",
  );
  rejects(
    () => be.attention(q(), kv(), kv(), q(), lse(), B, T, H, Hkv, hd, Int32Array.from([3, 4]), 1),
    "attention",
    "lengths\\[1\\] = 4",
  );
  rejects(
    () =>
      be.attention(
        q(),
        kv(),
        kv(),
        q(),
        lse(),
        B,
        T,
        H,
        Hkv,
        hd,
        null,
        1,
        Int32Array.from([0, 0, 3, 0, 0, 0]),
      ),
    "attention",
    "segStart\\[2\\] = 3",
  );
  rejects(
    () => be.attention(q(), kv(), kv(), q(), lse(), B, T, 3, Hkv, hd, null, 1),
    "attention",
    "multiple",
  );
  rejects(
    () => be.attentionBackward(q(), q(), kv(), kv(), q(), lse(), q(), kv(), f(1), B, T, H, Hkv, hd, null, 1),
    "attentionBackward",
    "dv holds 1",
  );
  const maxLen = 4;
  const cache = f(B * Hkv * maxLen * hd);
  be.kvWrite(f(2 * Hkv * hd), cache, Int32Array.from([0, 1]), Int32Array.from([3, 0]), 2, Hkv, hd, maxLen);
  rejects(
    () =>
      be.kvWrite(
        f(2 * Hkv * hd),
        cache,
        Int32Array.from([0, 2]),
        Int32Array.from([0, 0]),
        2,
        Hkv,
        hd,
        maxLen,
      ),
    "kvWrite",
    "rowSeq\\[1\\] = 2",
  );
  rejects(
    () =>
      be.kvWrite(
        f(2 * Hkv * hd),
        cache,
        Int32Array.from([0, 1]),
        Int32Array.from([4, 0]),
        2,
        Hkv,
        hd,
        maxLen,
      ),
    "kvWrite",
    "rowPos\\[0\\] = 4",
  );
  const dq = () => f(2 * H * hd);
  be.attentionDecode(
    dq(),
    cache,
    cache,
    dq(),
    Int32Array.from([0, 1]),
    Int32Array.from([3, 1]),
    2,
    H,
    Hkv,
    hd,
    maxLen,
    1,
  );
  rejects(
    () =>
      be.attentionDecode(dq(), cache, cache, f(3), Int32Array.from([0, 1]), i32(2), 2, H, Hkv, hd, maxLen, 1),
    "attentionDecode",
    "out holds 3",
  );
  rejects(
    () =>
      be.attentionDecode(dq(), cache, f(8), dq(), Int32Array.from([0, 1]), i32(2), 2, H, Hkv, hd, maxLen, 1),
    "attentionDecode",
    "vCache holds 8",
  );
});

test("elementwise family: swiglu, add, scale, embedding ids and lengths", { skip }, () => {
  const be = getNativeBackend();
  be.swiglu(f(5), f(5), f(5), 5);
  rejects(() => be.swiglu(f(5), f(4), f(5), 5), "swiglu", "up holds 4");
  rejects(() => be.swigluBackward(f(5), f(5), f(5), f(5), f(4), 5), "swigluBackward", "dUp holds 4");
  rejects(() => be.add(f(4), f(5), 5), "add", "dst holds 4");
  rejects(() => be.scale(f(4), 2, 5), "scale", "x holds 4");
  be.embedding(f(10 * 3), Int32Array.from([9, 0]), f(6), 2, 3);
  rejects(
    () => be.embedding(f(10 * 3), Int32Array.from([10, 0]), f(6), 2, 3),
    "embedding",
    "ids\\[0\\] = 10",
  );
  rejects(
    () => be.embedding(f(10 * 3), Int32Array.from([-1, 0]), f(6), 2, 3),
    "embedding",
    "ids\\[0\\] = -1",
  );
  rejects(() => be.embedding(f(10 * 3), Int32Array.from([1, 0]), f(5), 2, 3), "embedding", "out holds 5");
  rejects(
    () => be.embeddingBackward(f(6), Int32Array.from([1, 10]), f(30), 2, 3),
    "embeddingBackward",
    "ids\\[1\\]",
  );
  // The wrong array type is named too.
  rejects(
    () => be.embedding(f(30), new Float32Array(2) as unknown as Int32Array, f(6), 2, 3),
    "embedding",
    "Int32Array",
  );
});

test("loss family: logits length and targets past the vocabulary", { skip }, () => {
  const be = getNativeBackend();
  const tg = Int32Array.from([1, -1]);
  be.logSoftmaxGather(f(2 * 5), tg, 2, 5, f(2), f(2), null);
  rejects(() => be.logSoftmaxGather(f(9), tg, 2, 5, f(2), f(2), null), "logSoftmaxGather", "logits holds 9");
  rejects(
    () => be.logSoftmaxGather(f(10), Int32Array.from([5, 0]), 2, 5, f(2), f(2), null),
    "logSoftmaxGather",
    "targets\\[0\\] = 5",
  );
  rejects(
    () => be.logSoftmaxGather(f(10), tg, 2, 5, f(2), f(2), f(1)),
    "logSoftmaxGather",
    "entropy holds 1",
  );
  rejects(
    () => be.logSoftmaxGatherBackward(f(10), tg, f(2), null, f(2), null, f(9), 2, 5),
    "logSoftmaxGatherBackward",
    "dLogits holds 9",
  );
});

test("optimizer family: adamw moments and sumSquares lengths", { skip }, () => {
  const be = getNativeBackend();
  be.adamw(f(4), f(4), f(4), f(4), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 1);
  rejects(() => be.adamw(f(4), f(4), f(4), f(3), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 1), "adamw", "v holds 3");
  rejects(() => be.sumSquares(f(3), 4), "sumSquares", "x holds 3");
  assert.equal(be.sumSquares(Float32Array.from([1, 2]), 2), 5);
});

test("convert family: a destination too small and a wrong dtype code", { skip }, async () => {
  const cv = getNativeConvert();
  assert.ok(cv, "the addon exports the conversions");
  assert.throws(
    () => cv.convertBf16ToF32(new Uint16Array(3), f(4)),
    (e: KlearError) => e.code === NATIVE_BAD_ARGUMENT && /convert: source holds fewer/.test(e.message),
  );
  assert.throws(
    () => cv.convertF32ToF16(f(4), new Uint16Array(3)),
    (e: KlearError) => e.code === NATIVE_BAD_ARGUMENT && /destination has room/.test(e.message),
  );
  assert.throws(
    () => cv.readConvert(0, 0, 7 as 0, f(1)),
    (e: KlearError) => e.code === NATIVE_BAD_ARGUMENT && /dtype code/.test(e.message),
  );
});
