import { parseArgs } from "node:util";
import { type MathPair, verifyMathBatch } from "../../rewards/math/index.js";
import { atomicWriteFile } from "../../util/atomic.js";
import { ConfigError, KlearError } from "../../util/errors.js";
import { readJsonl } from "../../util/jsonl.js";
import { createProgress } from "../../util/progress.js";

export const summary = "score model outputs you already have: gold vs response, Math-Verify semantics";

const USAGE = `usage: klear verify math --in FILE.jsonl --out FILE.jsonl [options]

Reads one JSON object per line with a gold answer and a model response, and writes every line back
(all fields kept) with "correct", "extracted_gold" and "extracted_pred" added, plus "error" when a
check failed or ran out of time. The output is written atomically; malformed input lines are reported
with their line numbers and left out of the output.

options:
  --in FILE              input JSONL (required)
  --out FILE             output JSONL (required; may not be the input file)
  --gold-field NAME      field holding the gold answer (default: gold)
  --response-field NAME  field holding the model response (default: response)
  --timeout-ms N         time budget per check (default: 1000)
  --workers N            worker threads (default: available cores, at most 8; 0 = this thread)
  --float-rounding N     decimals compared when a side holds a decimal literal (default: 6)
  --keep-think           read the whole response, not only the text after </think>
  --quiet                no progress output`;

function intFlag(v: string | undefined, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new ConfigError(
      `--${flag} must be an integer ≥ ${min}, got "${v}"`,
      `e.g. --${flag}=${Math.max(min, 1)}`,
    );
  }
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      in: { type: "string", short: "i" },
      out: { type: "string", short: "o" },
      "gold-field": { type: "string" },
      "response-field": { type: "string" },
      "timeout-ms": { type: "string" },
      workers: { type: "string" },
      "float-rounding": { type: "string" },
      "keep-think": { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.in) throw new ConfigError("klear verify math: no input file", "pass --in FILE.jsonl");
  if (!values.out) throw new ConfigError("klear verify math: no output file", "pass --out FILE.jsonl");
  if (values.in === values.out) {
    throw new ConfigError(
      "klear verify math: --out is the same file as --in",
      "write to a new file, e.g. --out scored.jsonl",
    );
  }
  const goldField = values["gold-field"] ?? "gold";
  const responseField = values["response-field"] ?? "response";
  const timeoutMs = intFlag(values["timeout-ms"], "timeout-ms", 1) ?? 1000;
  const workers = intFlag(values.workers, "workers", 0);
  const floatRounding = intFlag(values["float-rounding"], "float-rounding", 0);

  const rows: Record<string, unknown>[] = [];
  const pairs: MathPair[] = [];
  const pairRow: number[] = [];
  const missing = new Map<number, string>();
  let malformed = 0;
  for await (const line of readJsonl(values.in)) {
    if (!line.ok) {
      malformed++;
      console.error(
        `klear verify math: ${values.in}:${line.line}: not valid JSON (${line.error}); line skipped`,
      );
      continue;
    }
    const v = line.value;
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      malformed++;
      console.error(`klear verify math: ${values.in}:${line.line}: expected a JSON object; line skipped`);
      continue;
    }
    const row = v as Record<string, unknown>;
    const idx = rows.push(row) - 1;
    const gold = row[goldField];
    const response = row[responseField];
    if ((typeof gold !== "string" && typeof gold !== "number") || typeof response !== "string") {
      const which = typeof response !== "string" ? responseField : goldField;
      missing.set(idx, `line ${line.line}: no string "${which}" field`);
      continue;
    }
    pairRow.push(idx);
    pairs.push({
      gold: String(gold),
      response,
      opts: { floatRounding, stripThink: !values["keep-think"] },
    });
  }
  if (rows.length === 0 && malformed > 0) {
    throw new KlearError(
      "JSONL_MALFORMED",
      `${values.in}: no readable lines (${malformed} malformed)`,
      "each line must be one JSON object with gold and response fields",
    );
  }

  const progress = createProgress("verify math", pairs.length, { unit: "checks", silent: values.quiet });
  let correct = 0;
  const results = await verifyMathBatch(pairs, {
    timeoutMs,
    workers,
    onResult: (_i, r) => {
      if (r.correct) correct++;
      progress.tick(1, { correct });
    },
  });
  progress.stop();

  let timedOut = 0;
  let errors = 0;
  const out: Record<string, unknown>[] = rows.map((r) => ({ ...r }));
  for (const [j, r] of results.entries()) {
    const row = out[pairRow[j]];
    row.correct = r.correct;
    row.extracted_gold = r.extractedGold;
    row.extracted_pred = r.extractedPred;
    if (r.timedOut) {
      timedOut++;
      row.error = `timed out after ${timeoutMs} ms`;
    } else if (r.error) {
      errors++;
      row.error = r.error;
    }
  }
  for (const [idx, why] of missing) {
    Object.assign(out[idx], { correct: false, extracted_gold: null, extracted_pred: null, error: why });
    errors++;
  }
  await atomicWriteFile(values.out, out.map((r) => `${JSON.stringify(r)}\n`).join(""));
  const acc = pairs.length ? ((100 * correct) / pairs.length).toFixed(1) : "0.0";
  console.error(
    `klear verify math: ${rows.length} rows, ${correct} correct (${acc}%), ${timedOut} timed out, ${errors} errors, ${malformed} malformed lines skipped → ${values.out}`,
  );
  return malformed > 0 || missing.size > 0 ? 1 : 0;
}
