"""Peer for bench/data.ts: MinHash LSH near-duplicate removal with datasketch over the same jsonl.

Same work as klear's side: read each row, normalise the prompt (NFKC, lower case, non-alphanumerics
to spaces), 3-word shingles, a 128-permutation MinHash, query the LSH index, confirm a candidate by
its estimated Jaccard, insert the row when it is not a duplicate. Prints one JSON line with the
seconds of each run and the rows removed.

usage: python data_minhash.py CORPUS.jsonl THRESHOLD NUM_PERM SHINGLE BANDS ROWS RUNS
"""

import json
import re
import sys
import time
import unicodedata

from datasketch import MinHash, MinHashLSH

NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def words_of(text):
    folded = NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    return folded.split(" ") if folded else []


def prompt_of(row):
    if isinstance(row.get("problem"), str):
        return row["problem"]
    for m in row.get("messages", []):
        if m.get("role") == "user":
            return m.get("content", "")
    return ""


def run(path, threshold, num_perm, k, bands, rows):
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, rows))
    stored = {}
    removed = 0
    n = 0
    with open(path, "rb") as f:
        for line in f:
            row = json.loads(line)
            words = words_of(prompt_of(row))
            if len(words) >= k:
                shingles = [" ".join(words[i : i + k]).encode("utf8") for i in range(len(words) - k + 1)]
            else:
                shingles = [" ".join(words).encode("utf8")]
            m = MinHash(num_perm=num_perm)
            m.update_batch(shingles)
            dup = False
            for key in lsh.query(m):
                if m.jaccard(stored[key]) >= threshold:
                    dup = True
                    break
            if dup:
                removed += 1
            else:
                stored[n] = m
                lsh.insert(n, m)
            n += 1
    return n, removed


def main():
    path = sys.argv[1]
    threshold = float(sys.argv[2])
    num_perm, k, bands, rows, runs = (int(x) for x in sys.argv[3:8])
    times = []
    total = removed = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        total, removed = run(path, threshold, num_perm, k, bands, rows)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"rows": total, "removed": removed, "seconds": times}))


if __name__ == "__main__":
    main()
