/**
 * The machinery every `klear data` filtering command runs on: one streaming loop over the inputs that sets
 * malformed rows aside, lets the command keep, rewrite or remove each row, and writes the output, its removal
 * and malformed reports and its manifest atomically. The commands themselves are in pipeline.ts.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { atomicWriteJsonSync } from "../util/atomic.js";
import { ConfigError } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import {
  type DataRecord,
  type DataWriter,
  fileSize,
  type MalformedRow,
  openDataWriter,
  openJsonlWriter,
  readDataRows,
  sha256File,
} from "./io.js";
import { checkDataRow, type RowCheckOptions } from "./rows.js";

/** What every `klear data` command records next to its output. */
export interface DataManifest {
  command: string;
  createdAt: string;
  durationSec: number;
  /** CPU seconds (user + system) the process has used so far. */
  cpuSec: number;
  /** Peak resident memory of the process so far (MB), to show the run stayed bounded. */
  peakRssMb: number;
  parameters: Record<string, unknown>;
  inputs: { path: string; sha256: string; bytes: number; rows: number }[];
  output: { path: string; rows: number } | null;
  counts: { read: number; kept: number; malformed: number; removed: Record<string, number> };
  malformed: { byReason: Record<string, number>; examples: MalformedRow[] };
  reports: { removed?: string; malformed?: string };
}

export interface PipelineCommonOptions extends RowCheckOptions {
  /** Suppress the progress display. */
  quiet?: boolean;
}

export type Decision =
  | { keep: true; row?: Record<string, unknown> }
  | { keep: false; rule: string; detail: Record<string, unknown> };

/** Paths of the files written beside an output. */
export function sidecarPaths(output: string) {
  return {
    manifest: `${output}.manifest.json`,
    removed: `${output}.removed.jsonl`,
    malformed: `${output}.malformed.jsonl`,
  };
}

export async function hashInputs(inputs: readonly string[]) {
  const out: { path: string; sha256: string; bytes: number }[] = [];
  for (const p of inputs)
    out.push({ path: resolve(p), sha256: await sha256File(p), bytes: await fileSize(p) });
  return out;
}

export interface Removal {
  file: string;
  line: number;
  rule: string;
  detail: Record<string, unknown>;
}

/**
 * Parquet cannot hold zero rows (it needs a column), so an output that every row left says so once, with
 * the counts and the first row's reason, before anything is written.
 */
function nothingToWrite(
  command: string,
  output: string,
  read: number,
  removed: Record<string, number>,
  first: Removal | undefined,
): ConfigError {
  const counts = Object.entries(removed).map(([k, v]) => `${k} ${v}`);
  const why = first
    ? `; first: ${first.file}:${first.line}: ${first.rule}${first.detail.error ? ` (${first.detail.error})` : ""}`
    : "";
  return new ConfigError(
    `${command}: no rows to write to ${output}: read ${read}, removed ${counts.join(", ") || "0"}${why}`,
    "parquet needs at least one row; fix the rows the reason names, or write --out OUT.jsonl to get the (empty) output and its removal report",
  );
}

/**
 * The one streaming loop behind the filtering commands: read every input, set malformed rows aside
 * (counted by reason, each reported with file and line), let `decide` keep, rewrite or remove each
 * row, and write the output, the removal report, the malformed report and the manifest atomically.
 */
