/**
 * Reading tensors of one safetensors file as float32: positioned reads of just the ranges asked for, so a 1 GB
 * checkpoint needs its float32 copy plus a bounded buffer, never the whole file in memory twice. With the native
 * addon (native/convert.cc) each tensor is read in 16 MB pieces on libuv's threads: float32 straight into the
 * result, bf16/f16 through a 256 KB cache-resident buffer per thread, converted vectorised into the result.
 * Without it, one 8 MB staging buffer and the JS decoders of safetensors-convert.ts do the same, bit for bit.
 */
import { constants as bufferConstants } from "node:buffer";
import type { FileHandle } from "node:fs/promises";
import { mapConcurrent } from "../util/concurrency.js";
import { KlearError } from "../util/errors.js";
import { decodeInto, native } from "./safetensors-convert.js";
import {
  CHUNK_BYTES,
  corrupt,
  DTYPE_BYTES,
  elementCount,
  type LoadedTensor,
  openForRead,
  readExactly,
  readHeaderFrom,
  SAFETENSORS_READABLE_DTYPES,
  type SafetensorsDtype,
  type SafetensorsTensorInfo,
} from "./safetensors-header.js";

const BUFFER_MAX_LENGTH = bufferConstants.MAX_LENGTH;
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
