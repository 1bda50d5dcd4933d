#!/usr/bin/env python3
"""Runs vindex_mpi under mpiexec into a fresh output directory and requires success (CTest setup
step of the integration tests): run_vindex.py --np N --out DIR [mpi options] -- vindex args"""
import argparse
import os
import shutil
import subprocess
import sys

import mpi_runner


def main():
    parser = argparse.ArgumentParser()
    mpi_runner.add_arguments(parser)
    parser.add_argument("--np", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--twice", action="store_true", help="run again into the same directory with --overwrite")
    parser.add_argument("vindex_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    vindex_args = [a for a in args.vindex_args if a != "--"]
    mpi_runner.fresh_dir(args.out)
    code, out, err = mpi_runner.run(args, args.np, vindex_args + ["--out", args.out])
    sys.stdout.write(out)
    sys.stderr.write(err)
    if code != 0:
        sys.exit(f"vindex_mpi exited with {code}")
    if args.twice:
        code, out, err = mpi_runner.run(args, args.np, vindex_args + ["--out", args.out])
        if code != 2 or "not empty" not in err:
            sys.exit(f"a second run into a full directory must be refused with exit 2, got {code}: {err}")
        first = args.out + ".first"
        shutil.rmtree(first, ignore_errors=True)
        shutil.copytree(args.out, first)
        code, out, err = mpi_runner.run(args, args.np, vindex_args + ["--out", args.out, "--overwrite"])
        sys.stderr.write(err)
        if code != 0:
            sys.exit(f"the --overwrite run exited with {code}")
        # Determinism: the second run's files equal the first's, provenance (timestamps) excepted.
        checker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_outputs.py")
        same = subprocess.run([sys.executable, checker, "identical", args.out, first], capture_output=True, text=True)
        if same.returncode != 0:
            sys.exit(f"a second run gave different files:\n{same.stdout}{same.stderr}")
        shutil.rmtree(first)


if __name__ == "__main__":
    main()
