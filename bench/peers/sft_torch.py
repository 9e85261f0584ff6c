#!/usr/bin/env python3
"""PyTorch CPU peer for bench/sft.ts: HF transformers' Qwen3ForCausalLM + torch AdamW trained on the
same packed batch klear trains on (float32; documents separated by position_ids restarting at 0, which
transformers turns into a block-diagonal causal mask). Prints one JSON object:
{"rates": [tokens/s per timed step], "peakRssMiB": ..., "threads": n, "torch": ..., "transformers": ...}.

Usage: .cache/venv-torch/bin/python bench/peers/sft_torch.py '{"batchFile": ..., "threads": 2, ...}'
(bench/peers/setup-torch.sh creates the venv.)
"""
import json
import resource
import sys
import time

import numpy as np
import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
T = cfg["seqLen"]
raw = np.fromfile(cfg["batchFile"], dtype=np.int32).reshape(3, T)
tokens, targets, positions = (torch.from_numpy(raw[i].astype(np.int64)).unsqueeze(0) for i in range(3))
# HF's loss scores logits[t] against labels[t + 1]; klear's targets[t] is that label.
labels = torch.full_like(targets, -100)
labels[:, 1:] = torch.where(targets[:, :-1] >= 0, targets[:, :-1], torch.full_like(targets[:, :-1], -100))

config = Qwen3Config(
    vocab_size=cfg["vocab"],
    hidden_size=cfg["hidden"],
    intermediate_size=cfg["ffn"],
    num_hidden_layers=cfg["layers"],
    num_attention_heads=cfg["heads"],
    num_key_value_heads=cfg["kvHeads"],
    head_dim=cfg["headDim"],
    tie_word_embeddings=cfg["tie"],
    max_position_embeddings=max(T, 2048),
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    use_cache=False,
    attn_implementation="sdpa",
)
model = Qwen3ForCausalLM(config).float()
model.train()
# fused=True is torch's fastest CPU AdamW (and what transformers' default optimizer picks).
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=True)


def step():
    opt.zero_grad(set_to_none=True)
    out = model(input_ids=tokens, position_ids=positions, labels=labels, use_cache=False)
    out.loss.backward()
    opt.step()
    return float(out.loss.detach())


for _ in range(cfg.get("warmup", 1)):
    step()
rates = []
for _ in range(cfg["runs"]):
    steps = 0
    t0 = time.perf_counter()
    while True:
        step()
        steps += 1
        dt = time.perf_counter() - t0
        if dt >= cfg["minSeconds"]:
            break
    rates.append(T * steps / dt)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    json.dumps(
        {
            "rates": rates,
            "peakRssMiB": peak,
            "threads": cfg["threads"],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
    )
)