export async function filterRows(
  command: string,
  inputs: readonly string[],
  output: string,
  parameters: Record<string, unknown>,
  opts: PipelineCommonOptions & { batchSize?: number; checkRows?: boolean },
  decide: (recs: DataRecord[]) => Promise<Decision[]>,
): Promise<DataManifest> {
  if (inputs.length === 0)
    throw new ConfigError(`${command}: no input files`, "give one or more jsonl/parquet files");
  const missing = inputs.filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new ConfigError(`${command}: no such input file: ${missing.join(", ")}`, "check the input paths");
  }
  const started = Date.now();
  const hashed = await hashInputs(inputs);
  const totalMb = hashed.reduce((a, h) => a + h.bytes, 0) / 1e6;
  const totalUnits = Math.max(1, Math.ceil(totalMb));
  const progress = createProgress(command, totalUnits, { unit: "MB", silent: opts.quiet });
  const side = sidecarPaths(output);
  const writers: DataWriter[] = [];
  const out = await openDataWriter(output);
  writers.push(out);
  const removedWriter = await openJsonlWriter(side.removed);
  writers.push(removedWriter);
  const malformedWriter = await openJsonlWriter(side.malformed);
  writers.push(malformedWriter);
  const removed: Record<string, number> = {};
  const byReason: Record<string, number> = {};
  const examples: MalformedRow[] = [];
  const perInputRows = new Map<string, number>();
  let read = 0;
  let malformedCount = 0;
  let bytesSeen = 0;
  const pendingMalformed: MalformedRow[] = [];
  let firstRemoval: Removal | undefined;
  let readerRejected = 0;
  const noteMalformed = (m: MalformedRow) => {
    malformedCount++;
    byReason[m.reason] = (byReason[m.reason] ?? 0) + 1;
    if (examples.length < 20) examples.push(m);
    pendingMalformed.push(m);
  };
  try {
    const batchSize = opts.batchSize ?? 256;
    let batch: DataRecord[] = [];
    const flush = async () => {
      for (const m of pendingMalformed.splice(0))
        await malformedWriter.write(m as unknown as Record<string, unknown>);
      if (batch.length === 0) return;
      const decisions = await decide(batch);
      for (let i = 0; i < batch.length; i++) {
        const d = decisions[i];
        const rec = batch[i];
        if (d.keep) {
          await out.write(d.row ?? rec.value, d.row ? undefined : rec.raw);
        } else {
          removed[d.rule] = (removed[d.rule] ?? 0) + 1;
          firstRemoval ??= { file: rec.file, line: rec.line, rule: d.rule, detail: d.detail };
          await removedWriter.write({ file: rec.file, line: rec.line, rule: d.rule, ...d.detail });
        }
      }
      batch = [];
    };
    for (const input of inputs) {
      let rows = 0;
      for await (const rec of readDataRows(input, {
        onMalformed: (m) => {
          readerRejected++;
          rows++;
          noteMalformed(m);
        },
        onBytes: (n) => {
          bytesSeen += n;
          progress.update(Math.min(totalUnits, Math.round(bytesSeen / 1e6)), {
            rows: read,
            removed: Object.values(removed).reduce((a, b) => a + b, 0),
          });
        },
      })) {
        read++;
        rows++;
        if (opts.checkRows !== false) {
          const bad = checkDataRow(rec.value, opts);
          if (bad) {
            noteMalformed({ file: rec.file, line: rec.line, ...bad });
            continue;
          }
        }
        batch.push(rec);
        if (batch.length >= batchSize) await flush();
      }
      perInputRows.set(input, rows);
    }
    await flush();
    progress.update(totalUnits, { rows: read, removed: Object.values(removed).reduce((a, b) => a + b, 0) });
    if (out.rows === 0 && output.endsWith(".parquet"))
      throw nothingToWrite(command, output, read, removed, firstRemoval);
    for (const w of writers) await w.close();
  } catch (e) {
    for (const w of writers) await w.abort();
    throw e;
  } finally {
    progress.stop();
  }
  const manifest: DataManifest = {
    command,
    createdAt: new Date().toISOString(),
    durationSec: (Date.now() - started) / 1000,
    cpuSec: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    parameters,
    inputs: hashed.map((h, i) => ({ ...h, rows: perInputRows.get(inputs[i]) ?? 0 })),
    output: { path: resolve(output), rows: out.rows },
    counts: {
      read: read + readerRejected,
      kept: out.rows,
      malformed: malformedCount,
      removed,
    },
    malformed: { byReason, examples },
    reports: { removed: resolve(side.removed), malformed: resolve(side.malformed) },
  };
  atomicWriteJsonSync(side.manifest, manifest);
  return manifest;
}
