import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  CodeRunnerPool,
  type CodeTest,
  runCodeTests,
  SandboxFusionClient,
} from "../../../src/rewards/code/index.js";

// A stand-in for SandboxFusion's POST /run_code on 127.0.0.1: it runs the program with python3 (no
// isolation; only this test's trusted harness runs here) and answers in SandboxFusion's shape.
let server: Server;
let url = "";
let requests = 0;
let failNext = 0;
const work = mkdtempSync(join(tmpdir(), "klear-fake-sandboxfusion-"));

before(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      requests++;
      if (req.url !== "/run_code" || req.method !== "POST") {
        res.writeHead(404).end();
        return;
      }
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end("busy");
        return;
      }
      const r = JSON.parse(body) as { code: string; language: string; stdin: string; run_timeout: number };
      assert.equal(r.language, "python");
      const file = join(work, `prog-${requests}.py`);
      writeFileSync(file, r.code);
      const child = spawn("/usr/bin/python3", ["-I", file], { stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const t0 = Date.now();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, r.run_timeout * 1000);
      child.on("close", (code) => {
        clearTimeout(timer);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            status: code === 0 ? "Success" : "Failed",
            message: "",
            compile_result: null,
            run_result: {
              status: timedOut ? "TimeLimitExceeded" : "Finished",
              execution_time: (Date.now() - t0) / 1000,
              return_code: code,
              stdout,
              stderr,
            },
            executor_pod_name: null,
            files: {},
          }),
        );
      });
      child.stdin.end(r.stdin);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => {
  server.close();
  rmSync(work, { recursive: true, force: true });
});

const stdin = (input: string, output: string): CodeTest => ({ input, output, testtype: "stdin" });

test("SandboxFusion client: same verdicts as the local sandbox, one request per solution", async () => {
  const client = new SandboxFusionClient({ url });
  const tests = [stdin("3\n", "6\n"), stdin("4\n", "9\n"), stdin("5\n", "10\n")];
  const code = "print(int(input()) * 2)";
  const before = requests;
  const remote = await runCodeTests(code, tests, { sandbox: client, stopAtFirstFailure: false });
  assert.equal(requests - before, 1);
  const local = await runCodeTests(code, tests, { stopAtFirstFailure: false });
  assert.deepEqual(
    remote.verdicts.map((v) => [v.status, v.detail]),
    local.verdicts.map((v) => [v.status, v.detail]),
  );
  assert.equal(remote.passRate, local.passRate);

  const stopped = await runCodeTests(code, tests, { sandbox: client });
  assert.deepEqual(
    stopped.verdicts.map((v) => v.status),
    ["pass", "wrong_answer"],
  );

  const fn = await new CodeRunnerPool({ sandbox: client, concurrency: 2 }).run(
    "class Solution:\n    def add(self, a, b):\n        return a + b\n",
    [
      { input: "1\n2", output: "3", testtype: "functional" },
      { input: "[1]\n[2]", output: "[1, 2]", testtype: "functional" },
    ],
    { starterCode: "class Solution:\n    def add(self, a, b):\n        " },
  );
  assert.equal(fn.passed, true);
  const slow = await runCodeTests("while True: pass", [stdin("", "")], { sandbox: client, timeoutMs: 300 });
  assert.equal(slow.verdicts[0].status, "timeout");
});

test("SandboxFusion client retries 5xx and reports an unreachable server as sandbox_error", async () => {
  failNext = 1;
  const ok = await runCodeTests("print(1)", [stdin("", "1")], { sandbox: new SandboxFusionClient({ url }) });
  assert.equal(ok.passed, true);
  const down = await new SandboxFusionClient({ url: "http://127.0.0.1:9", retries: 1 }).runSolution(
    "print(1)",
    [stdin("", "1")],
    {},
    0,
  );
  assert.equal(down.verdicts[0].status, "sandbox_error");
  assert.match(down.verdicts[0].detail ?? "", /unreachable/);
  assert.throws(() => new SandboxFusionClient({ url: "localhost:8080" }), /not an http/);
});
