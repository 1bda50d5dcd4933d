#!/usr/bin/env python3
"""--backend cuda where no GPU can be used (CUDA_VISIBLE_DEVICES="" hides any, so this runs the same
on a GPU machine): exit 2 under mpiexec -n 2, exactly one message saying why, no output directory;
--backend auto falls back to the CPU backend and succeeds.

  cuda_unavailable.py --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny --work DIR [--cuda-built]
"""
import argparse
import json
import os
import sys

import mpi_runner
from checks import check, finish


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cuda-built", action="store_true")
    args = ap.parse_args()
    mpi_runner.fresh_dir(args.work)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

    out = os.path.join(args.work, "cuda")
    code, _, err = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", out, "--backend", "cuda"], timeout=120)
    errors = [line for line in err.splitlines() if line.startswith("vindex_mpi: error")]
    expected = "no CUDA device is visible" if args.cuda_built else "this build has no CUDA backend"
    check(code == 2, f"--backend cuda: exit {code}, expected 2")
    check(len(errors) == 1 and expected in errors[0], f"--backend cuda: messages {errors}")
    check("fatal" not in err and "Segmentation" not in err, f"--backend cuda: crashed: {err[-500:]}")
    check(not os.path.exists(out), "--backend cuda: an output directory was created")

    auto = os.path.join(args.work, "auto")
    code, _, err = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", auto, "--backend", "auto"], timeout=120)
    check(code == 0, f"--backend auto: exit {code}: {err[-500:]}")
    if code == 0:
        provenance = json.load(open(os.path.join(auto, "phase1_moe_svd.json")))["provenance"]
        check(provenance["backend"] == "cpu" and provenance["run_identity"]["backend"] == "cpu",
              f"--backend auto did not fall back to cpu: {provenance['backend']}")
    return finish("cuda unavailable")


if __name__ == "__main__":
    sys.exit(main())
