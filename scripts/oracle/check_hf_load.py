#!/usr/bin/env python3
"""Dev-only: shows that HF transformers opens klear checkpoints unchanged.

For each case it has klear save a random tiny Qwen3 (scripts/oracle/hf_check_save.ts), then loads the folder with
AutoModelForCausalLM / AutoTokenizer / GenerationConfig.from_pretrained and prints the max |logit difference|
against klear's own logits, whether the tokenizer gives klear's ids, and whether apply_chat_template renders
klear's prompt. Exits non-zero if any check fails.

Run (torch + transformers in a venv; the oracle venv has both):
  .cache/oracle-venv/bin/python scripts/oracle/check_hf_load.py [tokenizer dir for a BPE case]
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOLERANCE = {"float32": 1e-4, "bfloat16": 1e-3, "float16": 1e-3}


def run_case(name, dtype, tied, shard, rope="default", tokenizer_dir=None):
    with tempfile.TemporaryDirectory() as out:
        cmd = ["node", "--import", "tsx", "scripts/oracle/hf_check_save.ts", out, dtype, "1" if tied else "0", str(shard),
               rope]
        if tokenizer_dir:
            cmd.append(tokenizer_dir)
        subprocess.run(cmd, cwd=ROOT, check=True)
        ckpt = os.path.join(out, "checkpoint")
        meta = json.load(open(os.path.join(out, "klear.json")))
        ids = meta["ids"]
        klear = np.fromfile(os.path.join(out, "klear_logits.f32"), dtype=np.float32).reshape(len(ids), meta["vocab"])

        # Loaded in float32 whatever the stored dtype, as klear computes in float32.
        model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            hf = model(torch.tensor([ids])).logits[0].numpy()
        diff = float(np.abs(hf - klear).max())
        tok = AutoTokenizer.from_pretrained(ckpt)
        hf_ids = tok(meta["prompt"], add_special_tokens=False)["input_ids"]
        rendered = tok.apply_chat_template(meta["messages"], tokenize=False, add_generation_prompt=True,
                                           enable_thinking=False)
        gen = GenerationConfig.from_pretrained(ckpt)
        ok_logits = diff <= TOLERANCE[dtype]
        ok_ids = hf_ids == ids
        ok_chat = rendered == meta["prompt"]
        rope_type = (getattr(model.config, "rope_parameters", None) or {}).get("rope_type", "default")
        print(f"{name}: architecture={type(model).__name__} params={sum(p.numel() for p in model.parameters())} "
              f"tied={model.config.tie_word_embeddings} rope={rope_type} max|logit diff|={diff:.3e} (tol {TOLERANCE[dtype]:g}) "
              f"tokenizer_ids_equal={ok_ids} chat_template_equal={ok_chat} eos={gen.eos_token_id}")
        return ok_logits and ok_ids and ok_chat


def main():
    cases = [
        ("f32-untied", "float32", False, 0),
        ("f32-tied", "float32", True, 0),
        ("bf16-untied", "bfloat16", False, 0),
        ("f16-tied-sharded", "float16", True, 60_000),
        ("f32-yarn", "float32", False, 0, "yarn"),
    ]
    if len(sys.argv) > 1:
        cases.append(("f32-qwen3-bpe-tokenizer", "float32", True, 0, "default", sys.argv[1]))
    results = [run_case(*c) for c in cases]
    print("ALL OK" if all(results) else "SOME CHECKS FAILED")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
