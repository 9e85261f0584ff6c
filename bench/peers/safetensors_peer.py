"""Peer for bench/model-io.ts: HF's Rust-backed `safetensors` (with torch for bf16 → float32) loading the same file.

Prints one JSON line: the median seconds over RUNS loads of every tensor converted to float32.
Usage: <venv>/bin/python bench/peers/safetensors_peer.py <file> <runs>
"""
import json
import statistics
import sys
import time

path, runs = sys.argv[1], int(sys.argv[2])
try:
    import torch
    from safetensors.torch import load_file

    # load_file maps the file lazily and .float() of a float32 tensor is a no-op, so clone() to materialise
    # owned float32 memory, as klear's reader returns.
    def load():
        return {k: (v.clone() if v.dtype == torch.float32 else v.float()) for k, v in load_file(path).items()}
    backend = "torch"
except ImportError:
    import numpy as np
    from safetensors.numpy import load_file

    def load():
        return {k: v.astype(np.float32, copy=True) for k, v in load_file(path).items()}
    backend = "numpy"

times = []
for _ in range(runs):
    t = time.perf_counter()
    out = load()
    times.append(time.perf_counter() - t)
    del out
print(json.dumps({"seconds": statistics.median(times), "backend": backend}))
