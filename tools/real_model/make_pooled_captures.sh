#!/usr/bin/env bash
# Made tests/fixtures/capture/{minilm_pooled,smollm2_pooled}.h5, the pooled captures of the two real
# models over the same prompts for the cross-model CKA tests (run by hand; CI only reads the committed
# files): the first 48 prompts of tools/capture/prompts.txt through transformers on the CPU in float32
# -- all-MiniLM-L6-v2 as an encoder (AutoModel), SmolLM2-135M-Instruct from its GGUF -- stored as
# float32 (MiniLM, 1 MB) and float16 (SmolLM2, 3.4 MB).
#
#   make_pooled_captures.sh PYTHON [OUT_DIR]
# PYTHON: an interpreter with torch, transformers, gguf and h5py (made with transformers 5.24.0,
# torch 2.15.0, gguf 0.19.0). The models come from fetch_minilm.sh's and fetch_smollm2.sh's cache.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${1:?usage: make_pooled_captures.sh PYTHON [OUT_DIR]}"
out="${2:-$root/tests/fixtures/capture}"
cache="${VINDEX_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vindex_mpi}"
minilm="$("$root/tools/real_model/fetch_minilm.sh" "$cache" "$python" | tail -1)"
gguf="$("$root/tools/real_model/fetch_smollm2.sh" "$cache" "$python" | tail -1)"
common=(--pooled --prompts "$root/tools/capture/prompts.txt" --max-prompts 48)
"$python" "$root/tools/capture/capture.py" "${common[@]}" --model "$minilm" --out "$out/minilm_pooled.h5" \
  --storage float32 --model-name all-MiniLM-L6-v2
"$python" "$root/tools/capture/capture.py" "${common[@]}" --model "$gguf" --out "$out/smollm2_pooled.h5" \
  --storage float16 --model-name SmolLM2-135M-Instruct.Q4_1
