#!/usr/bin/env bash
# Configures and builds vindex_mpi (Release) into build/ (or $VINDEX_BUILD_DIR).
# VINDEX_WERROR=ON turns compiler warnings into errors (CI does; a newer compiler's new warnings
# should not stop a user's build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VINDEX_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVINDEX_WARNINGS_AS_ERRORS="${VINDEX_WERROR:-OFF}" >/dev/null
cmake --build "$build" --parallel "$(nproc)"
