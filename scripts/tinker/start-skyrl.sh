#!/usr/bin/env bash
# Starts SkyRL's Tinker-compatible API server (JAX backend, CPU) on a local model folder, in the foreground.
# It must run through `uv run` (the API server relaunches its engine by reading its own command line) and
# always with --database-url (the default database file lives inside site-packages). LoRA only: a
# `max_lora_adapters` of N allows N-1 training clients. The API key is not checked.
# Usage: start-skyrl.sh MODEL_DIR PORT STATE_DIR   (STATE_DIR holds the checkpoints and the database; reuse it
# across restarts so saved training state survives). Env: KLEAR_SKYRL_VENV, KLEAR_SKYRL_MAX_ADAPTERS (4),
# KLEAR_SKYRL_MAX_RANK (8), KLEAR_SKYRL_TRAIN_MICRO_BATCH and KLEAR_SKYRL_SAMPLE_MAX_SEQS (unset = the
# server's defaults). JAX compiles once per batch shape (~5-30 s on the CPU): a fixed train micro-batch and
# a sampling batch of one request's samples keep the shapes, and so the compiles, few.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?usage: start-skyrl.sh MODEL_DIR PORT STATE_DIR}
port=${2:?usage: start-skyrl.sh MODEL_DIR PORT STATE_DIR}
state=${3:?usage: start-skyrl.sh MODEL_DIR PORT STATE_DIR}
venv=${KLEAR_SKYRL_VENV:-$PWD/.cache/venv-skyrl}
if [[ ! -x $venv/bin/uv ]]; then echo "start-skyrl: no SkyRL venv at $venv (run scripts/tinker/install-skyrl.sh)" >&2; exit 3; fi
model=$(cd "$model" && pwd)
mkdir -p "$state/checkpoints"
state=$(cd "$state" && pwd)
backend_config=$(printf '{"max_lora_adapters": %d, "max_lora_rank": %d' "${KLEAR_SKYRL_MAX_ADAPTERS:-4}" "${KLEAR_SKYRL_MAX_RANK:-8}")
[[ -n ${KLEAR_SKYRL_TRAIN_MICRO_BATCH:-} ]] && backend_config+=", \"train_micro_batch_size\": $KLEAR_SKYRL_TRAIN_MICRO_BATCH"
[[ -n ${KLEAR_SKYRL_SAMPLE_MAX_SEQS:-} ]] && backend_config+=", \"sample_max_num_sequences\": $KLEAR_SKYRL_SAMPLE_MAX_SEQS"
backend_config+="}"
export JAX_PLATFORMS=cpu HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VIRTUAL_ENV=$venv UV_NO_SYNC=1
export UV_CACHE_DIR=${UV_CACHE_DIR:-$state/uv-cache} XLA_FLAGS=${XLA_FLAGS:---xla_force_host_platform_device_count=1}
exec "$venv/bin/uv" run --no-project --python "$venv/bin/python" -m skyrl.tinker.api \
  --host 127.0.0.1 --port "$port" --base-model "$model" --backend jax --backend-config "$backend_config" \
  --checkpoints-base "$state/checkpoints" --database-url "sqlite:///$state/tinker.db"
