/**
 * Writing safetensors files: tensors sorted by name, a space-padded header as the reference writer makes, data
 * streamed through one staging chunk in the requested dtype.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ConfigError } from "../util/errors.js";
import { encodeInto } from "./safetensors-convert.js";
import {
  CHUNK_BYTES,
  DTYPE_BYTES,
  elementCount,
  type SafetensorsWriteDtype,
  type TensorToWrite,
  WRITE_DTYPE_CODE,
} from "./safetensors-header.js";

export function tensorByteSize(t: TensorToWrite, dtype: SafetensorsWriteDtype): number {
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
export async function streamSafetensors(
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

export function sortedEntries(
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
