"""Dev-only check: TensorBoard's own reader loads klear's event files and sees every scalar of metrics.jsonl.

    .cache/venv-torch/bin/pip install tensorboard
    .cache/venv-torch/bin/python scripts/oracle/check_tensorboard_events.py RUN_DIR [RUN_DIR ...]

Prints one line per run and exits non-zero on any difference. klear never needs Python at run time; this
only confirms, with an independent reader, that `tensorboard --logdir RUN` shows what klear logged.
"""

import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def expected(run_dir):
    # The last record per (tag, step) wins, as TensorBoard keeps the last value written after a restart.
    out = {}
    with open(f"{run_dir}/metrics.jsonl") as f:
        lines = f.read().split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    continue  # torn by a crash mid-write, as klear's reader treats it
                raise
            phase = f"{rec['phase']}/" if isinstance(rec.get("phase"), str) else ""
            for key, value in rec.items():
                if key in ("step", "phase") or isinstance(value, str) or value is None:
                    continue
                if isinstance(value, bool):
                    value = 1.0 if value else 0.0
                if isinstance(value, (int, float)) and math.isfinite(value):
                    out.setdefault(phase + key, {})[rec["step"]] = float(value)
    return out


def main(dirs):
    bad = 0
    for run_dir in dirs:
        acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
        acc.Reload()
        want = expected(run_dir)
        tags = set(acc.Tags()["scalars"])
        missing = sorted(set(want) - tags)
        diffs = 0
        for tag, by_step in want.items():
            if tag not in tags:
                continue
            got = {e.step: e.value for e in acc.Scalars(tag)}
            for step, value in by_step.items():
                if step not in got or abs(got[step] - value) > 1e-6 * max(1.0, abs(value)):
                    diffs += 1
        ok = not missing and diffs == 0
        bad += 0 if ok else 1
        print(f"{'ok ' if ok else 'BAD'} {run_dir}: {len(tags)} tags, {sum(len(v) for v in want.values())} points, "
              f"missing {missing[:5]}, {diffs} differing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
