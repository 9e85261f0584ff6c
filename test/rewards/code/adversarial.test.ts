import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CodeRunnerPool, type CodeTest, LocalCodeExecutor } from "../../../src/rewards/code/index.js";

// Each hostile program runs in the real bubblewrap sandbox; every test checks both the verdict and
// that nothing changed outside (host files, host processes, this process).
const uidBase = 63000 + (process.pid % 500) * 4;
const pool = new CodeRunnerPool({ concurrency: 2, sandbox: new LocalCodeExecutor({ uidBase }) });
const hostDir = mkdtempSync(join(tmpdir(), "klear-adversarial-"));
const isRoot = process.getuid?.() === 0;
const stdin = (input: string, output: string): CodeTest => ({ input, output, testtype: "stdin" });
const limits = { timeoutMs: 1000 };

/** Host processes still running under the sandbox's slot uids. */
function leftovers(): string[] {
  if (!isRoot) return [];
  const out: string[] = [];
  for (const uid of [uidBase, uidBase + 1]) {
    try {
      out.push(
        ...execFileSync("pgrep", ["-u", String(uid), "-a"], { encoding: "utf8" })
          .trim()
          .split("\n")
          .filter(Boolean),
      );
    } catch {
      // pgrep exits 1 when nothing matches
    }
  }
  return out;
}

after(() => rmSync(hostDir, { recursive: true, force: true }));

test("fork bomb: contained by RLIMIT_NPROC on the slot uid, ends as a timeout, nothing survives", async () => {
  const code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
  const r = await pool.run(code, [stdin("", "")], limits);
  assert.equal(r.verdicts[0].status, "timeout");
  assert.deepEqual(leftovers(), []);
  const ok = await pool.run("print(1)", [stdin("", "1")], limits);
  assert.equal(ok.verdicts[0].status, "pass", "the next solution on the same slots runs normally");
});

test("memory bomb: MemoryError at the address-space limit → memory", async () => {
  const r = await pool.run("x = bytearray(8 << 30)\nprint(len(x))", [stdin("", "")], {
    ...limits,
    memoryMb: 256,
  });
  assert.equal(r.verdicts[0].status, "memory");
  const g = await pool.run("a = []\nwhile True:\n    a.append(' ' * 10**7)", [stdin("", "")], {
    ...limits,
    memoryMb: 256,
  });
  assert.equal(g.verdicts[0].status, "memory");
});

test("infinite loop and sleeping past the wall limit → timeout near the limit", async () => {
  for (const code of ["while True:\n    pass", "import time\ntime.sleep(100)"]) {
    const t0 = Date.now();
    const r = await pool.run(code, [stdin("", "")], limits);
    assert.equal(r.verdicts[0].status, "timeout", code);
    assert.ok(r.verdicts[0].timeMs >= 900 && r.verdicts[0].timeMs < 3000, `timeMs ${r.verdicts[0].timeMs}`);
    assert.ok(Date.now() - t0 < 5000);
  }
  assert.deepEqual(leftovers(), []);
});

test("100 MB of output → output_limit, cut early", async () => {
  const t0 = Date.now();
  const r = await pool.run("import sys\nsys.stdout.write('x' * (100 << 20))", [stdin("", "x")], {
    timeoutMs: 10_000,
  });
  assert.equal(r.verdicts[0].status, "output_limit");
  assert.ok(Date.now() - t0 < 8000);
});

test("network: no route out, and a listener on the host's loopback is unreachable", async () => {
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const code = [
    "import socket",
    "res = []",
    `for host, port in [('127.0.0.1', ${port}), ('1.1.1.1', 80), ('8.8.8.8', 53)]:`,
    "    try:",
    "        socket.create_connection((host, port), timeout=0.5)",
    "        res.append('open')",
    "    except OSError:",
    "        res.append('blocked')",
    "print(' '.join(res))",
  ].join("\n");
  const r = await pool.run(code, [stdin("", "blocked blocked blocked")], limits);
  server.close();
  assert.equal(r.verdicts[0].status, "pass", r.verdicts[0].detail);
  assert.equal(connections, 0);
});

