import assert from "node:assert/strict";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  appendMetrics,
  createRun,
  latestCheckpoint,
  listCheckpoints,
  openRun,
  readMetrics,
  saveRunCheckpoint,
  truncateMetricsAfter,
} from "../../src/store/run.js";
import { RunDatabase, type SampleRecord } from "../../src/store/samples.js";
import type { KlearError } from "../../src/util/errors.js";

const root = mkdtempSync(join(tmpdir(), "klear-store-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `run-${n++}`);

describe("run directory", () => {
  it("writes config.json, refuses to overwrite a run, reopens it", () => {
    const dir = fresh();
    const paths = createRun(dir, { lr: 0.001, model: { layers: 2 } });
    assert.deepEqual(JSON.parse(readFileSync(paths.config, "utf8")), { lr: 0.001, model: { layers: 2 } });
    assert.throws(
      () => createRun(dir, {}),
      (e: KlearError) => e.code === "RUN_EXISTS" && /--resume/.test(e.fix),
    );
    assert.deepEqual(openRun(dir).config, { lr: 0.001, model: { layers: 2 } });
    assert.throws(
      () => openRun(fresh()),
      (e: KlearError) => e.code === "RUN_NOT_FOUND",
    );
  });

  it("appends metrics, skips a torn last line, and truncates after a resume step", () => {
    const paths = createRun(fresh(), {});
    for (let step = 1; step <= 5; step++) appendMetrics(paths, { step, loss: 1 / step });
    appendFileSync(paths.metrics, '{"step": 6, "lo'); // a crash mid-write
    assert.deepEqual(
      readMetrics(paths).map((m) => m.step),
      [1, 2, 3, 4, 5],
    );
    truncateMetricsAfter(paths, 3);
    assert.deepEqual(
      readMetrics(paths).map((m) => m.step),
      [1, 2, 3],
    );
    appendMetrics(paths, { step: 4, loss: 0.2 });
    assert.deepEqual(
      readMetrics(paths).map((m) => m.step),
      [1, 2, 3, 4],
    );
    assert.ok(readFileSync(paths.metrics, "utf8").endsWith("}\n"));
  });

  it("a corrupt metrics line in the middle is an error naming the line", () => {
    const paths = createRun(fresh(), {});
    writeFileSync(paths.metrics, '{"step":1}\nnot json\n{"step":2}\n');
    assert.throws(() => readMetrics(paths), /metrics\.jsonl:2/);
  });

  it("checkpoints land whole; latestCheckpoint picks the highest step and ignores unfinished writes", async () => {
    const dir = fresh();
    const paths = createRun(dir, {});
    assert.equal(latestCheckpoint(dir), null);
    for (const step of [5, 20, 10]) {
      await saveRunCheckpoint(paths, step, async (tmp) =>
        writeFileSync(join(tmp, "model.safetensors"), `w${step}`),
      );
    }
    await assert.rejects(
      saveRunCheckpoint(paths, 30, async (tmp) => {
        writeFileSync(join(tmp, "model.safetensors"), "partial");
        throw new Error("disk full");
      }),
      /disk full/,
    );
    mkdirSync(join(paths.checkpoints, ".abc.tmp-step-40")); // left by a killed process
    assert.deepEqual(
      listCheckpoints(dir).map((c) => c.step),
      [5, 10, 20],
    );
    const latest = latestCheckpoint(dir)!;
    assert.equal(latest.step, 20);
    assert.equal(readFileSync(join(latest.path, "model.safetensors"), "utf8"), "w20");
    assert.ok(!existsSync(join(paths.checkpoints, "step-30")));
    // Saving a step again replaces it whole.
    await saveRunCheckpoint(paths, 20, async (tmp) => writeFileSync(join(tmp, "model.safetensors"), "again"));
    assert.equal(readFileSync(join(latest.path, "model.safetensors"), "utf8"), "again");
    assert.deepEqual(readdirSync(latest.path), ["model.safetensors"]);
  });
});

describe("RunDatabase", () => {
  const rec = (step: number, kind: SampleRecord["kind"], correct: boolean | null): SampleRecord => ({
    step,
    kind,
    problemId: `p${step}`,
    prompt: "1+2=",
    completion: "1+2=3\n\\boxed{3}",
    reward: correct === null ? null : correct ? 1 : 0,
    correct,
    finishReason: "stop",
    numTokens: 15,
  });

  it("stores, filters, summarises and survives reopening", () => {
    const path = join(fresh(), "samples.sqlite");
    mkdirSync(join(path, ".."), { recursive: true });
    const db = RunDatabase.open(path);
    db.addSamples([
      rec(1, "rollout", true),
      rec(1, "rollout", false),
      rec(2, "rollout", true),
      rec(2, "eval", null),
    ]);
    db.addSamples([{ ...rec(3, "sample", null), meta: { sampleIndex: 2 } }]);
    assert.equal(db.samples().length, 5);
    assert.equal(db.samples({ kind: "rollout", step: 1 }).length, 2);
    assert.deepEqual(db.samples({ kind: "sample" })[0].meta, { sampleIndex: 2 });
    assert.deepEqual(db.samples({ kind: "eval" })[0].correct, null);
    assert.deepEqual(
      db.summaryByStep("rollout").map((s) => [s.step, s.count, s.accuracy]),
      [
        [1, 2, 0.5],
        [2, 1, 1],
      ],
    );
    db.close();
    const again = RunDatabase.open(path);
    assert.equal(again.deleteAfterStep(1), 3);
    assert.deepEqual(
      again.samples().map((s) => s.step),
      [1, 1],
    );
    again.close();
  });

  it("a transaction is all or nothing", () => {
    const path = join(root, `tx-${n++}.sqlite`);
    const db = RunDatabase.open(path);
    const bad = { ...rec(1, "rollout", true), prompt: null as unknown as string };
    assert.throws(() => db.addSamples([rec(1, "rollout", true), bad]));
    assert.equal(db.samples().length, 0);
    db.close();
  });

  it("an unreadable database is a KlearError naming the file", () => {
    const path = join(root, `junk-${n++}.sqlite`);
    writeFileSync(path, "this is not a database, just text that is long enough to be a header..............");
    assert.throws(
      () => RunDatabase.open(path),
      (e: KlearError) => e.code === "RUN_DATABASE_UNREADABLE" && e.message.includes(path),
    );
  });
});
