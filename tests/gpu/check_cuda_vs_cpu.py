#!/usr/bin/env python3
"""GPU check (CTest test gpu_cuda_matches_cpu, label gpu; skipped where no GPU is visible): every
fixture through `--backend cuda` (with no, default and 4 host helpers) and `--backend cpu`; the CUDA
outputs must meet the accuracy bars against the fixtures' float64 references (check_outputs.py
reference) and agree with the CPU backend on every matrix: singular values within 1e-4 x sigma_max,
var@k within 1e-6.

  check_cuda_vs_cpu.py --probe vindex_cuda_probe [--mpiexec mpirun] --binary B --fixtures tests/fixtures
                       --checker tests/integration/check_outputs.py --work DIR
"""
import argparse
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, finish  # noqa: E402
from gpu_gate import require_gpu  # noqa: E402


def run(mpiexec, binary, model, out, *extra):
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    p = subprocess.run([mpiexec, "--oversubscribe", "-np", "1", binary, "--model", model, "--out", out, "--overwrite",
                        *extra], capture_output=True, text=True, env=env, timeout=300)
    check(p.returncode == 0, f"{out}: exit {p.returncode}: {p.stderr[-1500:]}")
    return p.returncode == 0


def compare(a, b, label, sv_bar=1e-4, var_bar=1e-6):
    worst_sv = worst_var = 0.0
    with h5py.File(os.path.join(a, "vindex.h5")) as fa, h5py.File(os.path.join(b, "vindex.h5")) as fb:
        groups = []
        fa.visit(lambda n: groups.append(n) if n.endswith("proj") else None)
        for g in groups:
            sa, sb = fa[g]["singular_values"][...].astype(np.float64), fb[g]["singular_values"][...].astype(np.float64)
            va, vb = fa[g]["var_at_k"][...], fb[g]["var_at_k"][...]
            scale = np.maximum(sb[:, :1], 1e-30)
            worst_sv = max(worst_sv, float(np.max(np.abs(sa - sb) / scale)))
            worst_var = max(worst_var, float(np.max(np.abs(va - vb))))
    print(f"{label}: max |sigma_cuda - sigma_cpu| / sigma_max = {worst_sv:.2e}, max |var@k| difference = {worst_var:.2e}")
    check(worst_sv <= sv_bar and worst_var <= var_bar, f"{label}: CUDA and CPU disagree beyond the bars")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True, help="vindex_cuda_probe: skip (77) where no GPU is visible")
    ap.add_argument("--mpiexec", default="mpirun")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--checker", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    require_gpu(args.probe)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    for fixture, ks in (("kimi_k2_tiny", "64"), ("steep_mixed", "1,16,64")):
        model = os.path.join(args.fixtures, fixture)
        cpu = os.path.join(args.work, f"{fixture}-cpu")
        run(args.mpiexec, args.binary, model, cpu, "--backend", "cpu", "--k", ks)
        for label, extra in (("cuda", []), ("cuda-no-helpers", ["--host-helpers", "0"]),
                             ("cuda-4-helpers", ["--host-helpers", "4", "--threads", "5"])):
            out = os.path.join(args.work, f"{fixture}-{label}")
            if not run(args.mpiexec, args.binary, model, out, "--backend", "cuda", "--k", ks, *extra):
                continue
            ref = subprocess.run([sys.executable, args.checker, "reference", out, model], capture_output=True, text=True)
            print(ref.stdout.strip().splitlines()[-1] if ref.stdout.strip() else ref.stderr[-300:])
            check(ref.returncode == 0, f"{fixture} {label}: against the float64 reference:\n{ref.stdout}{ref.stderr}")
            compare(out, cpu, f"{fixture} {label} vs cpu")
    return finish("cuda vs cpu")


if __name__ == "__main__":
    sys.exit(main())