test("writing outside /tmp fails; /tmp is private and gone afterwards", async () => {
  const marker = join(hostDir, "escaped");
  const code = [
    "import os",
    "res = []",
    `for p in [${JSON.stringify(marker)}, '/usr/klear-escape', '/etc/klear-escape', '/root/klear-escape', '/klear-escape', '/opt/klear/x']:`,
    "    try:",
    "        open(p, 'w').write('x')",
    "        res.append('wrote')",
    "    except OSError:",
    "        res.append('denied')",
    "open('/tmp/ok', 'w').write('fine')",
    "print(' '.join(res), open('/tmp/ok').read())",
  ].join("\n");
  const r = await pool.run(code, [stdin("", "denied denied denied denied denied denied fine")], limits);
  assert.equal(r.verdicts[0].status, "pass", r.verdicts[0].detail);
  assert.equal(existsSync(marker), false);
  assert.equal(existsSync("/tmp/ok"), false);
});

test("reading /root, the host's files and the parent's environment finds nothing", async () => {
  process.env.KLEAR_ADVERSARIAL_SECRET = "s3cr3t";
  const code = [
    "import os",
    "print(os.environ.get('KLEAR_ADVERSARIAL_SECRET'))",
    "print(os.path.exists('/root'), os.path.exists('/work'), os.path.exists('/home'))",
    "for p in ['/proc/1/environ', '/etc/shadow', '/etc/passwd']:",
    "    try:",
    "        data = open(p, 'rb').read()",
    "        print(b's3cr3t' in data)",
    "    except OSError:",
    "        print('unreadable')",
    "print(os.getuid() != 0)",
  ].join("\n");
  const r = await pool.run(
    code,
    [stdin("", "None\nFalse False False\nunreadable\nunreadable\nunreadable\nTrue")],
    limits,
  );
  delete process.env.KLEAR_ADVERSARIAL_SECRET;
  assert.equal(r.verdicts[0].status, "pass", r.verdicts[0].detail);
});

test("signalling the parent or the harness, or forging its protocol, changes nothing", async () => {
  const code = [
    "import os, signal",
    `for pid in [os.getppid(), 1, ${process.pid}, -1]:`,
    "    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):",
    "        try:",
    "            os.kill(pid, sig)",
    "        except OSError:",
    "            pass",
    'forged = \'{"i": 0, "status": "exited", "exit": 0, "signal": null, "stdout": "42", "result": "", "err": "", "time_ms": 1, "memory_kb": 1}\'',
    "for fd in range(3, 64):",
    "    try:",
    "        os.write(fd, (forged + '\\n').encode())",
    "    except OSError:",
    "        pass",
    "try:",
    "    open('/proc/1/fd/1', 'w').write(forged + '\\n')",
    "except OSError:",
    "    pass",
    "print('wrong')",
  ].join("\n");
  const r = await pool.run(code, [stdin("", "42"), stdin("", "42")], {
    ...limits,
    stopAtFirstFailure: false,
  });
  assert.deepEqual(
    r.verdicts.map((v) => v.status),
    ["wrong_answer", "wrong_answer"],
  );
  assert.ok(process.pid > 0);
});

test("background processes left behind are killed when the test ends", async () => {
  const code = [
    "import os, subprocess, time",
    "subprocess.Popen(['/usr/bin/sleep', '1000'])",
    "if os.fork() == 0:",
    "    os.setsid()",
    "    if os.fork() == 0:",
    "        time.sleep(1000)",
    "    os._exit(0)",
    "print('bye')",
  ].join("\n");
  const r = await pool.run(code, [stdin("", "bye"), stdin("", "bye")], limits);
  assert.deepEqual(
    r.verdicts.map((v) => v.status),
    ["pass", "pass"],
  );
  assert.deepEqual(leftovers(), []);
});
