/**
 * safetensors dtype conversion to and from float32. The addon (native/convert.cc) converts 16-bit floats
 * vectorised and across its thread pool; without it, one plain JS loop per dtype does the same, bit for bit
 * (the tests compare the two on every 16-bit pattern).
 */
import { getNativeConvert, type NativeConvert } from "../engine/native.js";
import { KlearError } from "../util/errors.js";
import {
  SAFETENSORS_READABLE_DTYPES,
  type SafetensorsDtype,
  type SafetensorsWriteDtype,
} from "./safetensors-header.js";

/** The two 16-bit float dtypes, by their HF `torch_dtype` names. */
export type Safetensors16BitDtype = "bfloat16" | "float16";

let nativeConvert: NativeConvert | null | undefined;
let nativeConvertDisabled = false;

export function native(): NativeConvert | null {
  if (nativeConvertDisabled) return null;
  if (nativeConvert === undefined) nativeConvert = getNativeConvert();
  return nativeConvert;
}

/**
 * Whether safetensors reads and writes may use the native addon (default: yes, when it is built). Returns
 * whether native conversion is in effect afterwards. Tests switch it off to exercise the JS fallback.
 */
export function setSafetensorsNative(enabled: boolean): boolean {
  nativeConvertDisabled = !enabled;
  return native() !== null;
}

/** Exact half → float32 bits (subnormals renormalised), as the hardware conversion. */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  // A NaN comes out quiet with its payload kept, as the x86 F16C instruction does.
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant ? 0x400000 : 0) | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  let e = 113;
  while (!(mant & 0x400)) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let halfTable: Uint32Array | undefined;
/** float32 bits of all 65,536 halves, built once: a lookup beats the bit twiddling per element. */
function halfToFloatBitsTable(): Uint32Array {
  if (!halfTable) {
    halfTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloatBits(h);
  }
  return halfTable;
}

/**
 * Widens `out.length` little-endian bfloat16/float16 values from `src` (bytes at any alignment) into `out`,
 * exactly: every finite value, infinity, subnormal and NaN payload is preserved.
 */
export function safetensorsDecode16(dtype: Safetensors16BitDtype, src: Uint8Array, out: Float32Array): void {
  const n = out.length;
  if (src.length < 2 * n) {
    throw new KlearError(
      "SAFETENSORS_INTERNAL",
      `decode of ${n} ${dtype} values got only ${src.length} bytes`,
      "report this as a klear bug",
    );
  }
  const fast = native();
  if (fast) {
    if (dtype === "bfloat16") fast.convertBf16ToF32(src, out);
    else fast.convertF16ToF32(src, out);
    return;
  }
  const bits = new Uint32Array(out.buffer, out.byteOffset, n);
  if (dtype === "bfloat16") {
    for (let i = 0; i < n; i++) bits[i] = (src[2 * i] | (src[2 * i + 1] << 8)) << 16;
  } else {
    const table = halfToFloatBitsTable();
    for (let i = 0; i < n; i++) bits[i] = table[src[2 * i] | (src[2 * i + 1] << 8)];
  }
}

/**
 * Narrows `src` into little-endian bfloat16/float16 bytes in `out`, rounding to nearest even; NaNs stay quiet
 * NaNs (bfloat16 keeps the top payload bits, float16 stores the canonical 0x7e00 with the sign).
 */
export function safetensorsEncode16(dtype: Safetensors16BitDtype, src: Float32Array, out: Uint8Array): void {
  const n = src.length;
  if (out.length < 2 * n) {
    throw new KlearError(
      "SAFETENSORS_INTERNAL",
      `encode of ${n} values into ${dtype} got only ${out.length} bytes`,
      "report this as a klear bug",
    );
  }
  const fast = native();
  if (fast) {
    if (dtype === "bfloat16") fast.convertF32ToBf16(src, out);
    else fast.convertF32ToF16(src, out);
    return;
  }
  if (dtype === "bfloat16") {
    for (let i = 0; i < n; i++) {
      const h = floatToBf16Bits(src[i]);
      out[2 * i] = h & 0xff;
      out[2 * i + 1] = h >>> 8;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const h = floatToF16Bits(src[i]);
      out[2 * i] = h & 0xff;
      out[2 * i + 1] = h >>> 8;
    }
  }
}

/** Decodes `count` little-endian elements of `dtype` from `bytes` into `out` starting at `outOffset`. */
export function decodeInto(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  count: number,
  out: Float32Array,
  outOffset: number,
) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32":
      // Copy through a Uint8Array view: the source may not be 4-byte aligned.
      new Uint8Array(out.buffer, out.byteOffset + outOffset * 4, count * 4).set(bytes.subarray(0, count * 4));
      return;
    case "BF16":
      safetensorsDecode16("bfloat16", bytes, out.subarray(outOffset, outOffset + count));
      return;
    case "F16":
      safetensorsDecode16("float16", bytes, out.subarray(outOffset, outOffset + count));
      return;
    case "F64":
      for (let i = 0; i < count; i++) out[outOffset + i] = view.getFloat64(8 * i, true);
      return;
    case "I64":
      for (let i = 0; i < count; i++) out[outOffset + i] = Number(view.getBigInt64(8 * i, true));
      return;
    case "I32":
      for (let i = 0; i < count; i++) out[outOffset + i] = view.getInt32(4 * i, true);
      return;
    case "I16":
      for (let i = 0; i < count; i++) out[outOffset + i] = view.getInt16(2 * i, true);
      return;
    case "I8":
      for (let i = 0; i < count; i++) out[outOffset + i] = view.getInt8(i);
      return;
    case "U8":
    case "BOOL":
      for (let i = 0; i < count; i++) out[outOffset + i] = bytes[i];
      return;
    default:
      throw new KlearError(
        "SAFETENSORS_DTYPE",
        `dtype ${dtype} cannot be converted to float32`,
        `convert the checkpoint to one of ${SAFETENSORS_READABLE_DTYPES.join(", ")}`,
      );
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 → bfloat16 bits with round-to-nearest-even (NaN stays a quiet NaN), as torch does. */
export function floatToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 → IEEE half bits with round-to-nearest-even, subnormals, overflow to ±inf. */
export function floatToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent, up to infinity.
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** The float32 value a number becomes after a round trip through `dtype` (what a loaded checkpoint holds). */
export function roundToDtype(values: Float32Array, dtype: SafetensorsWriteDtype): Float32Array {
  const out = new Float32Array(values.length);
  if (dtype === "float32") {
    out.set(values);
    return out;
  }
  const bytes = new Uint8Array(values.length * 2);
  safetensorsEncode16(dtype, values, bytes);
  safetensorsDecode16(dtype, bytes, out);
  return out;
}

export function encodeInto(
  dtype: SafetensorsWriteDtype,
  src: Float32Array,
  start: number,
  count: number,
  out: Uint8Array,
) {
  if (dtype === "float32") out.set(new Uint8Array(src.buffer, src.byteOffset + start * 4, count * 4));
  else safetensorsEncode16(dtype, src.subarray(start, start + count), out);
}
