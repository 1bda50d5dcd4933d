#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages vindex_mpi builds and tests with (Debian 12, Ubuntu 24.04),
# skipping what is already installed. Needs root or sudo.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libopenblas-dev liblapacke-dev
  catch2
  python3 python3-numpy python3-h5py
)

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
