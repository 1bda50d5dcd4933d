#!/usr/bin/env bash
# Produces one vindex_mpi output set per case (the fixtures and command lines the tests use) so that
# two builds can be compared with compare_outputs.py:
#
#   make_outputs.sh BIN_DIR OUT_ROOT [FIXTURES_DIR]
#     BIN_DIR       a build directory (BIN_DIR/src/vindex_mpi) or the directory holding vindex_mpi
#     OUT_ROOT      created; must be absent, empty, or an earlier OUT_ROOT of this script (replaced)
#     FIXTURES_DIR  default: this source tree's tests/fixtures. Use the SAME fixtures for both builds:
#                   they are inputs, and their paths are written into the outputs.
#   Environment: VINDEX_SRC  source tree whose tools/report/vindex_report.py writes the reports
#                            (default: the build's CMAKE_HOME_DIRECTORY, else the fixtures' repo)
#
# Layout of OUT_ROOT (every --out is given relative to OUT_ROOT, so paths in the outputs agree
# between two OUT_ROOTs):
#   <case>/                    a vindex output set (vindex.h5, *.json, vindex-manifest.json[, report/])
#   slices_*/slices/III-of-NNN the slices a merge joined, beside the merged set
#   inspect/<fixture>.json|txt `vindex_mpi inspect --model F [--json] --cores 16 --gpus 8`
#   dry_run/<case>.txt         `--dry-run` stdout
#   _inputs/                   the wider-dtype capture (generated, as the test does)
#   _logs/<case>.stdout|stderr each command's output (stdout is compared normalised, stderr not)
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
bin_dir="$(cd "$1" && pwd)"
if [ -x "$bin_dir/src/vindex_mpi" ]; then
  bin="$bin_dir/src/vindex_mpi"; build="$bin_dir"
elif [ -x "$bin_dir/vindex_mpi" ]; then
  bin="$bin_dir/vindex_mpi"; build="$(dirname "$bin_dir")"
else
  echo "no vindex_mpi in $bin_dir or $bin_dir/src" >&2; exit 2
fi
out_root="$2"
fx="$(cd "${3:-$(dirname "$0")/../../tests/fixtures}" && pwd)"
src="${VINDEX_SRC:-}"
if [ -z "$src" ] && [ -f "$build/CMakeCache.txt" ]; then
  src="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")"
fi
[ -n "$src" ] || src="$(cd "$fx/../.." && pwd)"
report="$src/tools/report/vindex_report.py"
# tests/integration of the fixtures' own tree (the same inputs for both builds), else of the source tree
integ="$fx/../integration"
[ -f "$integ/phase3_reference.py" ] || integ="$src/tests/integration"
integ="$(cd "$integ" && pwd)"

marker=".make_outputs-root"
if [ -e "$out_root" ]; then
  if [ -f "$out_root/$marker" ]; then
    rm -rf "$out_root"
  elif [ -n "$(ls -A "$out_root")" ]; then
    echo "$out_root exists, is not empty and is not an OUT_ROOT of this script: refused" >&2; exit 2
  fi
fi
mkdir -p "$out_root"
out_root="$(cd "$out_root" && pwd)"
touch "$out_root/$marker"
cd "$out_root"
mkdir -p _logs _inputs inspect dry_run

# Python with h5py, numpy and matplotlib (as tools/python_env.sh chooses it)
py=""
for c in python3 /usr/bin/python3; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c "import h5py, numpy, matplotlib" 2>/dev/null; then py="$(command -v "$c")"; break; fi
done
[ -n "$py" ] || { echo "no python3 with h5py, numpy and matplotlib" >&2; exit 2; }

# Open MPI on a small machine, as root (tests/CMakeLists.txt's VINDEX_MPI_ENV)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
       OMPI_MCA_btl_vader_single_copy_mechanism=none PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
mpi=(mpirun --oversubscribe)

t0=$SECONDS
fail() { echo "FAILED: $*" >&2; exit 1; }
# run CASE NP ARGS...: mpirun -n NP vindex_mpi ARGS... --out CASE
run() {
  local name=$1 np=$2; shift 2
  echo "[$((SECONDS - t0))s] $name (np $np): $*" >&2
  "${mpi[@]}" -n "$np" "$bin" "$@" --out "$name" >"_logs/$name.stdout" 2>"_logs/$name.stderr" \
    || fail "$name: exit $? (see $out_root/_logs/$name.stderr)"
}
# merge CASE: vindex_mpi merge (no mpirun, as the tests run it)
merge() {
  local name=$1 model=$2; shift 2
  echo "[$((SECONDS - t0))s] $name: merge" >&2
  "$bin" merge --model "$model" --out "$name" "$@" >"_logs/$name.merge.stdout" 2>"_logs/$name.merge.stderr" \
    || fail "$name merge: exit $?"
}

