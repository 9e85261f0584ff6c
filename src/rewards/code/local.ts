/**
 * The local code sandbox: one bubblewrap process per solution, driven over the harness protocol
 * (harness-protocol.ts), with the wall timer, output cap and process-group kill on this side.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { KlearError } from "../../util/errors.js";
import { clip } from "./compare.js";
import {
  failAll,
  type HarnessReport,
  harnessRequest,
  judgeReport,
  locateHarness,
  summarise,
} from "./harness-protocol.js";
import type { CodeExecutor, CodeRunLimits, CodeRunResult, CodeTest, CodeVerdict } from "./types.js";

export const PYTHON_PATH = "/usr/bin/python3";
export const BWRAP_PATH = "/usr/bin/bwrap";
const HARNESS_IN_SANDBOX = "/opt/klear/harness.py";

export { CODE_LIMIT_DEFAULTS, fnNameFromStarter } from "./harness-protocol.js";

export interface LocalSandboxOptions {
  /** "bwrap" (default) isolates; "unsafe-none" runs the harness directly (trusted code only). */
  isolation?: "bwrap" | "unsafe-none";
  /** First uid of this executor's worker slots (slot k runs as uidBase + k, k < 64); only used as root. */
  uidBase?: number;
  /** Size of the sandbox's private /tmp (MiB). Default 64. */
  tmpfsMb?: number;
  /** Processes per slot uid (RLIMIT_NPROC). Default 64. */
  maxProcesses?: number;
  /** Largest file a solution may write (MiB, RLIMIT_FSIZE). Default 16. */
  maxFileMb?: number;
  /** Open files per process (RLIMIT_NOFILE). Default 64. */
  maxOpenFiles?: number;
  /** Where bubblewrap is (default /usr/bin/bwrap). */
  bwrapPath?: string;
}

let warnedUnsafe = false;
let nextUidBlock = 0;
const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

/**
 * Runs solutions on this machine: one bubblewrap sandbox per solution (no network, read-only /usr
 * only, private size-limited /tmp, own PID namespace with the harness as PID 1, non-root uid per
 * worker slot, rlimits), with the harness forking once per test inside.
 */
export class LocalCodeExecutor implements CodeExecutor {
  readonly name: string;
  private readonly harness = locateHarness();
  private readonly isolation: "bwrap" | "unsafe-none";
  private readonly uidBase: number;
  private readonly opts: Required<Omit<LocalSandboxOptions, "isolation" | "uidBase" | "bwrapPath">>;
  private readonly bwrap: string;

  constructor(opts: LocalSandboxOptions = {}) {
    this.isolation = opts.isolation ?? "bwrap";
    this.name = this.isolation === "bwrap" ? "bwrap" : "unsafe-none";
    // Distinct uids per process and per executor, so that RLIMIT_NPROC (counted per uid across the
    // whole machine) of one run never throttles another.
    // The range sits far above login users and the usual /etc/subuid ranges (100000+), whose processes
    // would otherwise share the limit: 256 uids per process (by pid), 64 per executor.
    this.uidBase = opts.uidBase ?? 1_000_000_000 + (process.pid % 100_000) * 256 + 64 * (nextUidBlock++ % 4);
    this.opts = {
      tmpfsMb: opts.tmpfsMb ?? 64,
      maxProcesses: opts.maxProcesses ?? 64,
      maxFileMb: opts.maxFileMb ?? 16,
      maxOpenFiles: opts.maxOpenFiles ?? 64,
    };
    if (!existsSync(PYTHON_PATH)) {
      throw new KlearError(
        "SANDBOX_PYTHON_MISSING",
        `${PYTHON_PATH} is not installed; the code sandbox runs solutions with it`,
        "install it: apt-get install -y --no-install-recommends python3-minimal",
      );
    }
    this.bwrap = opts.bwrapPath ?? BWRAP_PATH;
    if (this.isolation === "bwrap" && !existsSync(this.bwrap)) {
      throw new KlearError(
        "SANDBOX_BWRAP_MISSING",
        `bubblewrap (${this.bwrap}) is not installed; refusing to run untrusted code without a sandbox`,
        'install it: apt-get install -y bubblewrap (or `npm run setup`); only for trusted code, pass --unsafe-no-sandbox / sandbox: "unsafe-none"',
      );
    }
    if (this.isolation === "unsafe-none" && !warnedUnsafe) {
      warnedUnsafe = true;
      process.stderr.write(
        "klear: WARNING: running generated code WITHOUT a sandbox (unsafe-none): it can read your files, use the network and kill your processes. Use only for trusted code.\n",
      );
    }
  }

