#!/usr/bin/env bash
# The PyTorch peer of bench:engine and bench:sft: the PyTorch a user installs today (PyPI torch 2.15.0
# with its MKL / oneDNN CPU kernels, transformers 5.25.0), in a venv under .cache/ (git-ignored).
# Idempotent: does nothing when the venv already has exactly these versions. Prints the python path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${KLEAR_TORCH_VENV:-$ROOT/.cache/venv-torch}"
TORCH_VERSION=2.15.0
TRANSFORMERS_VERSION=5.25.0
PY="$VENV/bin/python"

ready() {
  [ -x "$PY" ] && "$PY" - "$TORCH_VERSION" "$TRANSFORMERS_VERSION" >/dev/null 2>&1 <<'PYEOF'
import sys, torch, transformers, safetensors, numpy
assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
assert transformers.__version__ == sys.argv[2], transformers.__version__
PYEOF
}

if ! ready; then
  echo "setup-torch: installing torch $TORCH_VERSION + transformers $TRANSFORMERS_VERSION into $VENV" >&2
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check \
    "torch==$TORCH_VERSION" "transformers==$TRANSFORMERS_VERSION" safetensors numpy >&2
  ready || { echo "setup-torch: the venv at $VENV still lacks torch $TORCH_VERSION / transformers $TRANSFORMERS_VERSION" >&2; exit 1; }
fi
echo "$PY"
