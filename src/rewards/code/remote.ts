import { readFileSync } from "node:fs";
import { sleep } from "../../util/concurrency.js";
import { ConfigError } from "../../util/errors.js";
import { clip } from "./compare.js";
import {
  failAll,
  harnessRequest,
  judgeReport,
  locateHarness,
  type resolveLimits,
  summarise,
} from "./harness-protocol.js";
import type { CodeExecutor, CodeRunLimits, CodeRunResult, CodeTest, CodeVerdict } from "./types.js";

export interface SandboxFusionOptions {
  /** Base URL of a SandboxFusion server, e.g. http://10.0.0.5:8080 (its /run_code endpoint is used). */
  url: string;
  /** Attempts per solution on network errors and 5xx answers (default 3). */
  retries?: number;
  /** Extra fields merged into every /run_code request (e.g. a language variant your server uses). */
  extraRequest?: Record<string, unknown>;
  fetchImpl?: typeof fetch;
}

interface RunCodeResponse {
  status?: string;
  message?: string;
  run_result?: {
    status?: string;
    execution_time?: number;
    return_code?: number | null;
    stdout?: string | null;
    stderr?: string | null;
  } | null;
}

/**
 * Runs solutions on a SandboxFusion service (POST /run_code, language "python"), for scale-out.
 * One request per solution: the program sent is klear's own harness in batch mode with the solution
 * and test inputs on stdin, so verdicts follow exactly the local rules; expected outputs stay here.
 */
export class SandboxFusionClient implements CodeExecutor {
  readonly name = "sandbox-fusion";
  private readonly url: string;
  private readonly retries: number;
  private readonly harnessSource = readFileSync(locateHarness(), "utf8");
  private readonly fetchImpl: typeof fetch;
  private readonly extra: Record<string, unknown>;

  constructor(opts: SandboxFusionOptions) {
    if (!/^https?:\/\//.test(opts.url ?? "")) {
      throw new ConfigError(
        `SandboxFusion url "${opts.url}" is not an http(s) URL`,
        "pass e.g. http://host:8080",
      );
    }
    this.url = opts.url.replace(/\/+$/, "");
    this.retries = opts.retries ?? 3;
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.extra = opts.extraRequest ?? {};
  }

  async runSolution(
    code: string,
    tests: readonly CodeTest[],
    limitsIn: CodeRunLimits,
    _slot: number,
  ): Promise<CodeRunResult> {
    const prepared = harnessRequest(code, tests, limitsIn);
    if ("invalid" in prepared) return prepared.invalid;
    const limits = prepared.limits;
    const request = { ...prepared.request, batch: true };
    const runTimeoutS = Math.ceil((tests.length * (limits.timeoutMs + 1000)) / 1000) + 5;
    const body = JSON.stringify({
      code: this.harnessSource,
      language: "python",
      stdin: `${JSON.stringify(request)}\n`,
      run_timeout: runTimeoutS,
      compile_timeout: 10,
      memory_limit_MB: limits.memoryMb + 512,
      ...this.extra,
    });
    let answer: RunCodeResponse | null = null;
    let lastError = "";
    for (let attempt = 0; attempt < this.retries && answer === null; attempt++) {
      if (attempt > 0) await sleep(200 * 2 ** attempt);
      try {
        const res = await this.fetchImpl(`${this.url}/run_code`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout((runTimeoutS + 30) * 1000),
        });
        if (res.status >= 500) {
          lastError = `HTTP ${res.status}`;
          continue;
        }
        if (!res.ok) return failAll(tests, "sandbox_error", `SandboxFusion answered HTTP ${res.status}`);
        answer = (await res.json()) as RunCodeResponse;
      } catch (e) {
        lastError = (e as Error).message;
      }
    }
    if (answer === null) {
      return failAll(
        tests,
        "sandbox_error",
        `SandboxFusion at ${this.url} unreachable after ${this.retries} attempts: ${lastError}`,
      );
    }
    return this.judge(answer, tests, limits);
  }

  private judge(
    answer: RunCodeResponse,
    tests: readonly CodeTest[],
    limits: ReturnType<typeof resolveLimits>,
  ): CodeRunResult {
    if (answer.status === "SandboxError" || !answer.run_result) {
      return failAll(
        tests,
        "sandbox_error",
        `SandboxFusion: ${answer.message ?? answer.status ?? "no run_result"}`,
      );
    }
    const verdicts: CodeVerdict[] = [];
    for (const line of (answer.run_result.stdout ?? "").split("\n")) {
      if (!line.trim()) continue;
      let msg: Parameters<typeof judgeReport>[0] & { done?: boolean };
      try {
        msg = JSON.parse(line);
      } catch {
        verdicts.push({
          status: "sandbox_error",
          timeMs: 0,
          detail: `unreadable harness output ${clip(line)}`,
        });
        break;
      }
      if (msg.done || msg.i !== verdicts.length || verdicts.length >= tests.length) break;
      const v = judgeReport(msg, tests[verdicts.length], limits);
      verdicts.push(v);
      if (limits.stopAtFirstFailure && v.status !== "pass") break;
    }
    const stopped = limits.stopAtFirstFailure && verdicts.some((v) => v.status !== "pass");
    if (!stopped && verdicts.length < tests.length) {
      const rs = answer.run_result.status;
      const status: CodeVerdict["status"] = rs === "TimeLimitExceeded" ? "timeout" : "sandbox_error";
      const detail =
        rs === "TimeLimitExceeded"
          ? "the solution exceeded SandboxFusion's run timeout"
          : `remote run ended early (${rs}): ${(answer.run_result.stderr ?? "").trim().split("\n").pop() ?? ""}`;
      verdicts.push({ status, timeMs: 0, detail });
      if (!limits.stopAtFirstFailure)
        while (verdicts.length < tests.length) verdicts.push({ status, timeMs: 0, detail });
    }
    return summarise(verdicts, tests.length);
  }
}
