/**
 * A stand-in for the W&B server (W&B is a hosted service this machine cannot reach, so tests can only
 * check the protocol against a fake): the GraphQL `UpsertBucket` / `RunResumeStatus` calls and
 * `files/{entity}/{project}/{run}/file_stream` as the wandb SDK uses them, with history lines written at
 * their offset (as the real server does), plus fault injection (`failNext`, `hang`).
 */

import { readdirSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

export interface FakeRequest {
  path: string;
  authorization: string;
  body: Record<string, unknown>;
}

export interface FakeRun {
  id: string;
  entity: string;
  project: string;
  displayName: string;
  group: string | null;
  tags: string[];
  config: Record<string, { value: unknown }>;
  history: string[];
  summary: Record<string, unknown>;
  complete: boolean;
  exitcode: number | null;
  upserts: number;
}

export class FakeWandb {
  readonly requests: FakeRequest[] = [];
  readonly runs = new Map<string, FakeRun>();
  /** Statuses answered to the next requests (any path), e.g. [500, 429]. */
  failNext: number[] = [];
  /** Never answer (a server that hangs). */
  hang = false;
  /** Answer every request with this status (e.g. 401). */
  always: number | null = null;
  private server: Server | null = null;
  url = "";

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void readBody(req).then((text) => {
        const body = text ? JSON.parse(text) : {};
        this.requests.push({ path: req.url ?? "", authorization: req.headers.authorization ?? "", body });
        if (this.hang) return;
        const fail = this.always ?? this.failNext.shift();
        if (fail !== undefined && fail !== null) {
          res.writeHead(fail, fail === 429 ? { "retry-after": "0" } : {});
          res.end(JSON.stringify({ error: "injected" }));
          return;
        }
        const answer = req.url === "/graphql" ? this.graphql(body) : this.fileStream(req.url ?? "", body);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((done) => this.server?.listen(0, "127.0.0.1", done));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((done) => this.server?.close(() => done()));
  }

  /** History rows of a run as objects, in line order. */
  rows(id: string): Record<string, unknown>[] {
    return (this.runs.get(id)?.history ?? []).map((l) => JSON.parse(l));
  }

  private graphql(body: { query?: string; variables?: Record<string, unknown> }) {
    const v = body.variables ?? {};
    if (body.query?.includes("upsertBucket")) {
      const id = String(v.name);
      const run: FakeRun = this.runs.get(id) ?? {
        id,
        entity: (v.entity as string | null) ?? "fake-user",
        project: String(v.project),
        displayName: "",
        group: null,
        tags: [],
        config: {},
        history: [],
        summary: {},
        complete: false,
        exitcode: null,
        upserts: 0,
      };
      run.displayName = String(v.displayName ?? "");
      run.group = (v.groupName as string | null) ?? null;
      run.tags = (v.tags as string[]) ?? [];
      run.config = JSON.parse(String(v.config ?? "{}"));
      run.complete = false;
      run.upserts++;
      this.runs.set(id, run);
      return {
        data: {
          upsertBucket: {
            bucket: {
              id: `storage-${id}`,
              name: id,
              displayName: run.displayName,
              historyLineCount: run.history.length,
              project: { name: run.project, entity: { name: run.entity } },
            },
            inserted: run.upserts === 1,
          },
        },
      };
    }
    if (body.query?.includes("RunResumeStatus")) {
      const run = this.runs.get(String(v.name));
      return {
        data: {
          model: {
            entity: { name: run?.entity ?? "fake-user" },
            bucket: run
              ? {
                  id: `storage-${run.id}`,
                  name: run.id,
                  summaryMetrics: JSON.stringify(run.summary),
                  historyLineCount: run.history.length,
                  historyTail: JSON.stringify(run.history.slice(-10)),
                }
              : null,
          },
        },
      };
    }
    return { errors: [{ message: "unknown query" }] };
  }

  private fileStream(url: string, body: Record<string, unknown>) {
    const m = /^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/.exec(url);
    const run = m ? this.runs.get(decodeURIComponent(m[3])) : undefined;
    if (!run) return { error: "no such run" };
    const files = (body.files ?? {}) as Record<string, { offset: number; content: string[] }>;
    const history = files["wandb-history.jsonl"];
    if (history) {
      if (history.offset > run.history.length) throw new Error(`history gap at ${history.offset}`);
      run.history.splice(history.offset, history.content.length, ...history.content);
    }
    const summary = files["wandb-summary.json"];
    if (summary) run.summary = JSON.parse(summary.content[summary.content.length - 1]);
    if (body.complete === true) {
      run.complete = true;
      run.exitcode = body.exitcode as number;
    }
    return { exitcode: null, limits: {} };
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => done(Buffer.concat(chunks).toString("utf8")));
  });
}

/** Every file under `dir` (to check that no file holds the API key). */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}
