import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import {
  floatToBf16Bits,
  floatToF16Bits,
  parseShardSize,
  readSafetensors,
  readSafetensorsFolder,
  readSafetensorsHeader,
  roundToDtype,
  SAFETENSORS_INDEX_FILE,
  type Safetensors16BitDtype,
  safetensorsDecode16,
  safetensorsEncode16,
  setSafetensorsNative,
  type TensorToWrite,
  writeSafetensors,
  writeSafetensorsFolder,
} from "../../src/model/safetensors.js";
import { KlearError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";

const root = mkdtempSync(join(tmpdir(), "klear-safetensors-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (name = "t.safetensors") => join(root, `${counter++}-${name}`);

function randomTensors(seed: number): Map<string, TensorToWrite> {
  const rng = new Rng(seed);
  const make = (shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (rng.uniform() - 0.5) * 8;
    return { data, shape };
  };
  return new Map([
    ["model.embed_tokens.weight", make([17, 8])],
    ["model.norm.weight", make([8])],
    ["lm_head.weight", make([17, 8])],
    ["scalar", make([])],
    ["empty", make([0, 3])],
  ]);
}

/** Builds a raw safetensors file from a header object and a data section, for corrupt-file cases. */
function rawFile(header: unknown, data: Uint8Array, lengthOverride?: bigint): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  const path = fresh();
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

function assertKlear(code: string, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof KlearError, `expected KlearError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  };
}

describe("safetensors round trips", () => {
  it("f32 writes and reads back bit-identical, with the reference layout", async () => {
    const tensors = randomTensors(1);
    const path = fresh();
    await writeSafetensors(path, tensors);
    const header = await readSafetensorsHeader(path);
    assert.equal((header.dataOffset - 8) % 8, 0, "header padded to 8 bytes");
    assert.deepEqual(header.metadata, { format: "pt" });
    const back = await readSafetensors(path);
    assert.deepEqual([...back.keys()].sort(), [...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const b = back.get(name)!;
      assert.equal(b.dtype, "F32");
      assert.deepEqual(b.shape, t.shape);
      assert.deepEqual(Buffer.from(b.data.buffer), Buffer.from(t.data.buffer), name);
    }
    assert.deepEqual(
      readdirSync(root).filter((f) => f.includes(".tmp-")),
      [],
      "no temporary file left behind",
    );
  });

  for (const dtype of ["bfloat16", "float16"] as const) {
    it(`${dtype} stores 2 bytes per value and loads the rounded originals`, async () => {
      const tensors = randomTensors(2);
      const path = fresh();
      await writeSafetensors(path, tensors, { dtype });
      const back = await readSafetensors(path, { names: ["lm_head.weight", "model.norm.weight"] });
      assert.equal(back.size, 2);
      for (const [name, b] of back) {
        const original = tensors.get(name)!.data;
        assert.equal(b.dtype, dtype === "bfloat16" ? "BF16" : "F16");
        assert.deepEqual(b.data, roundToDtype(original, dtype));
        for (let i = 0; i < original.length; i++) {
          assert.ok(
            Math.abs(b.data[i] - original[i]) <=
              Math.abs(original[i]) * (dtype === "bfloat16" ? 2 ** -8 : 2 ** -11),
          );
        }
      }
      const h = await readSafetensorsHeader(path);
      const info = h.tensors.get("lm_head.weight")!;
      assert.equal(info.end - info.begin, 17 * 8 * 2);
    });
  }

  it("reads chunked data larger than one staging buffer and one native read piece", async () => {
    const n = (4 << 20) + 1001; // 8 MB as bf16: spans the 8 MB JS chunk and the 4M-value native piece
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = Math.sin(i) * 100;
    const path = fresh();
    await writeSafetensors(path, { big: { data, shape: [n] } }, { dtype: "bfloat16" });
    const back = (await readSafetensors(path)).get("big")!;
    assert.deepEqual(back.data, roundToDtype(data, "bfloat16"));
  });
});

describe("dtype conversion", () => {
  it("bf16 rounds to nearest even and keeps specials", () => {
    assert.equal(floatToBf16Bits(1), 0x3f80);
    assert.equal(floatToBf16Bits(-2), 0xc000);
    // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
    assert.equal(floatToBf16Bits(1 + 2 ** -8), 0x3f80);
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
    assert.equal(floatToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(floatToBf16Bits(Number.POSITIVE_INFINITY), 0x7f80);
    assert.equal(floatToBf16Bits(-0), 0x8000);
    assert.ok(Number.isNaN(roundToDtype(new Float32Array([Number.NaN]), "bfloat16")[0]));
  });

  it("bf16 decoding gives exactly the rounded bits for short and long runs", async () => {
    for (const n of [7, 64, 1001]) {
      const values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = Math.sin(i * 12.9898) * 10 ** ((i % 20) - 10);
      values[0] = Number.NaN;
      values[1] = Number.NEGATIVE_INFINITY;
      values[2] = -0;
      const path = fresh();
      await writeSafetensors(path, { v: { data: values, shape: [n] } }, { dtype: "bfloat16" });
      const bits = new Uint32Array((await readSafetensors(path)).get("v")!.data.buffer);
      for (let i = 0; i < n; i++)
        assert.equal(bits[i], (floatToBf16Bits(values[i]) << 16) >>> 0, `n=${n} i=${i}`);
    }
  });

  it("f16 rounds to nearest even, handles subnormals, overflow and specials", () => {
    assert.equal(floatToF16Bits(1), 0x3c00);
    assert.equal(floatToF16Bits(65504), 0x7bff);
    assert.equal(floatToF16Bits(65520), 0x7c00, "halfway past max rounds to inf");
    assert.equal(floatToF16Bits(1e6), 0x7c00);
    assert.equal(floatToF16Bits(-1e6), 0xfc00);
    assert.equal(floatToF16Bits(2 ** -24), 0x0001, "smallest subnormal");
    assert.equal(floatToF16Bits(2 ** -25), 0x0000, "half the smallest subnormal ties to even zero");
    assert.equal(floatToF16Bits(3 * 2 ** -25), 0x0002, "1.5 subnormal ulps ties to even 2");
    assert.equal(floatToF16Bits(1 + 2 ** -11), 0x3c00, "tie to even");
    assert.equal(floatToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(floatToF16Bits(2 ** -14), 0x0400, "smallest normal");
    assert.equal(floatToF16Bits(Number.NEGATIVE_INFINITY), 0xfc00);
    assert.ok(Number.isNaN(roundToDtype(new Float32Array([Number.NaN]), "float16")[0]));
    const values = new Float32Array([0.1, -2.71, 1e-5, 6e-8, 1234.5]);
    const back = roundToDtype(values, "float16");
    for (let i = 0; i < values.length; i++) {
      assert.ok(
        Math.abs(back[i] - values[i]) <= Math.max(Math.abs(values[i]) * 2 ** -11, 2 ** -25),
        `${values[i]}`,
      );
    }
  });

  it("reads F64, I64 and I32 tensors as float32", async () => {
    const f64 = new Float64Array([1.5, -2.25, 1e300]);
    const i64 = new BigInt64Array([1n, -5n, 1234567n]);
    const i32 = new Int32Array([7, -8]);
    const data = Buffer.concat([Buffer.from(f64.buffer), Buffer.from(i64.buffer), Buffer.from(i32.buffer)]);
    const path = rawFile(
      {
        a: { dtype: "F64", shape: [3], data_offsets: [0, 24] },
        b: { dtype: "I64", shape: [3], data_offsets: [24, 48] },
        c: { dtype: "I32", shape: [2], data_offsets: [48, 56] },
      },
      data,
    );
    const t = await readSafetensors(path);
    assert.deepEqual([...t.get("a")!.data], [1.5, -2.25, Number.POSITIVE_INFINITY]);
    assert.deepEqual([...t.get("b")!.data], [1, -5, 1234567]);
    assert.deepEqual([...t.get("c")!.data], [7, -8]);
  });
});

describe("safetensors bad input", () => {
  const good = { w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };
  const sixteen = new Uint8Array(16);

  it("missing file", async () => {
    const path = join(root, "nope.safetensors");
    await assert.rejects(
      readSafetensors(path),
      assertKlear("SAFETENSORS_MISSING", /nope\.safetensors.*not found/),
    );
  });

  it("file shorter than the length prefix", async () => {
    const path = fresh();
    writeFileSync(path, Buffer.from([1, 2, 3]));
    await assert.rejects(
      readSafetensors(path),
      assertKlear("SAFETENSORS_CORRUPT", /shorter than the 8-byte/),
    );
  });

  it("absurd header length", async () => {
    const path = rawFile(good, sixteen, 1n << 40n);
    await assert.rejects(readSafetensors(path), assertKlear("SAFETENSORS_CORRUPT", /exceeds the .*limit/));
  });

  it("header length past the end of file", async () => {
    const path = rawFile(good, sixteen, 5000n);
    await assert.rejects(readSafetensors(path), assertKlear("SAFETENSORS_CORRUPT", /runs past the end/));
  });

  it("header not JSON", async () => {
    const path = fresh();
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    writeFileSync(path, Buffer.concat([len, Buffer.from("{oops"), sixteen]));
    await assert.rejects(readSafetensors(path), assertKlear("SAFETENSORS_CORRUPT", /not valid UTF-8 JSON/));
  });

  it("unknown dtype", async () => {
    const path = rawFile({ w: { dtype: "F128", shape: [1], data_offsets: [0, 16] } }, sixteen);
    await assert.rejects(
      readSafetensors(path),
      assertKlear("SAFETENSORS_CORRUPT", /"w" has unknown dtype "F128"/),
    );
  });

  it("shape × dtype disagrees with the byte range", async () => {
    const path = rawFile({ w: { dtype: "F32", shape: [3, 2], data_offsets: [0, 16] } }, sixteen);
    await assert.rejects(
      readSafetensors(path),
      assertKlear("SAFETENSORS_CORRUPT", /spans 16 bytes but shape \[3, 2\]/),
    );
  });

  it("range outside the file (truncated data)", async () => {
    const path = rawFile(good, new Uint8Array(10));
    await assert.rejects(
      readSafetensors(path),
      assertKlear("SAFETENSORS_CORRUPT", /only 10 bytes \(truncated\?\)/),
    );
  });

  it("a truncated klear file names the file", async () => {
    const path = fresh("trunc.safetensors");
    await writeSafetensors(path, randomTensors(3));
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 7));
    await assert.rejects(readSafetensors(path), (e: unknown) => {
      assert.ok(e instanceof KlearError);
      assert.ok(e.message.includes(path));
      assert.match(e.message, /truncated/);
      return true;
    });
  });

  it("overlapping tensors", async () => {
    const path = rawFile(
      {
        a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
        b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      },
      sixteen,
    );
    await assert.rejects(readSafetensors(path), assertKlear("SAFETENSORS_CORRUPT", /"a" and "b" overlap/));
  });

  it("bad offsets and shapes", async () => {
    for (const entry of [
      { dtype: "F32", shape: [4], data_offsets: [16, 0] },
      { dtype: "F32", shape: [4], data_offsets: [0] },
      { dtype: "F32", shape: [-4], data_offsets: [0, 16] },
      { dtype: "F32", shape: "4", data_offsets: [0, 16] },
    ]) {
      await assert.rejects(
        readSafetensors(rawFile({ w: entry }, sixteen)),
        assertKlear("SAFETENSORS_CORRUPT", /"w"/),
      );
    }
  });

  it("asking for a tensor the file lacks", async () => {
    const path = rawFile(good, sixteen);
    await assert.rejects(
      readSafetensors(path, { names: ["missing"] }),
      assertKlear("SAFETENSORS_MISSING_TENSOR", /no tensor named "missing"/),
    );
  });

  it("a dtype klear cannot convert", async () => {
    const path = rawFile({ w: { dtype: "F8_E4M3", shape: [16], data_offsets: [0, 16] } }, sixteen);
    await assert.rejects(readSafetensors(path), assertKlear("SAFETENSORS_DTYPE", /"w" has dtype F8_E4M3/));
  });

  it("data length that disagrees with the shape on write", async () => {
    await assert.rejects(
      writeSafetensors(fresh(), { w: { data: new Float32Array(3), shape: [2, 2] } }),
      /has 3 values but shape \[2, 2\]/,
    );
  });
});

describe("sharded folders", () => {
  it("parses shard sizes like HF", () => {
    assert.equal(parseShardSize("5GB"), 5e9);
    assert.equal(parseShardSize("10MiB"), 10 * 2 ** 20);
    assert.equal(parseShardSize(1234), 1234);
    assert.throws(() => parseShardSize("lots"), /invalid max shard size/);
  });

  it("splits into shards with an index and reads them back bit-identical", async () => {
    const tensors = randomTensors(4);
    const dir = join(root, "sharded");
    const files = await writeSafetensorsFolder(dir, tensors, { maxShardSize: 600 });
    assert.ok(files.includes(SAFETENSORS_INDEX_FILE));
    const shards = files.filter((f) => f.endsWith(".safetensors"));
    assert.ok(shards.length >= 2, `expected several shards, got ${files}`);
    assert.match(shards[0], /^model-00001-of-0000\d\.safetensors$/);
    const index = JSON.parse(readFileSync(join(dir, SAFETENSORS_INDEX_FILE), "utf8"));
    assert.equal(index.metadata.total_size, (17 * 8 * 2 + 8 + 1) * 4);
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...tensors.keys()].sort());
    const back = await readSafetensorsFolder(dir);
    for (const [name, t] of tensors) assert.deepEqual(back.get(name)!.data, t.data, name);
  });

  it("writes one model.safetensors when it fits", async () => {
    const dir = join(root, "single");
    assert.deepEqual(await writeSafetensorsFolder(dir, randomTensors(5)), ["model.safetensors"]);
    assert.equal((await readSafetensorsFolder(dir)).size, 5);
  });

  it("a shard missing from the index names both", async () => {
    const dir = join(root, "sharded-missing");
    const files = await writeSafetensorsFolder(dir, randomTensors(6), { maxShardSize: 600 });
    rmSync(join(dir, files[1]));
    await assert.rejects(
      readSafetensorsFolder(dir),
      assertKlear(
        "SAFETENSORS_MISSING",
        new RegExp(`${files[1]}: shard listed in .*index\\.json is missing`),
      ),
    );
  });

  it("a folder without weights", async () => {
    const dir = join(root, "no-weights");
    await assert.rejects(readSafetensorsFolder(dir), assertKlear("SAFETENSORS_MISSING", /folder not found/));
    const empty = mkdtempSync(join(root, "empty-"));
    await assert.rejects(
      readSafetensorsFolder(empty),
      assertKlear("SAFETENSORS_MISSING", /no model\.safetensors/),
    );
    writeFileSync(join(empty, "pytorch_model.bin"), "");
    await assert.rejects(
      readSafetensorsFolder(empty),
      (e: unknown) =>
        e instanceof KlearError &&
        /has pytorch_model\.bin/.test(e.message) &&
        /safe_serialization=True/.test(e.fix),
    );
  });

  it("an index naming a tensor its shard lacks, or a shard outside the folder", async () => {
    const dir = join(root, "sharded-lying-index");
    await writeSafetensorsFolder(dir, randomTensors(7), { maxShardSize: 600 });
    const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
    const index = JSON.parse(readFileSync(indexPath, "utf8"));
    const shard = index.weight_map["model.norm.weight"];
    writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, ghost: shard } }));
    await assert.rejects(
      readSafetensorsFolder(dir),
      assertKlear(
        "SAFETENSORS_MISSING_TENSOR",
        /no tensor named "ghost", though .*index\.json lists it there/,
      ),
    );
    writeFileSync(
      indexPath,
      JSON.stringify({ ...index, weight_map: { ...index.weight_map, scalar: "../x.safetensors" } }),
    );
    await assert.rejects(
      readSafetensorsFolder(dir),
      assertKlear("SAFETENSORS_INDEX_INVALID", /weight_map\["scalar"\]/),
    );
  });

  it("a corrupt index", async () => {
    const dir = mkdtempSync(join(root, "bad-index-"));
    writeFileSync(join(dir, SAFETENSORS_INDEX_FILE), "{not json");
    await assert.rejects(
      readSafetensorsFolder(dir),
      assertKlear("SAFETENSORS_INDEX_INVALID", /not valid JSON/),
    );
    writeFileSync(join(dir, SAFETENSORS_INDEX_FILE), "{}");
    await assert.rejects(readSafetensorsFolder(dir), assertKlear("SAFETENSORS_INDEX_INVALID", /weight_map/));
  });
});

describe("native and JS conversions agree", () => {
  const hasNative = nativeAvailable();
  const skip = hasNative ? false : "native addon not built (npx node-gyp rebuild)";
  after(() => setSafetensorsNative(true));

  /** Runs `fn` with the JS loops, then with the addon, and returns both results. */
  function both<T>(fn: () => T): [T, T] {
    assert.equal(setSafetensorsNative(false), false);
    const js = fn();
    assert.equal(setSafetensorsNative(true), true);
    return [js, fn()];
  }

  it("decoding every 16-bit pattern, bf16 and f16, at even and odd byte offsets", { skip }, () => {
    for (const offset of [0, 1]) {
      const bytes = new Uint8Array(offset + 2 * 65536);
      for (let h = 0; h < 65536; h++) {
        bytes[offset + 2 * h] = h & 0xff;
        bytes[offset + 2 * h + 1] = h >>> 8;
      }
      const src = bytes.subarray(offset);
      for (const dtype of ["bfloat16", "float16"] as Safetensors16BitDtype[]) {
        const [js, nat] = both(() => {
          const out = new Float32Array(65536);
          safetensorsDecode16(dtype, src, out);
          return new Uint32Array(out.buffer);
        });
        for (let h = 0; h < 65536; h++) {
          if (js[h] !== nat[h]) assert.fail(`${dtype} 0x${h.toString(16)}: js ${js[h]} native ${nat[h]}`);
        }
        // Independent checks of the shared answer: bf16 is a shift; f16 finite values match the formula.
        const values = new Float32Array(js.buffer);
        for (let h = 0; h < 65536; h++) {
          if (dtype === "bfloat16") {
            assert.equal(js[h], (h << 16) >>> 0);
            continue;
          }
          const exp = (h >> 10) & 0x1f;
          const frac = h & 0x3ff;
          const sign = h & 0x8000 ? -1 : 1;
          if (exp === 31) {
            assert.equal(Number.isNaN(values[h]), frac !== 0, `f16 0x${h.toString(16)}`);
            if (frac !== 0) {
              // Quiet, payload kept, as x86's F16C conversion.
              assert.equal(js[h], (((h & 0x8000) << 16) | 0x7fc00000 | (frac << 13)) >>> 0);
            }
            continue;
          }
          const expected = exp === 0 ? sign * frac * 2 ** -24 : sign * (1 + frac / 1024) * 2 ** (exp - 15);
          assert.ok(Object.is(values[h], expected), `f16 0x${h.toString(16)}`);
        }
      }
    }
  });

  it("encoding to bf16 and f16: halves, their neighbours, ties and random bit patterns", { skip }, () => {
    const bits: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const f = new Float32Array(1);
      new Uint8Array(f.buffer).set([0, 0, h & 0xff, h >>> 8]);
      const b = new Uint32Array(f.buffer)[0];
      // bf16 patterns and the f32 bits just around them; plus every f16 value and its ties (shift by 13).
      bits.push(b, b + 1, b - 1, b + 0x8000, b + 0x7fff);
    }
    for (let e = 95; e <= 145; e++) {
      for (const m of [0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fffff, 0x400000, 0x3ff000, 0x7fe000]) {
        bits.push((e << 23) | m, ((1 << 31) | (e << 23) | m) >>> 0);
      }
    }
    const rng = new Rng(7);
    for (let i = 0; i < 100_000; i++) bits.push(Math.floor(rng.uniform() * 2 ** 32) >>> 0);
    const src = new Float32Array(new Uint32Array(bits.map((b) => b >>> 0)).buffer);
    for (const dtype of ["bfloat16", "float16"] as Safetensors16BitDtype[]) {
      const [js, nat] = both(() => {
        const out = new Uint8Array(2 * src.length + 1).subarray(1); // odd byte offset on purpose
        safetensorsEncode16(dtype, src, out);
        return out;
      });
      for (let i = 0; i < src.length; i++) {
        const a = js[2 * i] | (js[2 * i + 1] << 8);
        const b = nat[2 * i] | (nat[2 * i + 1] << 8);
        if (a !== b)
          assert.fail(
            `${dtype} of f32 bits 0x${bits[i].toString(16)}: js 0x${a.toString(16)} native 0x${b.toString(16)}`,
          );
      }
    }
  });

  for (const mode of ["js", "native"] as const) {
    it(
      `${mode}: f32/bf16/f16 files round trip NaN, ±Inf, ±0 and subnormals exactly`,
      { skip: mode === "native" && skip },
      async () => {
        assert.equal(setSafetensorsNative(mode === "native"), mode === "native");
        const specials = [
          Number.NaN,
          Number.POSITIVE_INFINITY,
          Number.NEGATIVE_INFINITY,
          0,
          -0,
          2 ** -24,
          -(2 ** -20),
          1e-40,
          -1e-45,
          0.3,
          65504,
          1e30,
        ];
        const n = 100_003; // long enough for the vector loops and the thread split, odd for the tails
        const data = new Float32Array(n);
        for (let i = 0; i < n; i++)
          data[i] = i < specials.length ? specials[i] : Math.sin(i) * 10 ** ((i % 50) - 25);
        for (const dtype of ["float32", "bfloat16", "float16"] as const) {
          const path = fresh();
          // An odd-length bf16 tensor first puts the second tensor at a 2-byte-aligned file offset.
          await writeSafetensors(
            path,
            { a: { data: data.subarray(0, 3), shape: [3] }, b: { data, shape: [n] } },
            { dtype },
          );
          const back = (await readSafetensors(path)).get("b")!.data;
          setSafetensorsNative(false);
          const expected = roundToDtype(data, dtype);
          setSafetensorsNative(mode === "native");
          assert.deepEqual(Buffer.from(back.buffer), Buffer.from(expected.buffer), `${mode} ${dtype}`);
          if (dtype === "float32") assert.deepEqual(Buffer.from(back.buffer), Buffer.from(data.buffer));
        }
        setSafetensorsNative(true);
      },
    );
  }
});
