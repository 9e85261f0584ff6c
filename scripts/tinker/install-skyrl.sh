#!/usr/bin/env bash
# Installs SkyRL's Tinker-compatible training server (PyPI `skyrl`, JAX backend on the CPU) into its own venv
# (default .cache/venv-skyrl) for `npm run test:tinker`. SkyRL needs Python >= 3.12; it imports aiohttp without
# declaring it. The venv is ~6 GB because the package pulls PyTorch with its CUDA libraries even on the JAX path.
# Idempotent: a finished install leaves a stamp and the script returns at once.
# Env: KLEAR_SKYRL_VENV (folder), KLEAR_SKYRL_PYTHON (interpreter, Python >= 3.12).
set -euo pipefail
cd "$(dirname "$0")/../.."
SKYRL_VERSION=0.4.0
UV_VERSION=0.13.8
venv=${KLEAR_SKYRL_VENV:-$PWD/.cache/venv-skyrl}
stamp="$venv/.klear-skyrl-$SKYRL_VERSION"
if [[ -f $stamp ]]; then echo "skyrl $SKYRL_VERSION already installed in $venv"; exit 0; fi

python=${KLEAR_SKYRL_PYTHON:-}
if [[ -z $python ]]; then
  candidates=(python3.12 python3.13 python3)
  if command -v pyenv >/dev/null; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9]' | sort -rV); do
      candidates=("$(pyenv root)/versions/$v/bin/python3" "${candidates[@]}")
    done
  fi
  for candidate in "${candidates[@]}"; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 12))' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
if [[ -z $python ]]; then echo "install-skyrl: no Python >= 3.12 found (install one with pyenv, or set KLEAR_SKYRL_PYTHON)" >&2; exit 3; fi

start=$(date +%s)
echo "installing skyrl $SKYRL_VERSION into $venv with $($python --version)"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip --disable-pip-version-check --no-input -q install "uv==$UV_VERSION"
VIRTUAL_ENV="$venv" "$venv/bin/uv" pip install --python "$venv/bin/python" -q "skyrl[tinker,jax]==$SKYRL_VERSION" aiohttp
"$venv/bin/python" -c 'import skyrl.tinker.api, importlib.metadata as md; print("skyrl", md.version("skyrl"), "tinker", md.version("tinker"))'
touch "$stamp"
echo "install-skyrl: done in $(($(date +%s) - start)) s"
