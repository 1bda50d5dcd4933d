#!/usr/bin/env python3
"""The BLAS kernels fit the CPU, under mpiexec (README, "Performance"):
  - with OPENBLAS_CORETYPE unset, the run's BLAS runs kernels for the CPU's widest vector unit
    (OpenBLAS 0.3.21 does not recognise newer CPUs and falls back to its SSE3 "Prescott" kernels;
    vindex_mpi then restarts itself with OPENBLAS_CORETYPE set), and no warning is printed;
  - OPENBLAS_CORETYPE=Prescott set by the user is honoured, with a warning saying what it costs,
    and gives the same spectra to float rounding;
  - fitting kernels chosen by the user give neither a warning nor a note;
  - the restarted ranks keep their process name (comm, what ps, pkill and Slurm see), also when
    started through a symbolic link of another name (an exec of /proc/self/exe named them "exe",
    one of the link's target "vindex_mpi");
  - started through the dynamic loader (`ld.so vindex_mpi ...`, where /proc/self/exe is the loader)
    the run does not restart, and ends as usual, with the warning.
The kernels are read back from provenance (`backend_detail`, OpenBLAS's own configuration string).
Exits 77 (skipped) on a CPU without AVX2, where no kernel choice is wrong.

  blas_kernels.py --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

import mpi_runner
from checks import check, finish

AVX512 = {"SkylakeX", "CooperLake", "SapphireRapids"}
AVX2 = {"Haswell", "Zen"} | AVX512
RESTART_MARKER = "VINDEX_MPI_BLAS_RESTARTED"  # set by vindex_mpi in the environment it restarts with


def cpu_flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def blas_env(coretype=None):
    """This environment without a kernel choice or a restart's marker; with OPENBLAS_CORETYPE=coretype if given."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", RESTART_MARKER)}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def run(args, name, coretype):
    out = os.path.join(args.work, name)
    code, _, stderr = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", out], env=blas_env(coretype))
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


def restarted_names(args, link, out):
    """Runs 2 ranks through `link` and returns ({pid: comm} of the restarted ranks, exit code)."""
    largs = argparse.Namespace(**vars(args))
    largs.binary = link
    cmd = mpi_runner.mpi_command(largs, 2, ["--model", args.fixture, "--out", out])
    p = subprocess.Popen(cmd, env=blas_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    names = {}
    deadline = time.monotonic() + 240
    while p.poll() is None and time.monotonic() < deadline:
        for pid in mpi_runner.rank_pids(link, out).values():
            try:
                environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                comm = open(f"/proc/{pid}/comm").read().strip()
            except OSError:
                continue
            if any(v.startswith(RESTART_MARKER.encode() + b"=") for v in environ):
                names[pid] = comm
        time.sleep(0.005)
    if p.poll() is None:
        p.kill()
    return names, p.wait()


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

    # The process name survives the restart, through a symbolic link of another name too.
    link = os.path.join(args.work, "vindex-link")
    os.symlink(os.path.abspath(args.binary), link)
    names, code = restarted_names(args, link, os.path.join(args.work, "named"))
    check(code == 0, f"through a symbolic link: exit {code}")
    check(len(names) > 0, "through a symbolic link: no restarted rank seen")
    check(all(comm == "vindex-link" for comm in names.values()), f"restarted ranks renamed: {names} (expected 'vindex-link')")

    # Through the dynamic loader: no restart (it would execute the loader with the program's arguments).
    loader = next((path for path in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1") if os.path.exists(path)), None)
    if loader:
        p = subprocess.run([loader, args.binary, "--model", args.fixture, "--out", os.path.join(args.work, "loader")],
                           env=blas_env(), capture_output=True, text=True, timeout=240)
        check(p.returncode == 0, f"through {loader}: exit {p.returncode}: {p.stderr[-600:]}")
        check("could not restart itself" in p.stderr and f"OPENBLAS_CORETYPE={chosen}" in p.stderr,
              f"through {loader}: no warning: {p.stderr[-600:]}")
    return finish("BLAS kernels")


if __name__ == "__main__":
    sys.exit(main())
