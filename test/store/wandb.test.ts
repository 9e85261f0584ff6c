import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  appendMetrics,
  createRun,
  readMetrics,
  resumeOrCreateRun,
  truncateMetricsAfter,
} from "../../src/store/run.js";
import { finishRunLogging, openRunLogging, WANDB_STATE_FILE } from "../../src/store/wandb.js";
import { WandbSectionSchema, wandbApiKey, wandbTarget } from "../../src/store/wandb-config.js";
import { FakeWandb, filesUnder } from "./wandb-fake.js";

// W&B is a hosted service this machine cannot reach: these tests run the protocol against a local fake.
const KEY = "secret-key-0123456789abcdef0123456789abcdef";
const root = mkdtempSync(join(tmpdir(), "klear-wandb-"));
const fake = new FakeWandb();
const savedEnv = { ...process.env };
before(async () => {
  await fake.start();
  process.env.WANDB_API_KEY = KEY;
  delete process.env.WANDB_MODE;
  delete process.env.WANDB_BASE_URL;
  delete process.env.WANDB_ENTITY;
});
after(async () => {
  await finishRunLogging();
  await fake.stop();
  process.env = savedEnv;
  rmSync(root, { recursive: true, force: true });
});

let runs = 0;
function configFor(extra: Record<string, unknown> = {}) {
  return { lr: 0.001, steps: 4, wandb: { project: "klear-test", baseUrl: fake.url, ...extra } };
}
const fast = (lines: string[]) => ({
  sendIntervalMs: 5,
  backoffMs: 5,
  log: (l: string) => lines.push(l),
  warn: (l: string) => lines.push(`WARN ${l}`),
});
function newRun(config: Record<string, unknown> = configFor()) {
  const paths = createRun(join(root, `run-${++runs}`), config);
  return paths;
}
function stateOf(dir: string): { id: string } {
  return JSON.parse(readFileSync(join(dir, WANDB_STATE_FILE), "utf8"));
}

test("a run is created with its config; history rows carry metrics.jsonl's steps; summary; complete", async () => {
  const lines: string[] = [];
  const paths = newRun();
  const logger = openRunLogging(paths.dir, configFor(), fast(lines));
  assert.ok(logger);
  appendMetrics(paths, { step: 0, phase: "eval-before", heldOutAccuracy: 0.25 });
  for (let step = 1; step <= 4; step++)
    appendMetrics(paths, { step, loss: 2 / step, lr: 1e-3, skipped: false });
  appendMetrics(paths, { step: 4, phase: "eval-after", heldOutAccuracy: 0.5 });
  await finishRunLogging(paths.dir, 0);

  const run = fake.runs.get(stateOf(paths.dir).id);
  assert.ok(run);
  assert.equal(run.project, "klear-test");
  assert.equal(run.displayName, `run-${runs}`);
  assert.deepEqual(run.config.lr, { value: 0.001 });
  assert.deepEqual(run.config.wandb, { value: configFor().wandb });
  const rows = fake.rows(run.id);
  const steps = [...new Set(readMetrics(paths).map((m) => m.step))];
  assert.deepEqual(
    rows.map((r) => r._step),
    steps,
  );
  assert.equal(rows[0]["eval-before/heldOutAccuracy"], 0.25);
  assert.equal(rows[1].loss, 2);
  assert.equal(rows[1].skipped, 0);
  assert.equal(rows[4]["eval-after/heldOutAccuracy"], 0.5, "records of one step merge into one row");
  assert.equal(rows[4].loss, 0.5);
  for (const r of rows) {
    assert.equal(typeof r._runtime, "number");
    assert.equal(typeof r._timestamp, "number");
  }
  assert.equal(run.summary.loss, 0.5);
  assert.equal(run.summary._step, 4);
  assert.equal(run.summary["eval-after/heldOutAccuracy"], 0.5);
  assert.equal(run.complete, true);
  assert.equal(run.exitcode, 0);
  const auth = fake.requests.at(-1)?.authorization ?? "";
  assert.equal(Buffer.from(auth.replace(/^Basic /, ""), "base64").toString(), `api:${KEY}`);
  assert.ok(lines.some((l) => l.includes(`/fake-user/klear-test/runs/${run.id}`)));
  assert.ok(!lines.some((l) => l.startsWith("WARN")), lines.join("\n"));
});

