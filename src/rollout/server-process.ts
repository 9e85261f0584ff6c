import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import http from "node:http";
import { KlearError } from "../util/errors.js";

/**
 * An inference server that klear starts, waits for and stops with the run (`rollout.serverCommand`), and
 * the readiness wait the hand-off's restart path shares. The command runs in its own process group so
 * stopping it also stops the engine processes vLLM forks.
 */

/** GET `url` → the HTTP status, or 0 when nothing answers within `timeoutMs`. */
export function httpStatus(url: string, timeoutMs = 5000): Promise<number> {
  return new Promise((done) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => done(res.statusCode ?? 0));
      res.on("error", () => done(0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => done(0));
  });
}

export interface WaitForServersOptions {
  timeoutMs: number;
  /** Poll interval (default 1000 ms). */
  intervalMs?: number;
  /** Checked each poll: a server process that exited will never answer. */
  alive?: () => boolean;
  /** Tail of the server's log, for the error. */
  describe?: () => string;
}

/** Waits until `GET {base}/health` answers 200 on every base URL (vLLM and SGLang both serve it). */
export async function waitForServers(bases: readonly string[], opts: WaitForServersOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  const pending = new Set(bases);
  while (pending.size > 0) {
    for (const base of [...pending]) {
      if ((await httpStatus(`${base.replace(/\/+$/, "")}/health`)) === 200) pending.delete(base);
    }
    if (pending.size === 0) return;
    if (opts.alive && !opts.alive()) {
      throw new KlearError(
        "SERVER_EXITED",
        `the inference server exited before answering /health${opts.describe ? `:\n${opts.describe()}` : ""}`,
        "check the server command and its log",
      );
    }
    if (Date.now() > deadline) {
      throw new KlearError(
        "SERVER_NOT_READY",
        `${[...pending].join(", ")} did not answer /health within ${opts.timeoutMs} ms`,
        "check that the server is starting (its log), or raise rollout.serverReadyTimeoutMs",
      );
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}

export interface ServerProcessOptions {
  /** Shell command that runs the server in the foreground. */
  command: string;
  /** Base URLs it will serve (for the readiness wait). */
  endpoints: string[];
  /** File the server's stdout and stderr go to (default: inherited). */
  logFile?: string;
  env?: Record<string, string>;
  cwd?: string;
  readyTimeoutMs?: number;
}

export class ServerProcess {
  private exitCode: number | null | undefined = undefined;
  private readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly opts: ServerProcessOptions,
  ) {
    this.exited = new Promise((done) => {
      child.on("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        done();
      });
    });
  }

  /** Starts the command and resolves once every endpoint answers /health. */
  static async start(opts: ServerProcessOptions): Promise<ServerProcess> {
    const out = opts.logFile ? openSync(opts.logFile, "a") : "inherit";
    // The server runs in its own process group (so stop() reaches vLLM's engine processes too), which
    // also means it would outlive a klear that dies without stopping it: a watchdog in the group ends the
    // group once klear's process is gone.
    const watchdog = `( while kill -0 ${process.pid} 2>/dev/null; do sleep 2; done; kill -TERM 0 ) &`;
    const child = spawn("bash", ["-c", `${watchdog} exec ${opts.command}`], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", out, out],
      detached: true,
    });
    const server = new ServerProcess(child, opts);
    try {
      await waitForServers(
        opts.endpoints.map((e) => e.replace(/\/v1\/?$/, "")),
        {
          timeoutMs: opts.readyTimeoutMs ?? 600_000,
          alive: () => server.running,
          describe: () => (opts.logFile ? `see ${opts.logFile}` : "see its output above"),
        },
      );
    } catch (e) {
      await server.stop();
      throw e;
    }
    return server;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** SIGTERM to the whole process group, SIGKILL after `graceMs`. */
  async stop(graceMs = 20_000): Promise<void> {
    if (!this.running || this.child.pid === undefined) return;
    const group = -this.child.pid;
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(group, s);
      } catch {
        // already gone
      }
    };
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
    // Engine workers forked by the server share its group; make sure none outlives it.
    signal("SIGKILL");
  }

  /** Kills the server at once (fault tests: a server that dies mid-step). */
  async kill(): Promise<void> {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await this.exited;
  }
}
