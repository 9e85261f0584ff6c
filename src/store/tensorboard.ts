import { appendFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { ProtoWriter } from "../util/protobuf.js";

/**
 * TensorBoard event files, written as a run goes, so `tensorboard --logdir RUN` shows the same scalars as
 * metrics.jsonl. The format is TFRecord framing around `tensorflow.Event` protobufs:
 *
 *   uint64 length (LE) · uint32 masked CRC-32C of the length bytes · data · uint32 masked CRC-32C of data
 *
 * with Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; } and
 * Summary { repeated Value value = 1 } where Value { string tag = 1; float simple_value = 2 }. Only these
 * fields are written, so a few dozen lines of protobuf encoding replace a dependency on TensorFlow's schemas.
 * Each process that opens a run appends to a file of its own (TensorBoard merges every file in the folder),
 * so a resumed run never rewrites what an earlier process wrote.
 */

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC32C_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's masking, so a CRC stored inside CRC-checked data does not look like a valid CRC of it. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function tfRecord(data: Uint8Array): Buffer {
  const header = Buffer.alloc(12);
  header.writeBigUInt64LE(BigInt(data.length), 0);
  header.writeUInt32LE(maskedCrc32c(header.subarray(0, 8)), 8);
  const footer = Buffer.alloc(4);
  footer.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([header, data, footer]);
}

function versionEvent(wallTime: number): Uint8Array {
  const event = new ProtoWriter();
  event.double(1, wallTime);
  event.string(3, "brain.Event:2");
  return event.finish();
}

// SessionLog { status = START } at step S tells TensorBoard to drop events at steps ≥ S read from earlier
// files: exactly what a resumed run repeats after its last checkpoint.
function sessionStartEvent(wallTime: number, step: number): Uint8Array {
  const sessionLog = new ProtoWriter();
  sessionLog.int64(1, 1);
  const event = new ProtoWriter();
  event.double(1, wallTime);
  event.int64(2, step);
  event.bytes(6, sessionLog.finish());
  return event.finish();
}

function scalarsEvent(wallTime: number, step: number, scalars: [string, number][]): Uint8Array {
  const summary = new ProtoWriter();
  for (const [tag, value] of scalars) {
    const v = new ProtoWriter();
    v.string(1, tag);
    v.float(2, value);
    summary.bytes(1, v.finish());
  }
  const event = new ProtoWriter();
  event.double(1, wallTime);
  event.int64(2, step);
  event.bytes(5, summary.finish());
  return event.finish();
}

/** Numeric fields of a metrics record become scalars; `phase` (if any) prefixes the tag, e.g. `eval-after/heldOutAccuracy`. */
export function scalarsOf(record: Record<string, unknown>): [string, number][] {
  const phase = typeof record.phase === "string" ? `${record.phase}/` : "";
  const out: [string, number][] = [];
  for (const [key, value] of Object.entries(record)) {
    if (key === "step" || key === "phase") continue;
    if (typeof value === "number" && Number.isFinite(value)) out.push([`${phase}${key}`, value]);
    else if (typeof value === "boolean") out.push([`${phase}${key}`, value ? 1 : 0]);
  }
  return out;
}

/** Appends scalar events to one event file of this process in `dir` (created on first write). */
export class TensorBoardWriter {
  readonly path: string;
  private opened = false;

  constructor(readonly dir: string) {
    // Unique per process and start time; a sequence suffix keeps two writers in one millisecond apart.
    const stamp = Math.floor(Date.now() / 1000);
    const base = `events.out.tfevents.${stamp}.${hostname()}.${process.pid}`;
    let name = base;
    for (let i = 1; existsSync(join(dir, name)); i++) name = `${base}.${i}`;
    this.path = join(dir, name);
  }

  addScalars(step: number, scalars: [string, number][], wallTime = Date.now() / 1000): void {
    if (scalars.length === 0) return;
    if (!this.opened) {
      mkdirSync(this.dir, { recursive: true });
      const resumed = listEventFiles(this.dir).length > 0;
      appendFileSync(this.path, tfRecord(versionEvent(wallTime)));
      if (resumed) appendFileSync(this.path, tfRecord(sessionStartEvent(wallTime, step)));
      this.opened = true;
    }
    appendFileSync(this.path, tfRecord(scalarsEvent(wallTime, step, scalars)));
  }
}

const writers = new Map<string, TensorBoardWriter>();

/** The event writer of `dir` for this process (one file per process and folder). */
export function tensorBoardWriter(dir: string): TensorBoardWriter {
  let w = writers.get(dir);
  if (!w) {
    w = new TensorBoardWriter(dir);
    writers.set(dir, w);
  }
  return w;
}

/** Event files in `dir`, oldest first. */
export function listEventFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith("events.out.tfevents."))
    .sort()
    .map((f) => join(dir, f));
}
