#!/usr/bin/env bash
# The demo: installs what is missing, builds, runs phases 1, 2 and 3 under `mpirun -np 2` on the embedded
# Kimi-K2-shaped checkpoint (tests/fixtures/kimi_k2_tiny), printing the per-layer table, then writes
# the HTML report and prints its path. Output goes to demo-out/ (replaced on each run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/install_deps.sh"
"$root/tools/build.sh" >/dev/null   # without the tests: the demo does not install their dependencies
source "$root/tools/mpi_env.sh"
source "$root/tools/python_env.sh"
build="${VINDEX_BUILD_DIR:-$root/build}"
out="${VINDEX_DEMO_OUT:-$root/demo-out}"
mpirun -np 2 "$build/src/vindex_mpi" --model "$root/tests/fixtures/kimi_k2_tiny" --out "$out" --phases 1,2,3 \
    --activations "$root/tests/fixtures/capture/kimi_k2_tiny.h5" --overwrite
"$VINDEX_PYTHON" "$root/tools/report/vindex_report.py" "$out"
