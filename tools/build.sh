#!/usr/bin/env bash
# Configures and builds vindex_mpi (Release) into build/ (or $VINDEX_BUILD_DIR).
#   build.sh           the tool only (VINDEX_BUILD_TESTS=OFF): what tools/demo.sh needs; the tests'
#                      dependencies (Catch2, h5py, websocket-client, Chromium) are not required
#   build.sh --tests   with the test suite (VINDEX_BUILD_TESTS=ON): what tools/test.sh needs
# Both set VINDEX_BUILD_TESTS explicitly, so neither inherits the other's setting from the cache of
# a shared build directory; switching only reconfigures, nothing built is rebuilt.
# VINDEX_WERROR=ON turns compiler warnings into errors (CI does; a newer compiler's new warnings
# should not stop a user's build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VINDEX_BUILD_DIR:-$root/build}"
tests=OFF
case "${1:-}" in
  --tests) tests=ON ;;
  "") ;;
  *) echo "usage: build.sh [--tests]" >&2; exit 2 ;;
esac
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVINDEX_BUILD_TESTS="$tests" \
    -DVINDEX_WARNINGS_AS_ERRORS="${VINDEX_WERROR:-OFF}" >/dev/null
cmake --build "$build" --parallel "$(nproc)"
