#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages vindex_mpi builds, runs and reports with (Debian 12, Ubuntu
# 24.04), skipping what is already installed. Needs root or sudo.
#   install_deps.sh          build, run, report (matplotlib): what tools/demo.sh needs
#   install_deps.sh --tests  also what the tests need (tools/test.sh): Catch2, headless Chromium and
#                            its DevTools client, Slurm and munge (a local single-node Slurm), clang
#                            (the fuzzers), xxhash for Python, strace and iproute2 (the failure and
#                            multi-host tests), python3-venv and ca-certificates (the venv that
#                            fetches the real model and gguf from PyPI: tools/real_model),
#                            python3-jsonschema (the output schema's test)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libopenblas-dev liblapacke-dev
  python3 python3-numpy python3-h5py python3-matplotlib
)
if [ "${1:-}" = "--tests" ]; then
  # libclang-rt-dev: the sanitizer and libFuzzer runtimes, only recommended by clang (and
  # --no-install-recommends below): without it the fuzzers do not link.
  packages+=(catch2 python3-websocket python3-xxhash strace iproute2 slurm-wlm munge clang libclang-rt-dev
             python3-venv ca-certificates python3-jsonschema)
  # Ubuntu's chromium package is a stub that installs a snap, which containers cannot run; there,
  # point VINDEX_CHROMIUM at a Chromium or Chrome binary instead (README, "Tests").
  if ! grep -q '^ID=ubuntu' /etc/os-release 2>/dev/null; then
    packages+=(chromium)
  elif [ -z "${VINDEX_CHROMIUM:-}" ]; then
    echo "install_deps: Ubuntu: not installing the chromium snap stub; set VINDEX_CHROMIUM for the browser test" >&2
  fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
