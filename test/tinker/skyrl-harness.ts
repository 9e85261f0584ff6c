import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeTinyQwen3 } from "../../scripts/server/make-tiny-qwen3.js";
import { httpStatus } from "../../src/rollout/server-process.js";

/**
 * The real SkyRL Tinker server (JAX backend, CPU) for the `test:tinker` suite: installs it with the repo's
 * script (once; a stamp makes later runs instant), writes the tiny Qwen3 with klear's checkpoint writer,
 * starts the server through scripts/tinker/start-skyrl.sh, and can kill and restart it on the same state
 * folder. `skyrlSkipReason` says plainly why the suite cannot run here instead of failing.
 * KLEAR_TEST_TINKER_URL + KLEAR_TEST_TINKER_MODEL_DIR reuse a server already running (development; the
 * kill/restart test then skips).
 */

const ROOT = join(import.meta.dirname, "../..");

export interface SkyrlUnderTest {
  url: string;
  /** The base model folder the server was started on (its --base-model). */
  modelDir: string;
  dir: string;
  /** SIGKILL to the server's process group, at once; null when reusing an outside server. */
  kill: (() => Promise<void>) | null;
  /** Starts it again on the same port, model and state folder. */
  restart: (() => Promise<void>) | null;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

/** null when the suite can run; else why not (printed as the skip reason). */
export function skyrlSkipReason(): string | null {
  if (process.env.KLEAR_TEST_TINKER_URL) return null;
  if (process.env.KLEAR_SKIP_TINKER_TESTS === "1") return "KLEAR_SKIP_TINKER_TESTS=1";
  if (process.platform !== "linux" || process.arch !== "x64") {
    return `the suite is set up for linux x64 (SkyRL's JAX CPU wheels), not ${process.platform} ${process.arch}`;
  }
  const log = join(ROOT, ".cache/venv-skyrl.install.log");
  const started = Date.now();
  const res = spawnSync("bash", ["-c", `nice bash scripts/tinker/install-skyrl.sh >>"${log}" 2>&1`], {
    cwd: ROOT,
    stdio: "inherit",
  });
  if (res.status === 3)
    return "no Python >= 3.12 to install SkyRL into (install one with pyenv, or set KLEAR_SKYRL_PYTHON)";
  if (res.status !== 0) {
    const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-15).join("\n") : "";
    return `installing skyrl failed (no PyPI access?), log ${log}:\n${tail}`;
  }
  const secs = Math.round((Date.now() - started) / 1000);
  if (secs > 5) console.log(`# skyrl installed in ${secs} s`);
  return null;
}

async function waitHealthy(url: string, child: ChildProcess, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await httpStatus(`${url}/api/v1/healthz`, 2000)) !== 200) {
    if (child.exitCode !== null) throw new Error(`the SkyRL server exited (${child.exitCode}); log ${log}`);
    if (Date.now() > deadline)
      throw new Error(`the SkyRL server did not answer /api/v1/healthz in ${timeoutMs} ms; log ${log}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function startSkyrl(): Promise<SkyrlUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), "klear-skyrl-"));
  if (process.env.KLEAR_TEST_TINKER_URL) {
    const modelDir = process.env.KLEAR_TEST_TINKER_MODEL_DIR ?? join(ROOT, ".cache/tinker/tiny-qwen3");
    return {
      url: process.env.KLEAR_TEST_TINKER_URL,
      modelDir,
      dir,
      kill: null,
      restart: null,
      stop: async () => {},
    };
  }
  const modelDir = join(dir, "base");
  await makeTinyQwen3(modelDir);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = join(dir, "skyrl.log");
  let child: ChildProcess;
  const launch = async () => {
    const out = openSync(log, "a");
    child = spawn("bash", ["scripts/tinker/start-skyrl.sh", modelDir, String(port), join(dir, "state")], {
      cwd: ROOT,
      env: {
        ...process.env,
        KLEAR_SKYRL_MAX_ADAPTERS: "12",
        KLEAR_SKYRL_TRAIN_MICRO_BATCH: "1",
        KLEAR_SKYRL_SAMPLE_MAX_SEQS: "16",
      },
      stdio: ["ignore", out, out],
      detached: true,
    });
    await waitHealthy(url, child, log, 180_000);
  };
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const exited = () =>
    new Promise<void>((done) =>
      child.exitCode !== null || child.signalCode !== null ? done() : child.once("exit", () => done()),
    );
  const t0 = Date.now();
  await launch();
  console.log(`# SkyRL answering in ${Math.round((Date.now() - t0) / 1000)} s (log ${log})`);
  return {
    url,
    modelDir,
    dir,
    kill: async () => {
      signalGroup("SIGKILL");
      await exited();
    },
    restart: launch,
    stop: async () => {
      signalGroup("SIGTERM");
      const timer = setTimeout(() => signalGroup("SIGKILL"), 10_000);
      await exited();
      clearTimeout(timer);
      // The engine the API server relaunched shares its process group; make sure none outlives it.
      signalGroup("SIGKILL");
    },
  };
}
