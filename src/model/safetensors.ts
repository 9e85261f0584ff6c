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
 *
 * The pieces: safetensors-header.ts (dtypes, types, header parsing), safetensors-convert.ts (dtype conversion),
 * safetensors-read.ts and safetensors-write.ts (one file); this file reads and writes checkpoint folders and is
 * the public entry point for all of them.
 */
import { existsSync, statSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { atomicWriteFile } from "../util/atomic.js";
import { ConfigError, KlearError } from "../util/errors.js";
import {
  type LoadedTensor,
  readSafetensorsHeader,
  type SafetensorsTensorInfo,
  type TensorToWrite,
} from "./safetensors-header.js";
import { readSafetensors } from "./safetensors-read.js";
import {
  sortedEntries,
  streamSafetensors,
  tensorByteSize,
  type WriteSafetensorsOptions,
} from "./safetensors-write.js";

export {
  floatToBf16Bits,
  floatToF16Bits,
  roundToDtype,
  type Safetensors16BitDtype,
  safetensorsDecode16,
  safetensorsEncode16,
  setSafetensorsNative,
} from "./safetensors-convert.js";
export {
  type LoadedTensor,
  readSafetensorsHeader,
  SAFETENSORS_READABLE_DTYPES,
  SAFETENSORS_WRITE_DTYPES,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type SafetensorsWriteDtype,
  type TensorToWrite,
} from "./safetensors-header.js";
export { readSafetensors } from "./safetensors-read.js";
export { type WriteSafetensorsOptions, writeSafetensors } from "./safetensors-write.js";

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
