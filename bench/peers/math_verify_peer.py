"""Peer for bench/verify-math.ts: Math-Verify (PyPI) on the same pairs, the way Klear's judge calls it.

Reads a JSON file [{"gold": str, "response": str}, ...], verifies every pair with
verify(parse("\\boxed{" + gold + "}"), parse(response_after_think)) using Math-Verify's default
extraction configs, repeats the whole pass `--runs` times, and prints one JSON object:
{"verdicts": [bool, ...], "seconds": [run seconds, ...], "version": str}.
Dev-only: the bench runs it with the venv's python.
"""

import argparse
import json
import sys
import time
from importlib.metadata import version

from math_verify import parse, verify


def check(gold: str, response: str) -> bool:
    idx = response.rfind("</think>")
    text = response[idx + len("</think>"):] if idx >= 0 else response
    try:
        g = parse("\\boxed{" + gold + "}", parsing_timeout=5)
        p = parse(text, parsing_timeout=5)
        return bool(verify(g, p, timeout_seconds=5))
    except Exception:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with open(args.pairs, encoding="utf-8") as f:
        pairs = json.load(f)
    # Warm-up: sympy and the ANTLR parser load lazily on first use.
    for p in pairs[:20]:
        check(p["gold"], p["response"])
    seconds = []
    verdicts = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        verdicts = [check(p["gold"], p["response"]) for p in pairs]
        seconds.append(time.perf_counter() - t0)
    json.dump({"verdicts": verdicts, "seconds": seconds, "version": version("math-verify")}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
