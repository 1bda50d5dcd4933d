#!/usr/bin/env python3
"""GPU check (CTest test gpu_bad_input_exits_3, label gpu; skipped where no GPU is visible): an input
error raised inside the CUDA plugin -- a NaN or Inf weight found by the decode kernel, a non-finite
block scale, an MXFP4 NaN scale decoded on the host helpers -- ends the job under mpiexec -n 2 with
--backend cuda exactly as on the CPU: exit 3, one message naming the file and the tensor, no
output, no rank left running. The cases and their expected messages are bad_inputs.py's.

  cuda_bad_inputs.py --probe vindex_cuda_probe --mpiexec M --np-flag -n --binary B
                     --fixture tests/fixtures/kimi_k2_tiny --work DIR [--backend cpu]

--backend cpu runs the same cases without the gate and without a GPU: a check of this script.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import bad_inputs  # noqa: E402
import mpi_runner  # noqa: E402
from gpu_gate import require_gpu  # noqa: E402

CASES = ("nan_weight", "inf_weight", "nan_scale", "inf_scale", "mxfp4_scale_255")


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--probe", required=True, help="vindex_cuda_probe: skip (77) where no GPU is visible")
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--backend", default="cuda", choices=("cuda", "cpu"))
    args = ap.parse_args()
    if args.backend == "cuda":
        require_gpu(args.probe)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    cases = [c for c in bad_inputs.cases(args.fixture) if c[0] in CASES]
    if len(cases) != len(CASES):
        sys.exit(f"bad_inputs.py lacks some of the cases {CASES}")
    # Two ranks may share one GPU here: the test is about the error, not the throughput.
    backend = ["--backend", args.backend] + (["--share-gpus"] if args.backend == "cuda" else [])
    for case in cases:
        bad_inputs.run_case(args, case, backend)
    if bad_inputs.failures:
        print("\n".join(bad_inputs.failures), file=sys.stderr)
        return 1
    print(f"bad inputs through --backend {args.backend}: all {len(cases)} cases passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
