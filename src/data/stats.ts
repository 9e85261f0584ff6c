import { rowPromptText, rowResponseText, rowSource } from "./rows.js";
import { approxTokenCount } from "./text.js";

/**
 * Bounded-memory length distribution: exact count/mean/min/max and a log-scale histogram (8 buckets
 * per doubling, so quantiles are within ~9%) instead of every length.
 */
export class LengthHistogram {
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;
  readonly buckets = new Map<number, number>();

  static bucketOf(x: number): number {
    return x <= 0 ? -1 : Math.floor(Math.log2(x) * 8);
  }

  static bucketUpper(b: number): number {
    return b < 0 ? 0 : Math.ceil(2 ** ((b + 1) / 8));
  }

  add(x: number): void {
    this.count++;
    this.sum += x;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    const b = LengthHistogram.bucketOf(x);
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** Upper edge of the bucket holding quantile `q` (clamped to the observed max). */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const target = q * this.count;
    let seen = 0;
    for (const b of [...this.buckets.keys()].sort((a, c) => a - c)) {
      seen += this.buckets.get(b) ?? 0;
      if (seen >= target) return Math.min(this.max, LengthHistogram.bucketUpper(b));
    }
    return this.max;
  }

  /** Counts in power-of-two ranges [2^i, 2^(i+1)), for display. */
  octaves(): { from: number; to: number; count: number }[] {
    const per = new Map<number, number>();
    for (const [b, c] of this.buckets) {
      const o = b < 0 ? -1 : Math.floor(b / 8);
      per.set(o, (per.get(o) ?? 0) + c);
    }
    return [...per]
      .sort((a, b) => a[0] - b[0])
      .map(([o, count]) => ({ from: o < 0 ? 0 : 2 ** o, to: o < 0 ? 1 : 2 ** (o + 1), count }));
  }

  toJSON() {
    return {
      count: this.count,
      mean: Math.round(this.mean * 10) / 10,
      min: this.count ? this.min : 0,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      max: this.max,
    };
  }
}

export interface SourceStats {
  rows: number;
  promptTokens: LengthHistogram;
  responseTokens: LengthHistogram;
  difficulty: Map<string, number>;
}

/** Dataset statistics: rows per source, token-length distributions and the difficulty histogram. */
export class DataStatsAccumulator {
  readonly perSource = new Map<string, SourceStats>();
  readonly all: SourceStats = DataStatsAccumulator.empty();
  constructor(
    private readonly countTokens: (text: string) => number = approxTokenCount,
    private readonly sourceField?: string,
  ) {}

  private static empty(): SourceStats {
    return {
      rows: 0,
      promptTokens: new LengthHistogram(),
      responseTokens: new LengthHistogram(),
      difficulty: new Map(),
    };
  }

  add(row: Record<string, unknown>): void {
    const source = rowSource(row, this.sourceField);
    let s = this.perSource.get(source);
    if (!s) this.perSource.set(source, (s = DataStatsAccumulator.empty()));
    const prompt = rowPromptText(row);
    const response = rowResponseText(row);
    const extra = row.extra_info as Record<string, unknown> | undefined;
    const difficulty = row.difficulty ?? extra?.difficulty;
    for (const t of [s, this.all]) {
      t.rows++;
      if (prompt !== null) t.promptTokens.add(this.countTokens(prompt));
      if (response !== undefined) t.responseTokens.add(this.countTokens(response));
      if (typeof difficulty === "string")
        t.difficulty.set(difficulty, (t.difficulty.get(difficulty) ?? 0) + 1);
    }
  }

  toJSON() {
    const one = (s: SourceStats) => ({
      rows: s.rows,
      promptTokens: s.promptTokens.toJSON(),
      responseTokens: s.responseTokens.toJSON(),
      difficulty: Object.fromEntries(s.difficulty),
    });
    return {
      total: one(this.all),
      sources: Object.fromEntries(
        [...this.perSource].sort((a, b) => b[1].rows - a[1].rows).map(([k, v]) => [k, one(v)]),
      ),
    };
  }
}

function bar(frac: number, width = 30): string {
  const n = Math.round(frac * width);
  return "█".repeat(n) + "·".repeat(width - n);
}

