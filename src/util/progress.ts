import cliProgress from "cli-progress";

/**
 * A progress display for long work: a live bar with rate and ETA on a terminal, and one plain line
 * every few seconds otherwise (CI logs, pipes), so progress is never silent and never floods a log.
 */
export interface Progress {
  /** Advance by `n` units, optionally updating the extra fields shown (e.g. `{ loss: "2.31" }`). */
  tick(n?: number, fields?: Record<string, string | number>): void;
  /** Set absolute progress. */
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Unit name shown in the rate, e.g. "steps", "samples", "rows". */
  unit?: string;
  /** Force plain-line mode (default: plain when stderr is not a TTY). */
  plain?: boolean;
  /** Suppress all output (tests). */
  silent?: boolean;
  stream?: NodeJS.WriteStream;
}

export function createProgress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const unit = opts.unit ?? "it";
  const stream = opts.stream ?? process.stderr;
  if (opts.silent) return { tick() {}, update() {}, stop() {} };
  const start = Date.now();
  let done = 0;
  let fields: Record<string, string | number> = {};
  const fmtFields = () =>
    Object.entries(fields)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
  if (!(opts.plain ?? !stream.isTTY)) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted} | {extra}`,
        stream,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { rate: "0.0", extra: "" });
    const payload = () => ({
      rate: (done / Math.max(1e-3, (Date.now() - start) / 1000)).toFixed(1),
      extra: fmtFields(),
    });
    return {
      tick(n = 1, f) {
        done += n;
        if (f) fields = { ...fields, ...f };
        bar.update(done, payload());
      },
      update(d, f) {
        done = d;
        if (f) fields = { ...fields, ...f };
        bar.update(done, payload());
      },
      stop() {
        bar.update(done, payload());
        bar.stop();
      },
    };
  }
  let lastPrint = 0;
  const print = (force: boolean) => {
    const now = Date.now();
    if (!force && now - lastPrint < 5000) return;
    lastPrint = now;
    const secs = (now - start) / 1000;
    const rate = done / Math.max(1e-3, secs);
    const eta = rate > 0 ? Math.max(0, (total - done) / rate) : Number.NaN;
    const pct = total > 0 ? ((100 * done) / total).toFixed(0) : "?";
    stream.write(
      `${label} ${done}/${total} ${unit} (${pct}%) ${rate.toFixed(1)} ${unit}/s ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)}s` : "?"} ${fmtFields()}\n`,
    );
  };
  return {
    tick(n = 1, f) {
      done += n;
      if (f) fields = { ...fields, ...f };
      print(done >= total);
    },
    update(d, f) {
      done = d;
      if (f) fields = { ...fields, ...f };
      print(done >= total);
    },
    stop() {
      if (lastPrint === 0 || done < total) print(true);
    },
  };
}
