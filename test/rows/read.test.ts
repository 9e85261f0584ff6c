import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gzipSync } from "node:zlib";
import { writeParquetFromJsonl } from "../../src/data/index.js";
import { collectRows, type MalformedRow, readRows, rowLocation } from "../../src/rows/index.js";

const dir = mkdtempSync(join(tmpdir(), "klear-rows-read-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const rows = [{ a: 1, s: "héllo" }, { a: 2, nested: { x: [1, 2] } }, { a: 3 }];
const jsonl = rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

test("jsonl, .jsonl.gz, parquet, JSON arrays and a folder of shards read to the same rows", async () => {
  const plain = join(dir, "rows.jsonl");
  writeFileSync(plain, jsonl);
  const gz = join(dir, "rows.jsonl.gz");
  writeFileSync(gz, gzipSync(jsonl));
  const pq = join(dir, "rows.parquet");
  await writeParquetFromJsonl(plain, pq);
  const arr = join(dir, "rows.json");
  writeFileSync(arr, JSON.stringify(rows));
  for (const f of [plain, gz, pq, arr]) {
    const got = await collectRows(f);
    assert.deepEqual(
      got.map((r) => r.row),
      rows,
      f,
    );
    assert.deepEqual(
      got.map((r) => r.line),
      [1, 2, 3],
    );
    assert.ok(got.every((r) => r.file === f));
  }
  const shards = join(dir, "shards");
  mkdirSync(shards);
  writeFileSync(join(shards, "part-0.jsonl"), jsonl);
  writeFileSync(join(shards, "part-1.jsonl.gz"), gzipSync(jsonl));
  writeFileSync(join(shards, "README.md"), "not a shard");
  const all = await collectRows(shards);
  assert.equal(all.length, 6);
  assert.deepEqual(
    all.map((r) => r.file),
    [...Array(3).fill(join(shards, "part-0.jsonl")), ...Array(3).fill(join(shards, "part-1.jsonl.gz"))],
  );
});

test("a line split across read chunks and CRLF endings read whole", async () => {
  const long = "x".repeat(3 << 20);
  const f = join(dir, "long.jsonl");
  writeFileSync(f, `{"a":1}\r\n${JSON.stringify({ long })}\r\n\r\n{"a":2}`);
  const got = await collectRows(f);
  assert.deepEqual(
    got.map((r) => r.line),
    [1, 2, 4],
  );
  assert.equal((got[1].row.long as string).length, long.length);
  const gz = join(dir, "long.jsonl.gz");
  writeFileSync(gz, gzipSync(`${JSON.stringify({ long })}\n{"a":2}\n`));
  assert.equal(((await collectRows(gz))[0].row.long as string).length, long.length);
});

test("every malformed row names its file and line: bad JSON, invalid UTF-8, not an object", async () => {
  const f = join(dir, "bad.jsonl");
  writeFileSync(
    f,
    Buffer.concat([
      Buffer.from('{"ok":1}\n{"broken":\n'),
      Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d, 0x0a]),
      Buffer.from('[1,2]\n{"ok":2}\n'),
    ]),
  );
  const seen: MalformedRow[] = [];
  const got = await collectRows(f, { onMalformed: (m) => seen.push(m) });
  assert.deepEqual(
    got.map((r) => r.row.ok),
    [1, 2],
  );
  assert.deepEqual(
    seen.map((m) => [m.line, m.reason]),
    [
      [2, "bad-json"],
      [3, "invalid-utf8"],
      [4, "not-object"],
    ],
  );
  // Without a handler the first one throws, naming file:line.
  await assert.rejects(collectRows(f), (e: Error) => {
    assert.match(e.message, new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: bad-json`));
    assert.match(e.message, /fix:/);
    return true;
  });
  const gz = join(dir, "bad.jsonl.gz");
  writeFileSync(gz, gzipSync('{"ok":1}\n\n{"no"}\n'));
  await assert.rejects(collectRows(gz), /bad\.jsonl\.gz:3: bad-json/);
  const arr = join(dir, "bad.json");
  writeFileSync(arr, '[{"a":1}, 5]');
  await assert.rejects(collectRows(arr), /bad\.json row 2: not-object/);
  assert.equal(rowLocation("x.parquet", 7), "x.parquet row 7");
});

test("missing files, empty folders and corrupt gzip or parquet are errors with the path and a fix", async () => {
  await assert.rejects(collectRows(join(dir, "nope.jsonl")), /cannot read .*nope\.jsonl[\s\S]*fix:/);
  const empty = join(dir, "empty");
  mkdirSync(empty);
  await assert.rejects(collectRows(empty), /folder without row files[\s\S]*fix:/);
  const gz = join(dir, "corrupt.jsonl.gz");
  writeFileSync(gz, "not gzip at all");
  await assert.rejects(collectRows(gz), /corrupt\.jsonl\.gz: not a readable gzip file/);
  const pq = join(dir, "corrupt.parquet");
  writeFileSync(pq, "not parquet");
  await assert.rejects(collectRows(pq), /corrupt\.parquet is not a readable parquet file/);
});

test("rows stream: the reader yields before the file is read to its end", async () => {
  const f = join(dir, "stream.jsonl");
  writeFileSync(f, Array.from({ length: 50_000 }, (_, i) => JSON.stringify({ i })).join("\n"));
  let bytes = 0;
  for await (const r of readRows(f, { onBytes: (n) => (bytes += n) })) {
    assert.equal(r.row.i, 0);
    break;
  }
  assert.ok(bytes > 0 && bytes <= 1 << 20);
});
