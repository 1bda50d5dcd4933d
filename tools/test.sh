#!/usr/bin/env bash
# The test suite: installs what is missing, builds, and runs every test with CTest (unit, MPI under
# mpiexec -n 1/2/3, bad inputs, kill-and-resume, slices and merge, a real local Slurm, memory bound,
# inspect, report in headless Chromium), then the fuzzers for a bounded time (VINDEX_FUZZ_SECONDS
# per target, default 30; 0 skips them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/install_deps.sh" --tests
"$root/tools/build.sh" --tests
source "$root/tools/mpi_env.sh"
build="${VINDEX_BUILD_DIR:-$root/build}"
# --no-tests=error: a build directory configured without the tests must fail, not pass with 0 tests.
ctest --test-dir "$build" --output-on-failure --parallel "$(nproc)" --no-tests=error
fuzz_seconds="${VINDEX_FUZZ_SECONDS:-30}"
if [ "$fuzz_seconds" != 0 ]; then
  "$root/tools/fuzz.sh" "$fuzz_seconds"
fi
