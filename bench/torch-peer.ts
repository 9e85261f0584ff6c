/**
 * The PyTorch peer's interpreter for the benchmarks: PyPI torch 2.15 + transformers 5.25 in a venv that
 * bench/peers/setup-torch.sh creates (idempotently) under .cache/. Also the machine's load, printed
 * beside every measurement because the benchmark machine is shared.
 */
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";

let python: string | null = null;

/** Path of the venv's python, installing the peer on first use. */
export function torchPython(): string {
  if (python) return python;
  const script = join(import.meta.dirname, "peers", "setup-torch.sh");
  python = execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  return python;
}

/** Runs a peer script with one JSON argument and returns the JSON object it prints last. */
export function runTorchPeer<T>(script: string, config: unknown, env: NodeJS.ProcessEnv = {}): T {
  const out = execFileSync(
    torchPython(),
    [join(import.meta.dirname, "peers", script), JSON.stringify(config)],
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, ...env },
      maxBuffer: 1 << 24,
    },
  );
  return JSON.parse(out.trim().split("\n").pop() as string) as T;
}

export function loadLine(): string {
  return `load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