test("--resume continues the same W&B run after the last step it has, without duplicate rows", async () => {
  const lines: string[] = [];
  const dir = join(root, "resumed");
  const make = () =>
    resumeOrCreateRun({
      out: dir,
      resume: existsSync(join(dir, "config.json")),
      log: (l) => lines.push(l),
      parse: (v) => v as ReturnType<typeof configFor>,
      create: () => configFor(),
    });
  const first = make();
  for (let step = 1; step <= 5; step++) appendMetrics(first.paths, { step, loss: 10 - step });
  await finishRunLogging(dir, 1);
  const id = stateOf(dir).id;
  assert.deepEqual(
    fake.rows(id).map((r) => r._step),
    [1, 2, 3, 4, 5],
  );
  // The process died after step 5 but its last checkpoint is step 3: the resumed run logs 4.. again.
  const second = make();
  truncateMetricsAfter(second.paths, 3);
  for (let step = 4; step <= 8; step++) appendMetrics(second.paths, { step, loss: 10 - step });
  await finishRunLogging(dir, 0);
  assert.equal(stateOf(dir).id, id, "the same W&B run id");
  const run = fake.runs.get(id);
  assert.equal(run?.upserts, 2);
  assert.deepEqual(
    fake.rows(id).map((r) => r._step),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.deepEqual(
    readMetrics(second.paths).map((m) => m.step),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  const runtimes = fake.rows(id).map((r) => r._runtime as number);
  assert.ok(runtimes[5] >= runtimes[4], "runtime continues across processes");
  assert.equal(run?.complete, true);
  assert.equal(run?.summary.loss, 2);
  assert.ok(lines.some((l) => l.startsWith("W&B: resuming")));
});

test("a demo's inner runs are named OUTER/inner and grouped under OUTER", async () => {
  const outer = newRun(configFor({ name: "my-demo" }));
  const inner = createRun(join(outer.dir, "sft"), configFor({ name: "my-demo" }));
  openRunLogging(outer.dir, configFor({ name: "my-demo" }), fast([]));
  openRunLogging(inner.dir, configFor({ name: "my-demo" }), fast([]));
  appendMetrics(inner, { step: 1, loss: 1 });
  await finishRunLogging(outer.dir);
  await finishRunLogging(inner.dir);
  const outerRun = fake.runs.get(stateOf(outer.dir).id);
  const innerRun = fake.runs.get(stateOf(inner.dir).id);
  assert.equal(outerRun?.displayName, "my-demo");
  assert.equal(outerRun?.group, null);
  assert.equal(innerRun?.displayName, "my-demo/sft");
  assert.equal(innerRun?.group, "my-demo");
  assert.equal(fake.rows(innerRun?.id ?? "").length, 1);
});

test("500 and 429 answers are retried until the rows are in", async () => {
  const lines: string[] = [];
  const paths = newRun();
  fake.failNext = [500, 503];
  openRunLogging(paths.dir, configFor(), fast(lines));
  for (let step = 1; step <= 3; step++) appendMetrics(paths, { step, loss: step });
  await new Promise((r) => setTimeout(r, 100));
  fake.failNext = [429, 500];
  for (let step = 4; step <= 6; step++) appendMetrics(paths, { step, loss: step });
  await finishRunLogging(paths.dir, 0);
  const id = stateOf(paths.dir).id;
  assert.deepEqual(
    fake.rows(id).map((r) => r._step),
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal(fake.runs.get(id)?.complete, true);
});

test("a refused key (401) warns once, naming WANDB_API_KEY, and training goes on", async () => {
  const lines: string[] = [];
  const paths = newRun();
  const before = fake.requests.length;
  fake.always = 401;
  try {
    openRunLogging(paths.dir, configFor(), fast(lines));
    appendMetrics(paths, { step: 1, loss: 1 });
    await new Promise((r) => setTimeout(r, 50));
    for (let step = 2; step <= 20; step++) appendMetrics(paths, { step, loss: 1 / step });
    await new Promise((r) => setTimeout(r, 50));
    await finishRunLogging(paths.dir, 0);
  } finally {
    fake.always = null;
  }
  const warnings = lines.filter((l) => l.startsWith("WARN"));
  assert.equal(warnings.length, 1, lines.join("\n"));
  assert.match(warnings[0], /WANDB_API_KEY/);
  assert.equal(fake.requests.length - before, 1, "nothing is sent after the refusal");
  assert.equal(readMetrics(paths).length, 20);
});

test("a hanging server never blocks logging, and the end waits at most flushSeconds", async () => {
  const lines: string[] = [];
  const config = configFor({ flushSeconds: 0.3 });
  const paths = newRun(config);
  fake.hang = true;
  try {
    openRunLogging(paths.dir, config, fast(lines));
    for (let step = 1; step <= 200; step++) appendMetrics(paths, { step, loss: step });
    const t0 = Date.now();
    await finishRunLogging(paths.dir, 0);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    fake.hang = false;
  }
  assert.equal(readMetrics(paths).length, 200);
  assert.ok(
    lines.some((l) => /WARN W&B: gave up after 0.3 s/.test(l)),
    lines.join("\n"),
  );
});

test("rows a process could not send reach W&B when the run is resumed", async () => {
  const dir = join(root, "gave-up");
  const config = configFor({ flushSeconds: 0.2 });
  const open = () =>
    resumeOrCreateRun({
      out: dir,
      resume: existsSync(join(dir, "config.json")),
      log: () => {},
      parse: (v) => v as typeof config,
      create: () => config,
    });
  const first = open();
  appendMetrics(first.paths, { step: 1, loss: 3 });
  await new Promise((r) => setTimeout(r, 100));
  fake.hang = true;
  for (let step = 2; step <= 4; step++) appendMetrics(first.paths, { step, loss: 4 - step });
  try {
    await finishRunLogging(dir, 0);
  } finally {
    fake.hang = false;
  }
  const id = stateOf(dir).id;
  assert.ok(fake.rows(id).length < 4);
  const second = open();
  truncateMetricsAfter(second.paths, 4);
  for (let step = 5; step <= 6; step++) appendMetrics(second.paths, { step, loss: 0 });
  await finishRunLogging(dir, 0);
  assert.deepEqual(
    fake.rows(id).map((r) => r._step),
    [1, 2, 3, 4, 5, 6],
  );
});

test("nothing is sent when W&B is not configured", async () => {
  const before = fake.requests.length;
  for (const config of [
    { lr: 1 },
    { lr: 1, wandb: { project: "" } },
    { lr: 1, wandb: { project: "x", mode: "off", baseUrl: fake.url } },
  ]) {
    const paths = newRun(config);
    assert.equal(openRunLogging(paths.dir, config), null);
    appendMetrics(paths, { step: 1, loss: 1 });
    assert.ok(!existsSync(join(paths.dir, WANDB_STATE_FILE)));
  }
  process.env.WANDB_MODE = "disabled";
  try {
    const paths = newRun();
    assert.equal(openRunLogging(paths.dir, configFor()), null);
  } finally {
    delete process.env.WANDB_MODE;
  }
  await finishRunLogging();
  assert.equal(fake.requests.length, before);
});

test("a missing key warns once and logs nothing; the key is never written under a run dir", async () => {
  const lines: string[] = [];
  delete process.env.WANDB_API_KEY;
  const env = { ...process.env, NETRC: join(root, "no-netrc") };
  const saved = process.env.NETRC;
  process.env.NETRC = env.NETRC;
  try {
    const paths = newRun();
    assert.equal(openRunLogging(paths.dir, configFor(), fast(lines)), null);
    assert.match(lines.join("\n"), /WANDB_API_KEY/);
  } finally {
    process.env.WANDB_API_KEY = KEY;
    if (saved === undefined) delete process.env.NETRC;
    else process.env.NETRC = saved;
  }
  for (const file of filesUnder(root)) {
    assert.ok(!readFileSync(file).includes(KEY), `${file} holds the API key`);
    assert.ok(!readFileSync(file).includes(Buffer.from(`api:${KEY}`).toString("base64")), file);
  }
});

test("config: defaults are off; env fills base URL and entity; the key comes from env or netrc", () => {
  const d = WandbSectionSchema.parse({});
  assert.equal(d.project, "");
  assert.equal(wandbTarget(d, {}), null);
  const t = wandbTarget({ ...d, project: "p" }, { WANDB_BASE_URL: "http://h:1/", WANDB_ENTITY: "team" });
  assert.equal(t?.baseUrl, "http://h:1");
  assert.equal(t?.entity, "team");
  assert.equal(wandbTarget({ ...d, project: "p" }, {})?.baseUrl, "https://api.wandb.ai");
  assert.equal(wandbTarget({ ...d, project: "p" }, { WANDB_MODE: "offline" }), null);
  assert.equal(wandbApiKey("https://api.wandb.ai", { WANDB_API_KEY: "k" }), "k");
  const netrc = join(root, "netrc");
  writeFileSync(
    netrc,
    "machine other.host login x password nope\nmachine api.wandb.ai\n  login user\n  password fromnetrc\n",
  );
  assert.equal(wandbApiKey("https://api.wandb.ai", { NETRC: netrc }), "fromnetrc");
  assert.equal(wandbApiKey("http://127.0.0.1:9", { NETRC: netrc }), "");
});
