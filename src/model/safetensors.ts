/**
 * safetensors read/write (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
 * a JSON header naming every tensor's dtype, shape and byte range, then the raw little-endian data.
 *
 * Reads are positioned reads of just the ranges asked for, so a 1 GB checkpoint needs its float32 copy plus a
 * bounded buffer, never the whole file in memory twice. With the native addon (native/convert.cc) each tensor
 * is read in 16 MB pieces on libuv's threads: float32 straight into the result, bf16/f16 through a 256 KB
 * cache-resident buffer per thread, converted vectorised into the result. Without it, one 8 MB staging buffer
 * and one plain JS loop per dtype do the same, bit for bit.
 * Sharded checkpoints (`model.safetensors.index.json` + `model-0000k-of-0000n.safetensors`) read and write
 * the way Hugging Face transformers does.
 */
import { constants as bufferConstants } from "node:buffer";
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { type FileHandle, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { getNativeConvert, type NativeConvert } from "../engine/native.js";
import { atomicWriteFile } from "../util/atomic.js";
import { mapConcurrent } from "../util/concurrency.js";
import { ConfigError, KlearError } from "../util/errors.js";

/** Every dtype the format defines; the ones klear converts to float32 are in SAFETENSORS_READABLE_DTYPES. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "U16"
  | "U32"
  | "U64"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export const SAFETENSORS_READABLE_DTYPES = [
  "F64",
  "F32",
  "F16",
  "BF16",
  "I64",
  "I32",
  "I16",
  "I8",
  "U8",
  "BOOL",
];
/** Dtypes klear writes; the names are those of HF config.json's `torch_dtype`. */
export const SAFETENSORS_WRITE_DTYPES = ["float32", "bfloat16", "float16"] as const;
export type SafetensorsWriteDtype = (typeof SAFETENSORS_WRITE_DTYPES)[number];

const WRITE_DTYPE_CODE: Record<SafetensorsWriteDtype, SafetensorsDtype> = {
  float32: "F32",
  bfloat16: "BF16",
  float16: "F16",
};

/** The Rust reference implementation refuses headers above 100 MB; a larger length means a corrupt file. */
const MAX_HEADER_BYTES = 100_000_000;
/** Staging buffer for JS-path reads and for writes: big enough to amortise syscalls, small next to any real model. */
const CHUNK_BYTES = 8 << 20;
const MAX_READ_BYTES = 1 << 30;
const BUFFER_MAX_LENGTH = bufferConstants.MAX_LENGTH;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offsets in the file (header included), end exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** Absolute offset where the data section starts (8 + header length). */
  dataOffset: number;
  metadata: Record<string, string>;
  /** In file order of their data. */
  tensors: Map<string, SafetensorsTensorInfo>;
}

/** A tensor as klear holds it: float32 values, row-major, with the dtype it was stored in. */
export interface LoadedTensor {
  data: Float32Array;
  shape: number[];
  dtype: SafetensorsDtype;
}

/** What writers accept: the float32 values and shape of each named tensor. */
export interface TensorToWrite {
  data: Float32Array;
  shape: readonly number[];
}

function corrupt(path: string, problem: string, fix = "re-create or re-download the file"): KlearError {
  return new KlearError("SAFETENSORS_CORRUPT", `${path}: ${problem}`, fix);
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

async function readExactly(fh: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    // One read may not exceed 2 GiB (Node's I/O limit); a 151k×4096 float32 embedding is 2.5 GB.
    const length = Math.min(buf.length - done, MAX_READ_BYTES);
    const { bytesRead } = await fh.read(buf, done, length, position + done);
    if (bytesRead === 0)
      throw corrupt(path, `unexpected end of file at byte ${position + done} (truncated?)`);
    done += bytesRead;
  }
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new KlearError(
        "SAFETENSORS_MISSING",
        `${path}: safetensors file not found`,
        "check the path, or save the checkpoint again",
        { cause: e },
      );
    }
    throw new KlearError(
      "SAFETENSORS_UNREADABLE",
      `${path}: cannot open (${code})`,
      "check file permissions",
      {
        cause: e,
      },
    );
  }
}