/** A plain-text report for the terminal. */
export function formatStatsText(stats: DataStatsAccumulator, tokenUnit = "tokens"): string {
  const lines: string[] = [];
  const total = stats.all.rows;
  lines.push(`rows: ${total}`);
  lines.push("", "per source:");
  const width = Math.max(6, ...[...stats.perSource.keys()].map((k) => k.length));
  lines.push(
    `  ${"source".padEnd(width)}  ${"rows".padStart(9)}  ${"share".padStart(6)}  prompt p50/p90 ${tokenUnit}  response p50/p90 ${tokenUnit}`,
  );
  for (const [src, s] of [...stats.perSource].sort((a, b) => b[1].rows - a[1].rows)) {
    const p = s.promptTokens;
    const r = s.responseTokens;
    lines.push(
      `  ${src.padEnd(width)}  ${String(s.rows).padStart(9)}  ${((100 * s.rows) / Math.max(1, total)).toFixed(1).padStart(5)}%  ${`${p.quantile(0.5)}/${p.quantile(0.9)}`.padStart(14)}  ${r.count ? `${r.quantile(0.5)}/${r.quantile(0.9)}` : "-"}`,
    );
  }
  for (const [name, h] of [
    ["prompt", stats.all.promptTokens],
    ["response", stats.all.responseTokens],
  ] as const) {
    if (h.count === 0) continue;
    const j = h.toJSON();
    lines.push(
      "",
      `${name} length (${tokenUnit}): mean ${j.mean} min ${j.min} p50 ${j.p50} p90 ${j.p90} p99 ${j.p99} max ${j.max}`,
    );
    const oct = h.octaves();
    const peak = Math.max(...oct.map((o) => o.count));
    for (const o of oct)
      lines.push(`  ${`${o.from}-${o.to - 1}`.padStart(13)} ${bar(o.count / peak)} ${o.count}`);
  }
  if (stats.all.difficulty.size > 0) {
    lines.push("", "difficulty:");
    const peak = Math.max(...stats.all.difficulty.values());
    for (const tag of [
      "easy",
      "medium",
      "hard",
      ...[...stats.all.difficulty.keys()].filter((k) => !["easy", "medium", "hard"].includes(k)),
    ]) {
      const c = stats.all.difficulty.get(tag);
      if (c !== undefined)
        lines.push(`  ${tag.padStart(8)} ${bar(c / peak)} ${c} (${((100 * c) / total).toFixed(1)}%)`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function svgBars(items: { label: string; count: number }[], title: string): string {
  const w = 640;
  const rowH = 20;
  const labelW = 150;
  const peak = Math.max(1, ...items.map((i) => i.count));
  const h = items.length * rowH + 30;
  const bars = items
    .map((it, k) => {
      const y = 24 + k * rowH;
      const bw = Math.max(1, ((w - labelW - 80) * it.count) / peak);
      return `<text x="${labelW - 6}" y="${y + 13}" text-anchor="end">${esc(it.label)}</text><rect x="${labelW}" y="${y}" width="${bw.toFixed(1)}" height="${rowH - 4}" fill="#4a7bd0"><title>${esc(it.label)}: ${it.count}</title></rect><text x="${labelW + bw + 6}" y="${y + 13}">${it.count}</text>`;
    })
    .join("");
  return `<figure><svg role="img" aria-label="${esc(title)}" width="${w}" height="${h}" font-family="sans-serif" font-size="12"><text x="0" y="14" font-weight="bold">${esc(title)}</text>${bars}</svg></figure>`;
}

/** A self-contained HTML page (inline SVG, no scripts, opens offline). */
export function formatStatsHtml(
  stats: DataStatsAccumulator,
  title = "klear data stats",
  tokenUnit = "tokens",
): string {
  const j = stats.toJSON();
  const rows = Object.entries(j.sources)
    .map(
      ([src, s]) =>
        `<tr><td>${esc(src)}</td><td>${s.rows}</td><td>${((100 * s.rows) / Math.max(1, j.total.rows)).toFixed(1)}%</td><td>${s.promptTokens.p50}</td><td>${s.promptTokens.p90}</td><td>${s.responseTokens.count ? s.responseTokens.p50 : "-"}</td><td>${s.responseTokens.count ? s.responseTokens.p90 : "-"}</td><td>${esc(
          Object.entries(s.difficulty)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ") || "-",
        )}</td></tr>`,
    )
    .join("\n");
  const figs: string[] = [];
  figs.push(
    svgBars(
      Object.entries(j.sources).map(([k, s]) => ({ label: k, count: s.rows })),
      "rows per source",
    ),
  );
  for (const [name, h] of [
    ["prompt", stats.all.promptTokens],
    ["response", stats.all.responseTokens],
  ] as const) {
    if (h.count === 0) continue;
    figs.push(
      svgBars(
        h.octaves().map((o) => ({ label: `${o.from}–${o.to - 1}`, count: o.count })),
        `${name} length (${tokenUnit})`,
      ),
    );
  }
  if (stats.all.difficulty.size > 0) {
    figs.push(
      svgBars(
        [...stats.all.difficulty].map(([label, count]) => ({ label, count })),
        "difficulty",
      ),
    );
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:960px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h1>${esc(title)}</h1>
<p id="total">${j.total.rows} rows in ${Object.keys(j.sources).length} sources</p>
<table id="sources"><thead><tr><th>source</th><th>rows</th><th>share</th><th>prompt p50</th><th>prompt p90</th><th>response p50</th><th>response p90</th><th>difficulty</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${figs.join("\n")}
<script type="application/json" id="stats-data">${JSON.stringify(j).replace(/</g, "\\u003c")}</script>
</body></html>
`;
}
