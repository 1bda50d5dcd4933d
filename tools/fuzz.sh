#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz: clang, ASan + UBSan) into build-fuzz/ and runs each for
# a bounded time, seeded from the fixtures. Exit non-zero on any crash, sanitizer report or
# unexpected exception; the input that caused it is kept in build-fuzz/artifacts/.
#   tools/fuzz.sh [SECONDS_PER_TARGET]     (default 30; CI runs tools/test.sh, which runs 30)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-30}"
build="${VINDEX_FUZZ_BUILD_DIR:-$root/build-fuzz}"
cxx="${VINDEX_FUZZ_CXX:-$(command -v clang++ || true)}"
if [ -z "$cxx" ]; then
  echo "fuzz: clang++ not found (tools/install_deps.sh --tests installs clang)" >&2
  exit 1
fi
cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --parallel "$(nproc)" >"$build/build.log" 2>&1 \
  || { echo "fuzz: building the fuzzers failed ($build/build.log):" >&2; tail -30 "$build/build.log" >&2; exit 1; }

# Seeds: every fixture shard's header (as [8-byte data size][JSON], the second reading of the
# header target), a small complete file, the fixtures' index, and the GGUF fixtures (whole files).
seeds="$build/seeds"
rm -rf "$seeds"
mkdir -p "$seeds/fuzz_safetensors_header" "$seeds/fuzz_safetensors_index" "$seeds/fuzz_gguf_header"
python3 - "$root/tests/fixtures" "$seeds" <<'PY'
import glob, json, os, struct, sys
fixtures, seeds = sys.argv[1], sys.argv[2]
for i, path in enumerate(sorted(glob.glob(os.path.join(fixtures, "*", "*.safetensors")))):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = f.read(n)
        data_size = os.path.getsize(path) - 8 - n
    open(os.path.join(seeds, "fuzz_safetensors_header", f"header{i}"), "wb").write(struct.pack("<Q", data_size) + header)
small = json.dumps({"__metadata__": {"format": "pt"},
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [8, 12]}}).encode()
open(os.path.join(seeds, "fuzz_safetensors_header", "small_file"), "wb").write(struct.pack("<Q", len(small)) + small + bytes(12))
for i, path in enumerate(sorted(glob.glob(os.path.join(fixtures, "*", "model.safetensors.index.json")))):
    open(os.path.join(seeds, "fuzz_safetensors_index", f"index{i}"), "wb").write(open(path, "rb").read())
for path in sorted(glob.glob(os.path.join(fixtures, "gguf", "*.gguf"))):
    open(os.path.join(seeds, "fuzz_gguf_header", os.path.basename(path)), "wb").write(open(path, "rb").read())
PY

mkdir -p "$build/artifacts"
status=0
for target in fuzz_safetensors_header fuzz_safetensors_index fuzz_gguf_header; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  log="$build/$target.log"
  if "$build/$target" -max_total_time="$seconds" -max_len=131072 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$target-" "$corpus" "$seeds/$target" >"$log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)"
    echo "fuzz: $target: $runs inputs in ${seconds} s, ${cov:-cov ?}, corpus $(ls "$corpus" | wc -l) files: no crash"
  else
    echo "fuzz: $target FAILED (log $log, artifacts in $build/artifacts):" >&2
    tail -30 "$log" >&2
    status=1
  fi
done
exit $status