/** Parses and validates the header: lengths, JSON, dtypes, shapes against byte ranges, ranges inside the file, no overlap. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openForRead(path);
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const fileSize = (await fh.stat()).size;
  if (fileSize < 8) throw corrupt(path, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const lenBuf = new Uint8Array(8);
  await readExactly(fh, lenBuf, 0, path);
  const headerLen = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw corrupt(
      path,
      `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
    );
  }
  const n = Number(headerLen);
  if (8 + n > fileSize) {
    throw corrupt(path, `header length ${n} runs past the end of the ${fileSize}-byte file (truncated?)`);
  }
  const headerBytes = new Uint8Array(n);
  await readExactly(fh, headerBytes, 8, path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw corrupt(path, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw corrupt(path, "header JSON is not an object");
  }
  const dataOffset = 8 + n;
  const dataSize = fileSize - dataOffset;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        throw corrupt(path, "__metadata__ is not an object of strings");
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") throw corrupt(path, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseTensorEntry(path, name, entry, dataOffset, dataSize));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < tensors.length; i++) {
    const prev = tensors[i - 1];
    const cur = tensors[i];
    if (cur.begin < prev.end) {
      throw corrupt(path, `tensors "${prev.name}" and "${cur.name}" overlap in the data section`);
    }
  }
  return { path, fileSize, dataOffset, metadata, tensors: new Map(tensors.map((t) => [t.name, t])) };
}

function parseTensorEntry(
  path: string,
  name: string,
  entry: unknown,
  dataOffset: number,
  dataSize: number,
): SafetensorsTensorInfo {
  if (entry === null || typeof entry !== "object")
    throw corrupt(path, `tensor "${name}" entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
    throw corrupt(path, `tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw corrupt(path, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw corrupt(path, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = elementCount(shape) * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (end - begin !== expected) {
    throw corrupt(
      path,
      `tensor "${name}" spans ${end - begin} bytes but shape [${shape.join(", ")}] × ${dtype} needs ${expected}`,
    );
  }
  if (end > dataSize) {
    throw corrupt(
      path,
      `tensor "${name}" ends at data byte ${end} but the data section has only ${dataSize} bytes (truncated?)`,
    );
  }
  return {
    name,
    dtype: dtype as SafetensorsDtype,
    shape: shape as number[],
    begin: dataOffset + begin,
    end: dataOffset + end,
  };
}

// ---- dtype conversion -------------------------------------------------------------------------------------
//
// The addon (native/convert.cc) converts 16-bit floats vectorised and across its thread pool; without it, one
// plain JS loop per dtype does the same, bit for bit (the tests compare the two on every 16-bit pattern).

/** The two 16-bit float dtypes, by their HF `torch_dtype` names. */
export type Safetensors16BitDtype = "bfloat16" | "float16";

let nativeConvert: NativeConvert | null | undefined;
let nativeConvertDisabled = false;

