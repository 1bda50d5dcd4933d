#!/usr/bin/env python3
"""The BLAS kernels fit the CPU, under mpiexec (README, "Performance"):
  - with OPENBLAS_CORETYPE unset, the run's BLAS runs kernels for the CPU's widest vector unit
    (OpenBLAS 0.3.21 does not recognise newer CPUs and falls back to its SSE3 "Prescott" kernels;
    vindex_mpi then restarts itself with OPENBLAS_CORETYPE set), and no warning is printed;
  - OPENBLAS_CORETYPE=Prescott set by the user is honoured, with a warning saying what it costs,
    and gives the same spectra to float rounding;
  - fitting kernels chosen by the user give neither a warning nor a note.
The kernels are read back from provenance (`backend_detail`, OpenBLAS's own configuration string).
Exits 77 (skipped) on a CPU without AVX2, where no kernel choice is wrong.

  blas_kernels.py --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny --work DIR
"""
import argparse
import json
import os
import shutil
import sys

import h5py
import numpy as np

import mpi_runner
from checks import check, finish

AVX512 = {"SkylakeX", "CooperLake", "SapphireRapids"}
AVX2 = {"Haswell", "Zen"} | AVX512


def cpu_flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def run(args, name, coretype):
    env_before = os.environ.get("OPENBLAS_CORETYPE")
    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ.pop("VINDEX_MPI_BLAS_RESTARTED", None)
    if coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype
    out = os.path.join(args.work, name)
    try:
        code, _, stderr = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", out])
    finally:
        os.environ.pop("OPENBLAS_CORETYPE", None)
        if env_before is not None:
            os.environ["OPENBLAS_CORETYPE"] = env_before
    check(code == 0, f"{name}: exit {code}: {stderr[-800:]}")
    if code != 0:
        return None, stderr, None
    detail = json.load(open(os.path.join(out, "phase1_moe_svd.json")))["provenance"]["backend_detail"]
    with h5py.File(os.path.join(out, "vindex.h5"), "r") as h5:
        sv = [np.asarray(h5[path]) for path in sorted(walk(h5)) if path.endswith("singular_values")]
    return detail, stderr, sv


def walk(group, prefix=""):
    for key, item in group.items():
        path = f"{prefix}/{key}"
        if isinstance(item, h5py.Dataset):
            yield path
        else:
            yield from walk(item, path)


def main():
    p = argparse.ArgumentParser()
    mpi_runner.add_arguments(p)
    p.add_argument("--fixture", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    flags = cpu_flags()
    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
    if not ({"avx2", "fma"} <= flags):
        print("SKIP: this CPU has no AVX2: every OpenBLAS kernel family fits it")
        return 77
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    fitting = AVX512 if avx512 else AVX2
    chosen = "SkylakeX" if avx512 else "Haswell"

    detail, stderr, default_sv = run(args, "default", None)
    if detail is not None:
        check(any(f" {k} " in detail for k in fitting), f"OPENBLAS_CORETYPE unset: kernels not one of {sorted(fitting)}: {detail}")
        check("warning: OpenBLAS" not in stderr, f"OPENBLAS_CORETYPE unset: a kernel warning: {stderr[-600:]}")

    detail, stderr, prescott_sv = run(args, "prescott", "Prescott")
    if detail is not None:
        check(" Prescott " in detail, f"OPENBLAS_CORETYPE=Prescott not honoured: {detail}")
        check(f"runs its 'Prescott' kernels, older than this CPU's {'AVX-512' if avx512 else 'AVX2'}" in stderr
              and f"set it to {chosen}" in stderr, f"OPENBLAS_CORETYPE=Prescott: no warning: {stderr[-600:]}")
        check(stderr.count("warning: OpenBLAS") == 1, "the warning is printed once, by rank 0")
        if default_sv is not None:
            check(len(default_sv) == len(prescott_sv) and len(default_sv) > 0, "the same datasets")
            for a, b in zip(default_sv, prescott_sv):
                check(np.allclose(a, b, rtol=1e-5, atol=1e-6 * float(np.max(a))), "spectra differ beyond rounding")

    detail, stderr, _ = run(args, "chosen", chosen)
    if detail is not None:
        check(f" {chosen} " in detail, f"OPENBLAS_CORETYPE={chosen} not honoured: {detail}")
        check("OpenBLAS" not in stderr, f"OPENBLAS_CORETYPE={chosen}: a note or warning: {stderr[-600:]}")
    return finish("BLAS kernels")


if __name__ == "__main__":
    sys.exit(main())
