#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (README, "GPU backend"): builds with CUDA, runs the
# CTest tests labelled gpu (the decode kernel bit for bit against the CPU decoder; every fixture
# through --backend cuda against the float64 references and against --backend cpu; input errors
# raised inside the plugin exit 3 naming file and tensor) with VINDEX_REQUIRE_GPU=1, so that a GPU
# the tests cannot use fails them instead of skipping them; then benchmarks Kimi-K2-shaped fp8
# experts (7168 x 2048, 128x128 block scales) through the CUDA backend and the seed's method
# (torch.linalg.svdvals, fp32, batches of 64) in the same run, and prints a table: ms per expert,
# the ratio, and the breakdown (read, H2D, dequant, Gram, eigenvalues).
# Bounded to 5 minutes; results also go to $OUT (or gpu-check-out/) as JSON lines and a table.
#
#   bash tools/gpu_check.sh [EXPERTS]      (default 64 experts for the benchmark)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
experts="${1:-64}"
out="${OUT:-$root/gpu-check-out}"
mkdir -p "$out"
build="${VINDEX_BUILD_DIR:-$root/build}"
deadline=$((SECONDS + 290))
status=0
step() { echo; echo "== $* ($((deadline - SECONDS)) s left)"; }
left() { local l=$((deadline - SECONDS)); [ "$l" -gt 5 ] && echo "$l" || echo 5; }

step "device"
nvidia-smi -L || { echo "gpu_check: no GPU (nvidia-smi failed)"; exit 1; }
nvcc --version | tail -1

step "build (CUDA on; the GPU tests and the benchmark)"
source "$root/tools/mpi_env.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVINDEX_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native \
  -DVINDEX_BUILD_TESTS=ON -DVINDEX_BUILD_BENCH=ON >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
timeout "$(left)" cmake --build "$build" --parallel "$(nproc)" \
  --target vindex_mpi vindex_cuda_plugin vindex_cuda_probe vindex_gpu_checks vindex_bench_gpu \
  >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "built"

python=python3
"$python" -c "import h5py, numpy" 2>/dev/null || python=/usr/bin/python3

step "GPU checks: ctest -L gpu (a skip is a failure here)"
VINDEX_REQUIRE_GPU=1 timeout "$(left)" ctest --test-dir "$build" -L gpu --output-on-failure --no-tests=error \
  | tee "$out/gpu_tests.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step "benchmark fixture: $experts Kimi-K2-shaped fp8 experts"
model="${VINDEX_BENCH_MODEL:-/tmp/vindex-kimi-experts-$experts}"
if [ ! -f "$model/model.safetensors" ]; then
  timeout "$(left)" "$python" "$root/tools/make_large_fixture.py" --out "$model" --experts "$experts" --hidden 7168 \
    --inter 2048 --dtype F8_E4M3 --projections down || { echo "fixture generation failed"; exit 1; }
fi
cat "$model/model.safetensors" > /dev/null  # page cache: the benchmark is steady state from memory

step "benchmark: vindex cuda (GPU alone, then with host helpers) and the seed's method, same run"
helpers=$(( $(nproc) - 1 ))
timeout "$(left)" "$build/vindex_bench_gpu" --model "$model" --matrices "$experts" --helpers "0,$helpers" --repeat 2 \
  | tee "$out/bench.jsonl" || status=1
timeout "$(left)" python3 "$root/tools/bench/seed_method.py" --model "$model" --matrices "$experts" \
  | tee -a "$out/bench.jsonl" || status=1

step "summary"
python3 - "$out/bench.jsonl" <<'PY' | tee "$out/summary.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
seed = next((r for r in rows if r["method"].startswith("seed")), None)
print("| method | ms / expert | vs seed | read | H2D | dequant | Gram | eigen GPU (each) | eigen host (each) | on GPU / host |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    ratio = f"{seed['ms_per_expert'] / r['ms_per_expert']:.1f}x" if seed else "?"
    if r["method"].startswith("seed"):
        print(f"| {r['method']} ({r['device']}, torch {r['torch']}) | {r['ms_per_expert']:.2f} | 1.0x | | | | | | | |")
    else:
        print(f"| {r['method']} | {r['ms_per_expert']:.2f} | {ratio} | {r['read_ms']:.2f} | {r['h2d_ms']:.2f} | "
              f"{r['dequant_ms']:.2f} | {r['gram_ms']:.2f} | {r['eigen_gpu_ms_each']:.2f} | {r['eigen_host_ms_each']:.2f} | "
              f"{r['on_gpu']} / {r['on_host']} |")
print("\nbars: at most 14 ms per expert, at least 14x the seed's method")
PY
echo
[ "$status" = 0 ] && echo "gpu_check: all GPU checks passed" || echo "gpu_check: FAILED (see above)"
exit $status
