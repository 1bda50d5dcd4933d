#!/usr/bin/env bash
# Made tests/fixtures/capture/smollm2_135m.h5, the phase-3 capture of the real model (run by hand; CI
# only reads the committed file): the first 20 prompts of tools/capture/prompts.txt, at most 12
# tokens each, through transformers' own GGUF loader on the CPU in float32, mlp_input stored as
# float16 so that the file stays under 8 MB.
#
#   make_smollm2_capture.sh PYTHON [OUT.h5]
# PYTHON: an interpreter with torch, transformers, accelerate, gguf and h5py (made with transformers
# 5.24.0, torch 2.15.0, gguf 0.19.0). The GGUF comes from fetch_smollm2.sh's cache.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${1:?usage: make_smollm2_capture.sh PYTHON [OUT.h5]}"
out="${2:-$root/tests/fixtures/capture/smollm2_135m.h5}"
cache="${VINDEX_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vindex_mpi}"
gguf="$("$root/tools/real_model/fetch_smollm2.sh" "$cache" "$python" | tail -1)"
prompts="$(mktemp)"
trap 'rm -f "$prompts"' EXIT
head -n 20 "$root/tools/capture/prompts.txt" > "$prompts"
"$python" "$root/tools/capture/capture.py" --model "$gguf" --out "$out" --prompts "$prompts" \
  --max-tokens-per-prompt 12 --storage float16 --model-name SmolLM2-135M-Instruct.Q4_1