function native(): NativeConvert | null {
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
function decodeInto(
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

function encodeInto(
  dtype: SafetensorsWriteDtype,
  src: Float32Array,
  start: number,
  count: number,
  out: Uint8Array,
) {
  if (dtype === "float32") out.set(new Uint8Array(src.buffer, src.byteOffset + start * 4, count * 4));
  else safetensorsEncode16(dtype, src.subarray(start, start + count), out);
}

// ---- reading ----------------------------------------------------------------------------------------------

const NATIVE_DTYPE_CODE: Partial<Record<SafetensorsDtype, 0 | 1 | 2>> = { F32: 0, BF16: 1, F16: 2 };
/**
 * Native reads go to libuv's pool in pieces of this many values (16 MB as float32), several in flight, so one
 * large tensor's page faults, copies and conversions use every core instead of one.
 */
const PIECE_VALUES = 4 << 20;
/** libuv's default thread pool size: more reads in flight would only queue. */
const READS_IN_FLIGHT = 4;

function checkReadable(path: string, info: SafetensorsTensorInfo): void {
  if (!SAFETENSORS_READABLE_DTYPES.includes(info.dtype)) {
    throw new KlearError(
      "SAFETENSORS_DTYPE",
      `${path}: tensor "${info.name}" has dtype ${info.dtype}, which klear cannot convert to float32`,
      `convert the checkpoint to one of ${SAFETENSORS_READABLE_DTYPES.join(", ")}`,
    );
  }
}

/** The JS path: positioned reads into one staging buffer, decoded chunk by chunk. */
async function readTensorFrom(
  fh: FileHandle,
  path: string,
  info: SafetensorsTensorInfo,
  out: Float32Array,
): Promise<void> {
  const count = out.length;
  const width = DTYPE_BYTES[info.dtype];
  if (info.dtype === "F32" && count > 0) {
    // Read straight into the result: no staging copy for the common dtype.
    await readExactly(fh, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), info.begin, path);
    return;
  }
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / width));
  const staging = new Uint8Array(Math.min(count, perChunk) * width);
  for (let done = 0; done < count; done += perChunk) {
    const n = Math.min(perChunk, count - done);
    const chunk = staging.subarray(0, n * width);
    await readExactly(fh, chunk, info.begin + done * width, path);
    decodeInto(info.dtype, chunk, n, out, done);
  }
}

/**
 * A Float32Array whose every element the caller overwrites. `new Float32Array(n)` zero-fills, and for tensors
 * below glibc's mmap threshold (most of a model's) that is a memset of recycled heap: a second pass over memory
 * the read then writes again (measured: ~15% less CPU per load).
 */
function uninitialisedFloat32(count: number): Float32Array {
  // Buffers stop at 4 GiB in Node 20; a larger tensor takes the zeroed path.
  if (count * 4 > BUFFER_MAX_LENGTH) return new Float32Array(count);
  return new Float32Array(Buffer.allocUnsafeSlow(count * 4).buffer, 0, count);
}

interface ReadPiece {
  info: SafetensorsTensorInfo;
  code: 0 | 1 | 2;
  /** First value of the piece within its tensor. */
  start: number;
  dst: Float32Array;
}

/**
 * Reads tensors of one safetensors file as float32. `names` limits the read to those tensors (only their byte
 * ranges are touched); asking for a name the file lacks is an error naming the file.
 */
export async function readSafetensors(
  path: string,
  opts: { names?: Iterable<string> } = {},
): Promise<Map<string, LoadedTensor>> {
  const fh = await openForRead(path);
  try {
    const header = await readHeaderFrom(fh, path);
    const wanted = opts.names ? [...opts.names] : [...header.tensors.keys()];
    const out = new Map<string, LoadedTensor>();
    const fast = native();
    const pieces: ReadPiece[] = [];
    for (const name of wanted) {
      const info = header.tensors.get(name);
      if (!info) {
        throw new KlearError(
          "SAFETENSORS_MISSING_TENSOR",
          `${path}: no tensor named "${name}"`,
          "check the tensor name, or that the file belongs to this model",
        );
      }
      checkReadable(path, info);
      const data = uninitialisedFloat32(elementCount(info.shape));
      out.set(name, { data, shape: [...info.shape], dtype: info.dtype });
      const code = NATIVE_DTYPE_CODE[info.dtype];
      if (fast && code !== undefined) {
        for (let start = 0; start < data.length; start += PIECE_VALUES) {
          const dst = data.subarray(start, Math.min(data.length, start + PIECE_VALUES));
          pieces.push({ info, code, start, dst });
        }
      } else await readTensorFrom(fh, path, info, data);
    }
    if (fast && pieces.length > 0) {
      await mapConcurrent(pieces, READS_IN_FLIGHT, async ({ info, code, start, dst }) => {
        const position = info.begin + start * DTYPE_BYTES[info.dtype];
        try {
          await fast.readConvert(fh.fd, position, code, dst);
        } catch (e) {
          const message = (e as Error).message;
          if (message.startsWith("unexpected end of file")) throw corrupt(path, `${message} (truncated?)`);
          throw new KlearError(
            "SAFETENSORS_UNREADABLE",
            `${path}: reading tensor "${info.name}" failed: ${message}`,
            "check that the file is complete and readable (re-download it if it was truncated)",
            { cause: e },
          );
        }
      });
    }
    return out;
  } finally {
    await fh.close();
  }
}

