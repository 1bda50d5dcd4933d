#!/usr/bin/env python3
"""How close is `--dry-run`'s estimate to a real run? One Kimi-K2-sized MoE layer -- 384 experts of
7168 x 2048 fp8 e4m3 with 128 x 128 block scales, 5.6 GB, written by tools/make_large_fixture.py --
planned with --dry-run and then computed, under the same mpiexec and thread settings, in the same
invocation. Prints the estimate, the measured wall time (the run's own elapsed_seconds, which
starts before the model is opened and ends after the outputs are committed) and their ratio.
A benchmark, not a test: run it on a quiet machine and record the result in tools/bench/README.md.

  python3 tools/bench/calibrate_estimate.py --build build --work /tmp/calib [--np 2] [--threads 1] [--experts 384]

Needs numpy and ml_dtypes for the fixture (pip install numpy ml_dtypes) and about 12 GB of memory
while it is written.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def mpi(args, vindex_args):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpiexec", "-n", str(args.np), "--oversubscribe", "--bind-to", "none",
           os.path.join(args.build, "src", "vindex_mpi"), "--threads", str(args.threads)] + vindex_args
    started = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p, time.monotonic() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", required=True)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--experts", type=int, default=384)
    args = ap.parse_args()
    model = os.path.join(args.work, f"kimi-layer-{args.experts}")
    if not os.path.exists(os.path.join(model, "config.json")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_large_fixture.py"), "--out", model,
                        "--experts", str(args.experts), "--moe-layers", "1", "--hidden", "7168", "--inter", "2048",
                        "--dtype", "F8_E4M3", "--projections", "down"], check=True)
    plan, _ = mpi(args, ["--model", model, "--dry-run", "--layers", "1"])
    estimate = float(re.search(r"Estimated wall time ([0-9.]+) s", plan.stdout).group(1))
    out = os.path.join(args.work, "out")
    shutil.rmtree(out, ignore_errors=True)
    run, wall = mpi(args, ["--model", model, "--out", out, "--layers", "1"])
    provenance = json.load(open(os.path.join(out, "phase1_moe_svd.json")))["provenance"]
    elapsed = provenance["elapsed_seconds"]
    matrices = sum(layer["down_proj"]["n_matrices"] for layer in json.load(open(os.path.join(out, "phase1_moe_svd.json")))["layers"])
    print(f"{matrices} matrices of 7168 x 2048 fp8 on {args.np} rank(s) x {args.threads} thread(s)")
    print(f"  estimate (--dry-run)     {estimate:8.1f} s")
    print(f"  measured (elapsed)       {elapsed:8.1f} s   (mpiexec wall {wall:.1f} s)")
    print(f"  measured / estimate      {elapsed / estimate:8.3f}")


if __name__ == "__main__":
    main()
