import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { listEventFiles, scalarsOf, TensorBoardWriter } from "../../src/store/tensorboard.js";

const dir = mkdtempSync(join(tmpdir(), "klear-tb-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// An independent reader: bit-by-bit CRC-32C (no table, unlike the writer) and a generic protobuf walk.
function crc32cBitwise(bytes: Uint8Array): number {
  let crc = ~0 >>> 0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  return ~crc >>> 0;
}
const mask = (crc: number) => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;

type Field = { field: number; wire: number; value: bigint | number | Uint8Array };
function parseProto(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 1) {
      out.push({ field, wire, value: view.getFloat64(i, true) });
      i += 8;
    } else if (wire === 5) {
      out.push({ field, wire, value: view.getFloat32(i, true) });
      i += 4;
    } else if (wire === 2) {
      const n = Number(varint());
      out.push({ field, wire, value: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

interface ReadEvent {
  step: number;
  fileVersion?: string;
  sessionStart?: boolean;
  scalars: Record<string, number>;
}
function readEvents(path: string): ReadEvent[] {
  const buf = readFileSync(path);
  const events: ReadEvent[] = [];
  let off = 0;
  while (off < buf.length) {
    const len = Number(buf.readBigUInt64LE(off));
    assert.equal(buf.readUInt32LE(off + 8), mask(crc32cBitwise(buf.subarray(off, off + 8))), "length CRC");
    const data = buf.subarray(off + 12, off + 12 + len);
    assert.equal(buf.readUInt32LE(off + 12 + len), mask(crc32cBitwise(data)), "data CRC");
    off += 16 + len;
    const ev: ReadEvent = { step: 0, scalars: {} };
    for (const f of parseProto(data)) {
      if (f.field === 2) ev.step = Number(f.value);
      if (f.field === 3) ev.fileVersion = new TextDecoder().decode(f.value as Uint8Array);
      if (f.field === 6)
        ev.sessionStart = parseProto(f.value as Uint8Array).some((g) => g.field === 1 && g.value === 1n);
      if (f.field === 5) {
        for (const v of parseProto(f.value as Uint8Array)) {
          const inner = parseProto(v.value as Uint8Array);
          const tag = new TextDecoder().decode(inner.find((g) => g.field === 1)?.value as Uint8Array);
          ev.scalars[tag] = inner.find((g) => g.field === 2)?.value as number;
        }
      }
    }
    events.push(ev);
  }
  assert.equal(off, buf.length, "no trailing bytes");
  return events;
}

test("event files parse with valid CRCs; every numeric metric becomes a scalar at its step", () => {
  const run = join(dir, "a");
  const w = new TensorBoardWriter(run);
  w.addScalars(1, scalarsOf({ step: 1, loss: 2.5, lr: 1e-4, note: "text", done: true }));
  w.addScalars(2, scalarsOf({ step: 2, loss: 1.25 }));
  w.addScalars(2, scalarsOf({ step: 2, phase: "eval-after", heldOutAccuracy: 0.75 }));
  const files = listEventFiles(run);
  assert.equal(files.length, 1);
  const events = readEvents(files[0]);
  assert.equal(events[0].fileVersion, "brain.Event:2");
  assert.deepEqual(
    events.slice(1).map((e) => [e.step, e.scalars]),
    [
      [1, { loss: 2.5, lr: Math.fround(1e-4), done: 1 }],
      [2, { loss: 1.25 }],
      [2, { "eval-after/heldOutAccuracy": 0.75 }],
    ],
  );
});

test("a second process on the same run writes its own file and starts with SessionLog START at its first step", () => {
  const run = join(dir, "b");
  new TensorBoardWriter(run).addScalars(5, [["loss", 1]]);
  const resumed = new TensorBoardWriter(run);
  resumed.addScalars(4, [["loss", 0.5]]);
  const files = listEventFiles(run);
  assert.equal(files.length, 2);
  const events = readEvents(resumed.path);
  assert.equal(events[1].sessionStart, true);
  assert.equal(events[1].step, 4);
  assert.deepEqual(events[2].scalars, { loss: 0.5 });
});

test("appendMetrics writes each record's scalars to the run's event file as it goes", async () => {
  const { appendMetrics, createRun } = await import("../../src/store/run.js");
  const paths = createRun(join(dir, "c"), {});
  appendMetrics(paths, { step: 1, loss: 3 });
  appendMetrics(paths, { step: 2, loss: 2, phase: "eval", heldOutAccuracy: 0.5 });
  const files = listEventFiles(paths.dir);
  assert.equal(files.length, 1);
  const events = readEvents(files[0]);
  assert.deepEqual(
    events.slice(1).map((e) => [e.step, e.scalars]),
    [
      [1, { loss: 3 }],
      [2, { "eval/loss": 2, "eval/heldOutAccuracy": 0.5 }],
    ],
  );
});
