#!/usr/bin/env python3
"""Dev-only: builds fixtures/model/hf-tiny-qwen3/, a checkpoint folder written by HF transformers itself.

A tiny random Qwen3ForCausalLM (tied embeddings, bfloat16, save_pretrained with a small max_shard_size so it is
sharded with an index) and klear's byte tokenizer as AutoTokenizer re-saves it (tokenizer_config.json plus
chat_template.jinja, as transformers >= 4.43 writes). expected.json holds the prompt the chat template renders, its
ids, and transformers' float32 logits at the last positions: what klear must reproduce after loadModel.

Run: .cache/oracle-venv/bin/python scripts/oracle/make_hf_checkpoint_fixture.py
"""
import json
import os
import shutil
import subprocess
import tempfile

import torch
import transformers
from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "fixtures", "model", "hf-tiny-qwen3")
LAST_POSITIONS = 3

DUMP_BYTE_TOKENIZER = """
import { writeFileSync } from "node:fs";
import { SIMPLE_CHAT_TEMPLATE } from "ROOT/src/model/chat.ts";
import { ByteTokenizer } from "ROOT/src/model/tokenizer.ts";
const files = new ByteTokenizer().toFiles();
const dir = process.argv[2];
writeFileSync(`${dir}/tokenizer.json`, JSON.stringify(files.tokenizerJson));
writeFileSync(`${dir}/tokenizer_config.json`, JSON.stringify({ ...files.tokenizerConfig, chat_template: SIMPLE_CHAT_TEMPLATE }));
"""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "dump_byte_tokenizer.mts")
        with open(script, "w") as f:
            f.write(DUMP_BYTE_TOKENIZER.replace("ROOT", os.path.realpath(ROOT)))
        subprocess.run(["node", "--import", "tsx", script, tmp], cwd=ROOT, check=True)
        tok = AutoTokenizer.from_pretrained(tmp)

    cfg = Qwen3Config(vocab_size=272, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, initializer_range=0.2,
                      attention_bias=False, use_sliding_window=False,
                      bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    # HF initialises norms at 1; perturb them so a norm loaded in the wrong place changes the logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT, max_shard_size="20KB")
    tok.save_pretrained(OUT)

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 6×7? 🤔"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    # Reload the saved folder in float32 rather than upcasting `model`: .to(bfloat16) also rounded the RoPE
    # inv_freq buffer, which a fresh load recomputes in float32 (as klear does).
    reloaded = Qwen3ForCausalLM.from_pretrained(OUT, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = reloaded(torch.tensor([ids])).logits[0]
    expected = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "messages": messages,
        "prompt": prompt,
        "ids": ids,
        "last_positions": LAST_POSITIONS,
        "logits": [[float(f"{v:.7g}") for v in row] for row in logits[-LAST_POSITIONS:].tolist()],
    }
    with open(os.path.join(ROOT, "fixtures", "model", "hf-tiny-qwen3.expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False)
    print(sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