  /** The command line for one solution's sandbox. */
  commandFor(limits: Required<CodeRunLimits>, testCount: number, slot: number): string[] {
    const cpuTotal = Math.ceil((testCount * (limits.timeoutMs + 1000)) / 1000) + 5;
    const rlimits = [
      `--cpu=${cpuTotal}`,
      // The harness and its test processes each get the per-test limit; this outer one also covers bwrap.
      `--as=${(limits.memoryMb + 512) * 1024 * 1024}`,
      `--nproc=${this.opts.maxProcesses}`,
      `--fsize=${this.opts.maxFileMb * 1024 * 1024}`,
      `--nofile=${this.opts.maxOpenFiles}`,
      "--core=0",
    ];
    if (this.isolation === "unsafe-none") {
      return ["/usr/bin/prlimit", ...rlimits, PYTHON_PATH, "-I", this.harness];
    }
    const drop = isRoot()
      ? [
          "/usr/bin/setpriv",
          `--reuid=${this.uidBase + slot}`,
          `--regid=${this.uidBase + slot}`,
          "--clear-groups",
        ]
      : [];
    return [
      ...drop,
      "/usr/bin/prlimit",
      ...rlimits,
      this.bwrap,
      "--ro-bind",
      "/usr",
      "/usr",
      "--symlink",
      "usr/bin",
      "/bin",
      "--symlink",
      "usr/lib",
      "/lib",
      "--symlink",
      "usr/lib64",
      "/lib64",
      ...(existsSync("/etc/alternatives") ? ["--ro-bind", "/etc/alternatives", "/etc/alternatives"] : []),
      "--size",
      String(this.opts.tmpfsMb * 1024 * 1024),
      "--tmpfs",
      "/tmp",
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--ro-bind",
      this.harness,
      HARNESS_IN_SANDBOX,
      "--remount-ro",
      "/",
      "--unshare-all",
      "--as-pid-1",
      "--die-with-parent",
      "--new-session",
      "--chdir",
      "/tmp",
      "--clearenv",
      "--setenv",
      "PATH",
      "/usr/bin",
      "--setenv",
      "OPENBLAS_NUM_THREADS",
      "1",
      "--setenv",
      "PYTHONIOENCODING",
      "utf-8",
      "--setenv",
      "HOME",
      "/tmp",
      PYTHON_PATH,
      "-I",
      HARNESS_IN_SANDBOX,
    ];
  }

  async runSolution(
    code: string,
    tests: readonly CodeTest[],
    limitsIn: CodeRunLimits,
    slot: number,
  ): Promise<CodeRunResult> {
    const prepared = harnessRequest(code, tests, limitsIn);
    if ("invalid" in prepared) return prepared.invalid;
    const { limits, request } = prepared;
    const argv = this.commandFor(limits, tests.length, slot);
    return driveHarness(argv, request, tests, limits);
  }
}

/**
 * Spawns the sandbox, feeds the request, judges each test as its report arrives and tells the harness
 * whether to go on. The wall timer and the protocol-size cap kill the whole process group.
 */