kimi="$fx/kimi_k2_tiny"
steep="$fx/steep_mixed"
families=(deepseek_v3 qwen2_moe qwen3_moe mixtral olmoe gpt_oss gpt_oss_mxfp4 llama4 llama_dense bert_dense)
for f in "$fx"/hf/*/; do   # a family the list does not name is an error, not a silent gap
  f="$(basename "$f")"
  [[ " ${families[*]} " == *" $f "* ]] || fail "fixture hf/$f is not in this script's list"
done

# --- the demo checkpoint -----------------------------------------------------------------------
run demo_np2_p12_allproj 2 --model "$kimi" --phases 1,2 --projections gate,up,down
# tools/demo.sh exactly (phases 1,2,3 from the committed capture, default projections) + its report
run demo_sh 2 --model "$kimi" --phases 1,2,3 --activations "$fx/capture/kimi_k2_tiny.h5"
"$py" "$report" demo_sh >_logs/demo_sh.report.stdout 2>_logs/demo_sh.report.stderr || fail "report of demo_sh"
# tests/CMakeLists.txt's runs on kimi_k2_tiny and steep_mixed
run demo_np1 1 --model "$kimi" --phases 1,2
run demo_np3 3 --model "$kimi" --phases 1,2
run demo_np2_threads 2 --model "$kimi" --phases 1,2 --threads 2
run demo_config_file 1 --model "$kimi" --config "$integ/demo_job.toml"
run demo_np2_subset 2 --model "$kimi" --layers 0,2-3 --k 8,64,500
run steep_np1 1 --model "$steep" --k 1,16,64
run steep_np2 2 --model "$steep" --k 1,16,64
run steep_np2_fp64 2 --model "$steep" --k 1,16,64 --precision fp64

# --- every Hugging Face family: phases 1,2, all projections (BERT has no gate), 1 rank ----------
for f in "${families[@]}"; do
  proj=down,gate,up
  [ "$f" = bert_dense ] && proj=down,up
  run "hf_$f" 1 --model "$fx/hf/$f" --phases 1,2 --projections "$proj" --k 4,16
done

# --- phase 3 as the check_phase3 tests run it (2 ranks), and the demo model on 1 rank ----------
for m in hf/deepseek_v3 hf/qwen3_moe kimi_k2_tiny; do
  f="$(basename "$m")"
  run "phase3_$f" 2 --model "$fx/$m" --phases 1,2,3 --activations "$fx/capture/$f.h5" --projections down,gate,up --k 4,16
done
run phase3_kimi_k2_tiny_np1 1 --model "$kimi" --phases 1,2,3 --activations "$fx/capture/kimi_k2_tiny.h5" \
    --projections down,gate,up --k 4,16
"$py" "$report" phase3_deepseek_v3 >_logs/phase3_deepseek_v3.report.stdout 2>_logs/phase3_deepseek_v3.report.stderr \
  || fail "report of phase3_deepseek_v3"
# the capture with wider dtypes (written here by the fixtures' tree's phase3_reference.py, as the test does)
"$py" "$integ/phase3_reference.py" --make-wide "$fx/capture/kimi_k2_tiny.h5" _inputs/kimi_k2_tiny_wide.h5 \
  >_logs/make_wide.stdout 2>_logs/make_wide.stderr || fail "make-wide capture"
run phase3_wider_dtypes 2 --model "$kimi" --phases 1,2,3 --activations _inputs/kimi_k2_tiny_wide.h5 \
    --projections down,gate,up --k 4,16

# --- slices and merge (tests/integration/slices_and_merge.py) ----------------------------------
# qwen3_moe: 2 slices of 1 rank each, phases 1,2, all projections, then merge
for i in 0 1; do
  run slices_qwen3_moe 1 --model "$fx/hf/qwen3_moe" --slice "$i/2" --phases 1,2 --projections down,gate,up --k 4,16
  mv _logs/slices_qwen3_moe.stdout "_logs/slices_qwen3_moe.slice$i.stdout"
  mv _logs/slices_qwen3_moe.stderr "_logs/slices_qwen3_moe.slice$i.stderr"
done
merge slices_qwen3_moe "$fx/hf/qwen3_moe"
# kimi_k2_tiny: 2 slices (1 and 2 ranks) with --resume, phases 1,2, all projections, then merge
for i in 0 1; do
  run slices_kimi_k2_tiny $((i + 1)) --model "$kimi" --slice "$i/2" --resume --phases 1,2 --projections gate,up,down
  mv _logs/slices_kimi_k2_tiny.stdout "_logs/slices_kimi_k2_tiny.slice$i.stdout"
  mv _logs/slices_kimi_k2_tiny.stderr "_logs/slices_kimi_k2_tiny.slice$i.stderr"
done
merge slices_kimi_k2_tiny "$kimi"

# --- inspect (JSON and text; fixed --cores/--gpus so the estimates do not depend on this machine) ---
inspect_one() {
  local name=$1 model=$2
  "$bin" inspect --model "$model" --json --cores 16 --gpus 8 >"inspect/$name.json" 2>"_logs/inspect_$name.stderr" \
    || fail "inspect --json $name"
  "$bin" inspect --model "$model" --cores 16 --gpus 8 >"inspect/$name.txt" 2>>"_logs/inspect_$name.stderr" \
    || fail "inspect $name"
}
inspect_one kimi_k2_tiny "$kimi"
inspect_one steep_mixed "$steep"
for f in "${families[@]}"; do inspect_one "hf_$f" "$fx/hf/$f"; done

# --- --dry-run stdout --------------------------------------------------------------------------
"${mpi[@]}" -n 2 "$bin" --model "$kimi" --dry-run --phases 1,2 --projections gate,up,down \
  >dry_run/demo_np2_p12_allproj.txt 2>_logs/dry_run_demo_np2.stderr || fail "dry-run demo np 2"
"$bin" --model "$kimi" --dry-run --phases 1,2 --projections gate,up,down --threads 2 \
  >dry_run/demo_np1_threads2.txt 2>_logs/dry_run_demo_np1.stderr || fail "dry-run demo np 1"
for f in "${families[@]}"; do
  proj=down,gate,up
  [ "$f" = bert_dense ] && proj=down,up
  "$bin" --model "$fx/hf/$f" --dry-run --phases 1,2 --projections "$proj" --k 4,16 --threads 1 \
    >"dry_run/hf_$f.txt" 2>"_logs/dry_run_hf_$f.stderr" || fail "dry-run hf_$f"
done

echo "done in $((SECONDS - t0)) s: $out_root (binary $bin, fixtures $fx)" >&2
