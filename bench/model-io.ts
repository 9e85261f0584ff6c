/**
 * Checkpoint I/O benchmark: loading a 256 MiB-as-float32 safetensors file (float32, bfloat16 and float16 on
 * disk) into float32, klear against HF's Rust-backed `safetensors` Python package (torch for bf16/f16) in the
 * same run, both from the page cache. Rounds alternate klear and the peer so that load from other processes
 * hits both alike; each figure is the median over rounds of per-round medians. The first-load figures time one
 * load in a fresh process on each side (how a checkpoint is really loaded). Run: node --import tsx bench/model-io.ts
 * (KLEAR_NATIVE_ADDON=/nonexistent measures the JS fallback.)
 * The peer comes from .cache/oracle-venv when it has torch + safetensors, else a venv this script creates.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  readSafetensors,
  type SafetensorsWriteDtype,
  setSafetensorsNative,
  writeSafetensors,
} from "../src/model/safetensors.js";

const ROUNDS = 3;
/** Loads per round on each side; each peer round is one Python process. */
const RUNS = 3;
const ELEMENTS = 64 * 1024 * 1024;
const MIB = (ELEMENTS * 4) / 2 ** 20;

function peerPython(): string {
  const oracle = ".cache/oracle-venv/bin/python";
  if (existsSync(oracle)) {
    try {
      execFileSync(oracle, ["-c", "import torch, safetensors"], { stdio: "ignore" });
      return oracle;
    } catch {
      // fall through to our own venv
    }
  }
  const own = ".cache/model-io-venv/bin/python";
  if (!existsSync(own)) {
    execFileSync("/usr/bin/python3", ["-m", "venv", ".cache/model-io-venv"], { stdio: "inherit" });
  }
  execFileSync(".cache/model-io-venv/bin/pip", ["install", "-q", "safetensors", "numpy"], {
    stdio: "inherit",
  });
  return own;
}

const collectGarbage = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const python = peerPython();
  const dir = mkdtempSync(join(tmpdir(), "klear-bench-model-io-"));
  try {
    // Eight tensors, like a layer's worth of projections, with varied values.
    const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
    const per = ELEMENTS / 8;
    for (let k = 0; k < 8; k++) {
      const data = new Float32Array(per);
      for (let i = 0; i < per; i++) data[i] = Math.sin(i * 0.001 + k) * 0.05;
      tensors.set(`model.layers.${k}.mlp.up_proj.weight`, { data, shape: [per / 1024, 1024] });
    }
    const native = setSafetensorsNative(true);
    console.log(`klear conversions: ${native ? "native addon" : "JS fallback (addon not built)"}`);
    for (const dtype of ["float32", "bfloat16", "float16"] as SafetensorsWriteDtype[]) {
      const path = join(dir, `${dtype}.safetensors`);
      await writeSafetensors(path, tensors, { dtype });
      await readSafetensors(path); // warm the page cache for both sides
      const klear: number[] = [];
      const peer: number[] = [];
      let backend = "";
      for (let round = 0; round < ROUNDS; round++) {
        const times: number[] = [];
        for (let r = 0; r < RUNS; r++) {
          const t = performance.now();
          const loaded = await readSafetensors(path);
          times.push((performance.now() - t) / 1000);
          if (loaded.size !== 8) throw new Error("bench: wrong tensor count");
          // The peer frees each load (`del out`) outside its timing; do the same, or the unmapping of the last
          // load's garbage lands inside the next timed load and stalls its page faults.
          collectGarbage();
        }
        klear.push(median(times));
        const peerOut = execFileSync(python, ["bench/peers/safetensors_peer.py", path, String(RUNS)], {
          encoding: "utf8",
        });
        const result = JSON.parse(peerOut.trim().split("\n").pop()!) as { seconds: number; backend: string };
        peer.push(result.seconds);
        backend = result.backend;
      }
      const k = MIB / median(klear);
      const p = MIB / median(peer);
      console.log(
        `${dtype}: klear ${median(klear).toFixed(3)} s, peer (safetensors+${backend}) ${median(peer).toFixed(3)} s (median of ${ROUNDS} alternating rounds, each the median of ${RUNS} loads)`,
      );
      console.log(
        `RESULT safetensors-load-${dtype} klear=${k.toFixed(0)} peer=${p.toFixed(0)} unit=MiB_f32/s ratio=${(k / p).toFixed(2)}`,
      );
      // The loop above flatters the peer: its process recycles the memory of the previous load, while every
      // klear load gets fresh pages from the kernel. A checkpoint is loaded once per process, so also time
      // the first load of a fresh process on both sides.
      const klearFirst: number[] = [];
      const peerFirst: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const out = execFileSync(
          process.execPath,
          ["--import", "tsx", "bench/model-io.ts", "--load-once", path],
          {
            encoding: "utf8",
          },
        );
        klearFirst.push(Number(out.trim().split("\n").pop()));
        const peerOut = execFileSync(python, ["bench/peers/safetensors_peer.py", path, "1"], {
          encoding: "utf8",
        });
        peerFirst.push((JSON.parse(peerOut.trim().split("\n").pop()!) as { seconds: number }).seconds);
      }
      const kf = MIB / median(klearFirst);
      const pf = MIB / median(peerFirst);
      console.log(
        `RESULT safetensors-first-load-${dtype} klear=${kf.toFixed(0)} peer=${pf.toFixed(0)} unit=MiB_f32/s ratio=${(kf / pf).toFixed(2)}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--load-once") {
  // Child mode for the first-load figure: one load in this fresh process, its seconds on the last line.
  setSafetensorsNative(true); // loads the addon outside the timing, as the peer imports torch before it
  const t = performance.now();
  await readSafetensors(process.argv[3]);
  console.log((performance.now() - t) / 1000);
} else await main();
