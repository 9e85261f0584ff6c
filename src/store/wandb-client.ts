/**
 * The few calls of W&B's public HTTP protocol a run needs, as the `wandb` SDK makes them (read from its
 * source: wandb/sdk/internal/internal_api.py, core/internal/filestream): GraphQL `UpsertBucket` creates or
 * updates a run, `RunResumeStatus` tells a resumed run where its history stopped, and
 * `POST files/{entity}/{project}/{run}/file_stream` appends history lines at an offset (re-sending the
 * same offset replaces, so a retry never duplicates) and ends the run with `complete`. Auth is HTTP basic
 * `api:<key>`.
 */

/** A failed call: `retry` for 429, 5xx, timeouts and network errors; `auth` for 401/403. */
export class WandbCallError extends Error {
  constructor(
    message: string,
    readonly kind: "retry" | "auth" | "rejected",
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

/** One file_stream request: history lines at `offset`, the whole summary as one line, or the end. */
export interface FileStreamBody {
  files?: Record<string, { offset: number; content: string[] }>;
  complete?: boolean;
  exitcode?: number;
}

export interface UpsertRunInput {
  /** The run id (W&B's `name`). */
  id: string;
  project: string;
  /** Empty: the key's default entity. */
  entity: string;
  displayName: string;
  group: string;
  tags: string[];
  /** Sent as W&B's config JSON: each top-level key as { value }. */
  config: Record<string, unknown>;
  host: string;
}

export interface UpsertedRun {
  entity: string;
  project: string;
  historyLineCount: number;
}

/** Where a run's history on the server stopped; null when the server has no such run. */
export interface ResumeStatus {
  historyLineCount: number;
  lastStep: number;
  runtime: number;
  summary: Record<string, unknown>;
}

const REQUEST_TIMEOUT_MS = 30_000;

const UPSERT_BUCKET = `mutation UpsertBucket($name: String, $project: String, $entity: String, $groupName: String, $displayName: String, $config: JSONString, $host: String, $program: String, $tags: [String!]) {
  upsertBucket(input: {name: $name, modelName: $project, entityName: $entity, groupName: $groupName, displayName: $displayName, config: $config, host: $host, jobProgram: $program, tags: $tags}) {
    bucket { id name displayName historyLineCount project { name entity { name } } }
    inserted
  }
}`;

const RUN_RESUME_STATUS = `query RunResumeStatus($project: String, $entity: String, $name: String!) {
  model(name: $project, entityName: $entity) {
    entity { name }
    bucket(name: $name, missingOk: true) { id name summaryMetrics historyLineCount historyTail }
  }
}`;

export class WandbClient {
  private readonly auth: string;

  constructor(
    private readonly baseUrl: string,
    apiKey: string,
    private readonly abort: AbortSignal,
  ) {
    this.auth = `Basic ${Buffer.from(`api:${apiKey}`).toString("base64")}`;
  }

  async upsertRun(run: UpsertRunInput): Promise<UpsertedRun> {
    const config = Object.fromEntries(Object.entries(run.config).map(([k, v]) => [k, { value: v }]));
    const data = await this.graphql<{
      upsertBucket?: {
        bucket?: { historyLineCount?: number; project?: { name?: string; entity?: { name?: string } } };
      };
    }>(UPSERT_BUCKET, {
      name: run.id,
      project: run.project,
      entity: run.entity || null,
      groupName: run.group || null,
      displayName: run.displayName,
      config: JSON.stringify(config),
      host: run.host,
      program: "klear",
      tags: run.tags,
    });
    const bucket = data.upsertBucket?.bucket;
    const entity = bucket?.project?.entity?.name ?? run.entity;
    if (!entity) throw new WandbCallError("UpsertBucket answered without the run's entity", "rejected");
    return {
      entity,
      project: bucket?.project?.name ?? run.project,
      historyLineCount: bucket?.historyLineCount ?? 0,
    };
  }

  async resumeStatus(project: string, entity: string, id: string): Promise<ResumeStatus | null> {
    const data = await this.graphql<{
      model?: {
        bucket?: { summaryMetrics?: string; historyLineCount?: number; historyTail?: string } | null;
      } | null;
    }>(RUN_RESUME_STATUS, { project, entity: entity || null, name: id });
    const bucket = data.model?.bucket;
    if (!bucket) return null;
    const summary = parseObject(bucket.summaryMetrics);
    // historyTail is a JSON array of the last history lines, each itself a JSON string.
    const tail = parseArray(bucket.historyTail)
      .map((line) => (typeof line === "string" ? parseObject(line) : {}))
      .pop();
    const historyLineCount = bucket.historyLineCount ?? 0;
    const lastStep = numberOr(tail?._step, historyLineCount > 0 ? numberOr(summary._step, -1) : -1);
    const runtime = Math.max(numberOr(tail?._runtime, 0), numberOr(summary._runtime, 0));
    return { historyLineCount, lastStep, runtime, summary };
  }

  async fileStream(entity: string, project: string, id: string, body: FileStreamBody): Promise<void> {
    const path = [entity, project, id].map(encodeURIComponent).join("/");
    await this.post(`${this.baseUrl}/files/${path}/file_stream`, body);
  }

  private async graphql<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    const answer = (await this.post(`${this.baseUrl}/graphql`, { query, variables })) as {
      data?: T;
      errors?: { message?: string }[];
    };
    if (answer.errors?.length) {
      const message = answer.errors.map((e) => e.message ?? "?").join("; ");
      const kind = /permission|unauthori[sz]ed|not logged in|api key/i.test(message) ? "auth" : "rejected";
      throw new WandbCallError(`GraphQL: ${message}`, kind);
    }
    return (answer.data ?? {}) as T;
  }

  private async post(url: string, body: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { authorization: this.auth, "content-type": "application/json", "user-agent": "klear" },
        body: JSON.stringify(body),
        signal: AbortSignal.any([this.abort, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
    } catch (e) {
      throw new WandbCallError(`${(e as Error).message}`, "retry");
    }
    const text = await res.text().catch(() => "");
    if (res.status === 401 || res.status === 403) throw new WandbCallError(`HTTP ${res.status}`, "auth");
    if (res.status === 429 || res.status === 408 || res.status >= 500) {
      const after = Number(res.headers.get("retry-after"));
      throw new WandbCallError(`HTTP ${res.status}`, "retry", Number.isFinite(after) ? after * 1000 : 0);
    }
    if (!res.ok) throw new WandbCallError(`HTTP ${res.status}: ${text.slice(0, 200)}`, "rejected");
    try {
      return text === "" ? {} : JSON.parse(text);
    } catch {
      return {};
    }
  }
}

function parseObject(text: unknown): Record<string, unknown> {
  if (typeof text !== "string") return {};
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

function parseArray(text: unknown): unknown[] {
  if (typeof text !== "string") return [];
  try {
    const v = JSON.parse(text);
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}