// ---- writing ----------------------------------------------------------------------------------------------

function tensorByteSize(t: TensorToWrite, dtype: SafetensorsWriteDtype): number {
  return elementCount(t.shape) * DTYPE_BYTES[WRITE_DTYPE_CODE[dtype]];
}

function checkTensorToWrite(name: string, t: TensorToWrite): void {
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || elementCount(t.shape) !== t.data.length) {
    throw new ConfigError(
      `tensor "${name}" has ${t.data.length} values but shape [${t.shape.join(", ")}]`,
      "pass a shape whose product equals the data length",
    );
  }
}

function buildHeader(
  entries: [string, TensorToWrite][],
  dtype: SafetensorsWriteDtype,
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const size = tensorByteSize(t, dtype);
    header[name] = {
      dtype: WRITE_DTYPE_CODE[dtype],
      shape: [...t.shape],
      data_offsets: [offset, offset + size],
    };
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  // Pad with spaces to 8 bytes, as the reference writer does, so the data section starts aligned.
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
}

/** Streams one safetensors file to `path` (not atomic by itself: callers write into a temporary place). */
async function streamSafetensors(
  path: string,
  entries: [string, TensorToWrite][],
  dtype: SafetensorsWriteDtype,
  metadata: Record<string, string> | undefined,
): Promise<void> {
  const fh = await open(path, "w");
  try {
    await writeAll(fh, buildHeader(entries, dtype, metadata));
    const width = DTYPE_BYTES[WRITE_DTYPE_CODE[dtype]];
    const perChunk = Math.floor(CHUNK_BYTES / width);
    const staging = new Uint8Array(perChunk * width);
    for (const [, t] of entries) {
      for (let done = 0; done < t.data.length; done += perChunk) {
        const n = Math.min(perChunk, t.data.length - done);
        const chunk = staging.subarray(0, n * width);
        encodeInto(dtype, t.data, done, n, chunk);
        await writeAll(fh, chunk);
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function sortedEntries(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
): [string, TensorToWrite][] {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of entries) checkTensorToWrite(name, t);
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export interface WriteSafetensorsOptions {
  /** Stored dtype; float32 (default) is exact, bfloat16/float16 round to nearest even. */
  dtype?: SafetensorsWriteDtype;
  /** String metadata for the header; HF writes {"format": "pt"}. */
  metadata?: Record<string, string>;
}

/** Writes one safetensors file atomically (temporary sibling, fsync, rename). */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  opts: WriteSafetensorsOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? "float32";
  const entries = sortedEntries(tensors);
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp-${basename(path)}`);
  try {
    await streamSafetensors(tmp, entries, dtype, opts.metadata ?? { format: "pt" });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

// ---- sharded folders --------------------------------------------------------------------------------------

export const SAFETENSORS_SINGLE_FILE = "model.safetensors";
export const SAFETENSORS_INDEX_FILE = "model.safetensors.index.json";

/** Parses "5GB", "500MB", "10GiB" or a byte count, as HF's `max_shard_size` does (GB = 10^9, GiB = 2^30). */
export function parseShardSize(size: number | string): number {
  if (typeof size === "number") {
    if (Number.isFinite(size) && size > 0) return Math.floor(size);
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(size);
    if (m) {
      const unit = (m[2] ?? "B").toUpperCase();
      const scale: Record<string, number> = {
        B: 1,
        KB: 1e3,
        MB: 1e6,
        GB: 1e9,
        TB: 1e12,
        KIB: 2 ** 10,
        MIB: 2 ** 20,
        GIB: 2 ** 30,
        TIB: 2 ** 40,
      };
      const bytes = Math.floor(Number(m[1]) * scale[unit]);
      if (bytes > 0) return bytes;
    }
  }
  throw new ConfigError(
    `invalid max shard size ${JSON.stringify(size)}`,
    'use a byte count or a size like "5GB"',
  );
}

export interface WriteSafetensorsFolderOptions extends WriteSafetensorsOptions {
  /** Split into shards no larger than this (a tensor larger than it gets a shard of its own). Default "5GB", as HF. */
  maxShardSize?: number | string;
}

/**
 * Writes the weights of a checkpoint folder (`model.safetensors`, or shards plus `model.safetensors.index.json`
 * when they exceed `maxShardSize`). Files are written directly: call it inside `atomicWriteDir`.
 * Returns the file names written.
 */
export async function writeSafetensorsFolder(
  dir: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  opts: WriteSafetensorsFolderOptions = {},
): Promise<string[]> {
  const dtype = opts.dtype ?? "float32";
  const maxShard = parseShardSize(opts.maxShardSize ?? "5GB");
  const entries = sortedEntries(tensors);
  const metadata = opts.metadata ?? { format: "pt" };
  const shards: [string, TensorToWrite][][] = [[]];
  let shardBytes = 0;
  let totalSize = 0;
  for (const entry of entries) {
    const size = tensorByteSize(entry[1], dtype);
    totalSize += size;
    if (shardBytes > 0 && shardBytes + size > maxShard) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(entry);
    shardBytes += size;
  }
  await mkdir(dir, { recursive: true });
  if (shards.length === 1) {
    await streamSafetensors(join(dir, SAFETENSORS_SINGLE_FILE), entries, dtype, metadata);
    return [SAFETENSORS_SINGLE_FILE];
  }
  const pad = (k: number) => String(k).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  for (let k = 0; k < shards.length; k++) {
    const file = `model-${pad(k + 1)}-of-${pad(shards.length)}.safetensors`;
    await streamSafetensors(join(dir, file), shards[k], dtype, metadata);
    for (const [name] of shards[k]) weightMap[name] = file;
    files.push(file);
  }
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  await atomicWriteFile(join(dir, SAFETENSORS_INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
  return [...files, SAFETENSORS_INDEX_FILE];
}

/** The safetensors files of a checkpoint folder and which file holds each tensor. */
export interface SafetensorsFolderLayout {
  /** The file the layout came from: the index, or the single model.safetensors. */
  source: string;
  files: string[];
  /** tensor name → absolute file path; undefined for a single file until its header is read. */
  weightMap?: Map<string, string>;
}

async function readIndex(indexPath: string): Promise<Map<string, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (e) {
    throw new KlearError(
      "SAFETENSORS_INDEX_INVALID",
      `${indexPath}: not valid JSON (${(e as Error).message})`,
      "re-create the index, or save the checkpoint again",
      { cause: e },
    );
  }
  const weightMap = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== "object" || Array.isArray(weightMap)) {
    throw new KlearError(
      "SAFETENSORS_INDEX_INVALID",
      `${indexPath}: missing the "weight_map" object`,
      'an index needs {"weight_map": {"tensor name": "shard file"}}',
    );
  }
  const dir = dirname(indexPath);
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\")) {
      throw new KlearError(
        "SAFETENSORS_INDEX_INVALID",
        `${indexPath}: weight_map["${name}"] is not a file name in the same folder`,
        "each weight_map value must be the name of a shard file beside the index",
      );
    }
    out.set(name, join(dir, file));
  }
  return out;
}

/** Where a tensor of a checkpoint folder lives: its header entry and the file that holds it. */
export interface SafetensorsFolderEntry extends SafetensorsTensorInfo {
  path: string;
}

/**
 * Reads only the headers of a checkpoint folder (single file, or shards listed by an index) and returns every
 * tensor's file, dtype, shape and byte range, so callers can validate names and shapes before reading data.
 */
export async function listSafetensorsFolder(dir: string): Promise<Map<string, SafetensorsFolderEntry>> {
  const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
  const singlePath = join(dir, SAFETENSORS_SINGLE_FILE);
  const out = new Map<string, SafetensorsFolderEntry>();
  if (existsSync(indexPath)) {
    const weightMap = await readIndex(indexPath);
    const byFile = new Map<string, string[]>();
    for (const [name, file] of weightMap) {
      const list = byFile.get(file);
      if (list) list.push(name);
      else byFile.set(file, [name]);
    }
    for (const [file, names] of byFile) {
      if (!existsSync(file)) {
        throw new KlearError(
          "SAFETENSORS_MISSING",
          `${file}: shard listed in ${indexPath} is missing`,
          "copy the missing shard into the folder, or save the checkpoint again",
        );
      }
      const header = await readSafetensorsHeader(file);
      for (const name of names) {
        const info = header.tensors.get(name);
        if (!info) {
          throw new KlearError(
            "SAFETENSORS_MISSING_TENSOR",
            `${file}: no tensor named "${name}", though ${indexPath} lists it there`,
            "re-create the index, or save the checkpoint again",
          );
        }
        out.set(name, { ...info, path: file });
      }
    }
    return out;
  }
  if (existsSync(singlePath)) {
    const header = await readSafetensorsHeader(singlePath);
    for (const [name, info] of header.tensors) out.set(name, { ...info, path: singlePath });
    return out;
  }
  if (existsSync(dir) && statSync(dir).isDirectory()) {
    const pickled = ["pytorch_model.bin", "pytorch_model.bin.index.json"].find((f) =>
      existsSync(join(dir, f)),
    );
    throw new KlearError(
      "SAFETENSORS_MISSING",
      `${dir}: no ${SAFETENSORS_SINGLE_FILE} or ${SAFETENSORS_INDEX_FILE} in the folder` +
        (pickled ? ` (it has ${pickled}: PyTorch pickle weights, which klear does not read)` : ""),
      pickled
        ? `convert once with transformers: AutoModelForCausalLM.from_pretrained("${dir}").save_pretrained("${dir}", safe_serialization=True)`
        : "point at a folder saved by klear or by HF save_pretrained(safe_serialization=True)",
    );
  }
  throw new KlearError("SAFETENSORS_MISSING", `${dir}: folder not found`, "check the checkpoint path");
}

/**
 * Reads tensors of a checkpoint folder (single file or sharded with an index) as float32: all of them, or
 * those in `names`. Each file is streamed: peak memory is the float32 result plus one staging chunk.
 */
export async function readSafetensorsFolder(
  dir: string,
  opts: { names?: Iterable<string>; entries?: Map<string, SafetensorsFolderEntry> } = {},
): Promise<Map<string, LoadedTensor>> {
  const entries = opts.entries ?? (await listSafetensorsFolder(dir));
  const wanted = opts.names ? [...opts.names] : [...entries.keys()];
  const byFile = new Map<string, string[]>();
  for (const name of wanted) {
    const entry = entries.get(name);
    if (!entry) {
      throw new KlearError(
        "SAFETENSORS_MISSING_TENSOR",
        `${dir}: no tensor named "${name}" in the checkpoint's safetensors files`,
        "check the tensor name, or that the folder holds this model",
      );
    }
    const list = byFile.get(entry.path);
    if (list) list.push(name);
    else byFile.set(entry.path, [name]);
  }
  const out = new Map<string, LoadedTensor>();
  for (const [file, names] of byFile) {
    for (const [name, t] of await readSafetensors(file, { names })) out.set(name, t);
  }
  return out;
}