function driveHarness(
  argv: string[],
  request: Record<string, unknown>,
  tests: readonly CodeTest[],
  limits: Required<CodeRunLimits>,
): Promise<CodeRunResult> {
  return new Promise((resolvePromise) => {
    let child: ChildProcess;
    const verdicts: CodeVerdict[] = [];
    let settled = false;
    let stderrTail = "";
    const pending: string[] = [];
    let protocolBytes = 0;
    let closed = false;
    let result: CodeRunResult | null = null;
    const protocolCap = tests.length * (limits.outputLimitBytes * 2 + 65536) + (1 << 20);
    // A per-solution budget like Klear's global timeout: every test at its limit plus start-up slack.
    const wallMs = tests.length * (limits.timeoutMs + 1000) + 5000;

    // Kill the sandbox's PID 1 (bwrap's child) rather than bwrap: bwrap then reaps it and exits. Killing
    // bwrap first would orphan the sandbox to the host's init, which reaps lazily, and the zombies would
    // count against the slot uid's process limit.
    const killSandbox = () => {
      const pid = child?.pid;
      if (pid === undefined || closed) return;
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
          .split(/\s+/)
          .filter(Boolean)) {
          process.kill(Number(c), "SIGKILL");
        }
      } catch {
        // gone already, or no /proc: fall through to the group kill
      }
      setTimeout(() => {
        if (closed) return;
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
      }, 1000).unref();
    };
    const finish = (fallback?: { status: CodeVerdict["status"]; detail: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // After a clean "done" the harness exits by itself; otherwise the sandbox must go now.
      if (fallback) killSandbox();
      else {
        child.stdin?.end();
        setTimeout(killSandbox, 2000).unref();
      }
      const stopped = limits.stopAtFirstFailure && verdicts.some((v) => v.status !== "pass");
      if (fallback && !stopped && verdicts.length < tests.length) {
        verdicts.push({ status: fallback.status, timeMs: 0, detail: fallback.detail });
        if (!limits.stopAtFirstFailure) {
          while (verdicts.length < tests.length)
            verdicts.push({ status: fallback.status, timeMs: 0, detail: fallback.detail });
        }
      }
      result = summarise(verdicts, tests.length);
      // Resolve only once the sandbox is gone, so a pool slot (and its uid) is never reused while
      // anything of the previous solution still runs.
      if (closed) resolvePromise(result);
      else setTimeout(() => resolvePromise(result as CodeRunResult), 10_000).unref();
    };

    try {
      child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], detached: true });
    } catch (e) {
      resolvePromise(failAll(tests, "sandbox_error", `cannot start the sandbox: ${(e as Error).message}`));
      return;
    }
    const timer = setTimeout(() => {
      finish({ status: "timeout", detail: `the solution's sandbox exceeded its ${wallMs} ms wall budget` });
    }, wallMs);
    child.on("error", (e) =>
      finish({ status: "sandbox_error", detail: `sandbox failed to start: ${e.message}` }),
    );
    child.stdin?.on("error", () => {
      // EPIPE when the sandbox died early; the exit handler reports it.
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      stderrTail = (stderrTail + d).slice(-2000);
    });
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      if (settled) return;
      protocolBytes += d.length;
      if (protocolBytes > protocolCap) {
        finish({ status: "sandbox_error", detail: "the harness wrote more than its protocol allows" });
        return;
      }
      // Only the new chunk is searched for line ends: a report line can be megabytes long.
      let from = 0;
      let nl = d.indexOf("\n");
      if (nl < 0) pending.push(d);
      while (nl >= 0 && !settled) {
        pending.push(d.slice(from, nl));
        const line = pending.join("");
        pending.length = 0;
        from = nl + 1;
        nl = d.indexOf("\n", from);
        if (nl < 0 && from < d.length) pending.push(d.slice(from));
        let msg: HarnessReport & { done?: boolean };
        try {
          msg = JSON.parse(line);
        } catch {
          finish({ status: "sandbox_error", detail: `unreadable harness output ${clip(line)}` });
          return;
        }
        if (msg.done) {
          finish();
          return;
        }
        const k = verdicts.length;
        if (msg.i !== k || k >= tests.length) {
          finish({ status: "sandbox_error", detail: `harness reported test ${msg.i}, expected ${k}` });
          return;
        }
        const v = judgeReport(msg, tests[k], limits);
        verdicts.push(v);
        const goOn = verdicts.length < tests.length && !(limits.stopAtFirstFailure && v.status !== "pass");
        child.stdin?.write(goOn ? "next\n" : "stop\n");
        if (!goOn) child.stdin?.end();
      }
    });
    child.on("close", (codeNum, sig) => {
      closed = true;
      if (settled) {
        resolvePromise(result as CodeRunResult);
        return;
      }
      const why = stderrTail.trim().split("\n").pop() ?? "";
      finish({
        status: "sandbox_error",
        detail: `sandbox exited early (${sig ?? `exit ${codeNum}`})${why ? `: ${why}` : ""}`,
      });
    });
    child.stdin?.write(`${JSON.stringify(request)}\n`);
  });
}

/**
 * Whether the local bubblewrap sandbox works on this machine (installed, namespaces allowed), by
 * running one trivial solution. Callers that can fall back (tests of other modules, `klear demo`)
 * use the reason in their message.
 */
export async function probeCodeSandbox(): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const executor = new LocalCodeExecutor();
    const r = await executor.runSolution("print(1)", [{ input: "", output: "1", testtype: "stdin" }], {}, 0);
    if (r.passed) return { ok: true };
    return { ok: false, reason: r.verdicts[0]?.detail ?? "the sandbox did not run a trivial program" };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}
