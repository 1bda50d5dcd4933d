#!/usr/bin/env python3
"""CPU benchmark of issue "phase 1": one Kimi-K2-shaped expert (7168 x 2048, fp8 e4m3 with 128x128
block scales) through dequantization + spectrum on one core, side by side in the same run with
numpy.linalg.svd(compute_uv=False) on the same dequantized matrix, pinned to the same core. With
--rss it also runs vindex_mpi on a 774 MiB single-shard checkpoint under /usr/bin/time -v.

  python3 tools/bench/run_cpu_bench.py --build build [--core 0] [--repeat 3] [--rss]

Needs numpy and ml_dtypes (pip install numpy ml_dtypes) for the fixture and the numpy side.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TENSOR = "model.layers.1.mlp.experts.0.down_proj.weight"

NUMPY_SIDE = r"""
import json, struct, sys, time
import numpy as np, ml_dtypes
path, tensor, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
def load(name):
    info = head[name]; b, e = info["data_offsets"]
    dtype = ml_dtypes.float8_e4m3fn if info["dtype"] == "F8_E4M3" else np.float32
    return np.frombuffer(raw[8 + n + b:8 + n + e], dtype=dtype).reshape(info["shape"])
q, s = load(tensor), load(tensor + "_scale_inv")
rows, cols = q.shape
scale = np.repeat(np.repeat(s, 128, axis=0)[:rows], 128, axis=1)[:, :cols]
w = q.astype(np.float32) * scale   # the same float32 dequantization as vindex_mpi
np.linalg.svd(w, compute_uv=False)  # warm-up
times = []
for _ in range(repeat):
    t = time.perf_counter(); sv = np.linalg.svd(w, compute_uv=False); times.append(time.perf_counter() - t)
gram = []
for _ in range(repeat):  # the best simple alternative: eigenvalues of the float32 Gram matrix
    t = time.perf_counter(); ev = np.linalg.eigvalsh(w.T @ w); gram.append(time.perf_counter() - t)
print(json.dumps({"seconds": sorted(times), "sigma_max": float(sv[0]), "numpy": np.__version__,
                  "eigvalsh_seconds": sorted(gram), "eigvalsh_sigma_max": float(np.sqrt(ev[-1]))}))
"""


def pinned(core, cmd, env=None):
    return subprocess.run(["taskset", "-c", str(core)] + cmd, capture_output=True, text=True, check=True,
                          env=env).stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "vindex-bench"))
    p.add_argument("--rss", action="store_true", help="also measure peak RSS on a large-shard checkpoint")
    a = p.parse_args()

    fixture = os.path.join(a.work, "kimi_expert")
    if not os.path.exists(os.path.join(fixture, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_large_fixture.py"), "--out", fixture,
                        "--experts", "1", "--hidden", "7168", "--inter", "2048", "--dtype", "F8_E4M3",
                        "--projections", "down"], check=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ours = [json.loads(l) for l in pinned(a.core, [os.path.join(a.build, "vindex_bench_cpu"), "--model", fixture,
                                                   "--tensor", TENSOR, "--repeat", str(a.repeat)], env).splitlines()]
    theirs = json.loads(pinned(a.core, [sys.executable, "-c", NUMPY_SIDE, os.path.join(fixture, "model.safetensors"),
                                        TENSOR, str(a.repeat)], env))

    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    print(f"# {time.strftime('%Y-%m-%d')}  {cpu.group(1) if cpu else platform.processor()}  core {a.core}, "
          f"1 thread; numpy {theirs['numpy']}; best of {a.repeat} after a warm-up")
    for r in ours:
        if r["stage"] == "dequantize":
            print(f"# vindex's BLAS: {r['blas']}, kernels '{r['blas_kernels']}'"
                  f" (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    numpy_s = theirs["seconds"][0]
    eig_s = theirs["eigvalsh_seconds"][0]
    print("| method | seconds | vs numpy svd | vs numpy eigvalsh(W.T @ W) |\n| --- | --- | --- | --- |")
    print(f"| numpy.linalg.svd(compute_uv=False), float64 LAPACK | {numpy_s:.3f} | 1.0x | {eig_s / numpy_s:.2f}x |")
    print(f"| numpy.linalg.eigvalsh(W.T @ W), float32 | {eig_s:.3f} | {numpy_s / eig_s:.1f}x | 1.0x |")
    for r in ours:
        if r["stage"] == "dequantize":
            print(f"| vindex dequantization alone ({r['dtype']} {r['rows']}x{r['cols']}) | {r['seconds'][0]:.3f} | - | - |")
        else:
            label = f"vindex --precision {r['precision']} (Gram fp{r['gram_bits']}, eigen fp{r['eigen_bits']})"
            print(f"| {label} | {r['seconds'][0]:.3f} | {numpy_s / r['seconds'][0]:.1f}x | "
                  f"{eig_s / r['seconds'][0]:.2f}x |")
            if abs(r["sigma_max"] - theirs["sigma_max"]) > 1e-4 * theirs["sigma_max"]:
                sys.exit(f"sigma_max disagrees: {r['sigma_max']} vs numpy {theirs['sigma_max']}")

    if a.rss:
        big = os.path.join(a.work, "large_shard")
        if not os.path.exists(os.path.join(big, "model.safetensors")):
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_large_fixture.py"), "--out", big],
                           check=True)
        out = os.path.join(a.work, "large_out")
        subprocess.run(["rm", "-rf", out], check=True)
        t = subprocess.run(["/usr/bin/time", "-v", os.path.join(a.build, "src", "vindex_mpi"), "--model", big,
                            "--out", out, "--threads", "1"], capture_output=True, text=True, check=True)
        peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t.stderr)
        size = os.path.getsize(os.path.join(big, "model.safetensors"))
        print(f"\nPeak RSS of one rank over a {size / 2**20:.0f} MiB shard (129 down_proj matrices of 4096x256 F16 "
              f"read): {int(peak.group(1)) / 1024:.1f} MiB (/usr/bin/time -v)")


if __name__ == "__main__":
    main()
