/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
 * a JSON header naming every tensor's dtype, shape and byte range, then the raw little-endian data. This file
 * holds the dtypes, the shared types and the header parser; safetensors.ts is the public entry point.
 */
import { type FileHandle, open } from "node:fs/promises";
import { KlearError } from "../util/errors.js";

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

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
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

export const WRITE_DTYPE_CODE: Record<SafetensorsWriteDtype, SafetensorsDtype> = {
  float32: "F32",
  bfloat16: "BF16",
  float16: "F16",
};

/** The Rust reference implementation refuses headers above 100 MB; a larger length means a corrupt file. */
const MAX_HEADER_BYTES = 100_000_000;
/** Staging buffer for JS-path reads and for writes: big enough to amortise syscalls, small next to any real model. */
export const CHUNK_BYTES = 8 << 20;
const MAX_READ_BYTES = 1 << 30;

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

export function corrupt(
  path: string,
  problem: string,
  fix = "re-create or re-download the file",
): KlearError {
  return new KlearError("SAFETENSORS_CORRUPT", `${path}: ${problem}`, fix);
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export async function readExactly(
  fh: FileHandle,
  buf: Uint8Array,
  position: number,
  path: string,
): Promise<void> {
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

export async function openForRead(path: string): Promise<FileHandle> {
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

export async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
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
