"""Dev-only oracle for test/data/parquet-interop.e2e.test.ts: pyarrow (what verl and HF datasets use)
reads a parquet file and prints its rows as JSON lines, or writes JSON lines as parquet the way
`datasets.Dataset.to_parquet` / pandas do (schema inferred by pyarrow, nested lists and structs).

usage: python pyarrow_parquet.py read FILE.parquet
       python pyarrow_parquet.py write FILE.jsonl OUT.parquet
"""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def drop_nulls(v):
    # Parquet has no "absent": pyarrow fills missing struct fields with null, klear drops them.
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


def main():
    if sys.argv[1] == "read":
        table = pq.read_table(sys.argv[2])
        for row in table.to_pylist():
            print(json.dumps(drop_nulls(row), ensure_ascii=False))
    else:
        with open(sys.argv[2], encoding="utf8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        pq.write_table(pa.Table.from_pylist(rows), sys.argv[3])


if __name__ == "__main__":
    main()
