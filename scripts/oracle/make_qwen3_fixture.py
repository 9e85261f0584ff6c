#!/usr/bin/env python3
"""Dev-only: builds the Qwen3 oracle fixtures in fixtures/oracle/ with PyTorch + HF transformers.

Each case is a tiny random Qwen3ForCausalLM (weights rounded to float32, then evaluated in float64 so
the expected values carry no float32 noise of their own). It stores the weights, a right-padded batch,
and what klear must reproduce: logits, per-position log-probs and entropies of the targets, the loss
  L = -sum(mask * logp) / count + ENTROPY_COEF * sum(mask * entropy) / count
and the gradient of L for every parameter.

Run (needs torch, transformers, safetensors; a venv keeps them out of the system):
  /usr/bin/python3 -m venv .cache/oracle-venv
  .cache/oracle-venv/bin/pip install torch transformers safetensors
  .cache/oracle-venv/bin/python scripts/oracle/make_qwen3_fixture.py
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import Qwen3Config, Qwen3ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "oracle")
ENTROPY_COEF = 0.3

CASES = {
    # GQA with an explicit head_dim different from hidden/heads, untied head, plain RoPE.
    "gqa-untied": dict(
        config=dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
                    rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False),
        batch=2, seq=12, lengths=[12, 7], seed=1,
    ),
    # Tied embeddings, YaRN scaling past the original context (sequence 24 > 16), Qwen3's rope_theta.
    "tied-yarn": dict(
        config=dict(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                    rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=16)),
        batch=2, seq=24, lengths=[24, 19], seed=2,
    ),
}


def make_case(name, spec):
    torch.manual_seed(spec["seed"])
    cfg_kwargs = dict(spec["config"])
    rope_scaling = cfg_kwargs.pop("rope_scaling", None)
    cfg = Qwen3Config(**cfg_kwargs, attention_bias=False, use_sliding_window=False)
    if rope_scaling is not None:
        params = dict(rope_scaling)
        params["rope_theta"] = cfg_kwargs["rope_theta"]
        cfg.rope_parameters = params
    cfg._attn_implementation = "eager"
    model = Qwen3ForCausalLM(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                # Norm weights away from 1 so a missing norm weight would show in the comparison.
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * 0.2)
    model = model.double()
    model.eval()

    B, T, V = spec["batch"], spec["seq"], cfg.vocab_size
    lengths = torch.tensor(spec["lengths"])
    ids = torch.randint(0, V, (B, T))
    mask_pos = torch.arange(T)[None, :] < lengths[:, None]
    ids = torch.where(mask_pos, ids, torch.zeros_like(ids))
    targets = torch.full((B, T), -1, dtype=torch.long)
    targets[:, :-1] = ids[:, 1:]
    loss_mask = (torch.arange(T)[None, :] < (lengths[:, None] - 1))
    targets = torch.where(loss_mask, targets, torch.full_like(targets, -1))
    # One masked target inside a sequence, as an assistant-only SFT mask would make.
    targets[0, 2] = -1
    loss_mask = targets >= 0

    out = model(input_ids=ids, attention_mask=mask_pos.long())
    logits = out.logits
    logsm = torch.log_softmax(logits, dim=-1)
    logp = torch.gather(logsm, -1, targets.clamp(min=0)[..., None])[..., 0]
    entropy = -(logsm.exp() * logsm).sum(-1)
    m = loss_mask.double()
    count = m.sum()
    loss = -(logp * m).sum() / count + ENTROPY_COEF * (entropy * m).sum() / count
    loss.backward()

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    weights = {n: p.detach().float().contiguous() for n, p in model.named_parameters()}
    if cfg.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    save_file(weights, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    expected = {
        "logits": (logits.detach() * mask_pos[..., None]).float().contiguous(),
        "logp": (logp.detach() * m).float().contiguous(),
        "entropy": (entropy.detach() * m).float().contiguous(),
    }
    for n, p in model.named_parameters():
        if cfg.tie_word_embeddings and n == "lm_head.weight":
            continue
        expected[f"grad.{n}"] = p.grad.detach().float().contiguous()
    save_file(expected, os.path.join(d, "expected.safetensors"))
    config_json = cfg.to_dict()
    config_json["architectures"] = ["Qwen3ForCausalLM"]
    # transformers >= 5 writes rope_theta and the scaling inside rope_parameters; klear reads both formats.
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config_json, f, indent=1, sort_keys=True, default=str)
    meta = {
        "batchSize": B,
        "seqLen": T,
        "lengths": lengths.tolist(),
        "tokens": ids.flatten().tolist(),
        "targets": targets.flatten().tolist(),
        "entropyCoef": ENTROPY_COEF,
        "lossTokens": int(count.item()),
        "loss": loss.item(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: loss {loss.item():.6f}, {len(weights)} tensors -> {d}")


if __name__ == "__main__":
    torch.set_default_dtype(torch.float32)
    for name, spec in CASES.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        make_case(name, spec)
