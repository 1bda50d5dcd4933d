#!/usr/bin/env bash
# The test suite: installs what is missing, builds, and runs every test (unit, MPI under
# mpiexec -n 1/2/3, bad inputs, memory bound, inspect, report in headless Chromium) with CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/install_deps.sh" --tests
"$root/tools/build.sh"
source "$root/tools/mpi_env.sh"
build="${VINDEX_BUILD_DIR:-$root/build}"
ctest --test-dir "$build" --output-on-failure --parallel "$(nproc)"
