#!/usr/bin/env python3
"""A finite but extreme fp8 block scale end to end (README, "Accuracy"): one expert of a copy of the
demo checkpoint gets a weight_scale_inv block of 1e20, whose float32 Gram matrix overflows. Under
mpiexec -n 2, with the default precision and with --precision fp32, the run must succeed, compute
that expert with a float64 Gram (gram_bits and eigen_bits 64 in vindex.h5) and match numpy's float64
SVD of the dequantized matrix (phase3_reference.py's own fp8 decoding) within the bars; the layer's
other experts keep their float32 Gram and match too.

  extreme_block_scale.py --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny --work DIR
"""
import argparse
import os
import shutil
import struct
import sys

from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mpi_runner  # noqa: E402
from bad_inputs import poke  # noqa: E402
from checks import check, finish  # noqa: E402
from phase3_reference import SafetensorsDir  # noqa: E402

SV_TOL, VAR_TOL = 1e-4, 1e-6  # README, "Accuracy"
LAYER, EXPERT = 2, 5
NAME = f"model.layers.{LAYER}.mlp.experts.{EXPERT}.down_proj.weight"
SCALE = 1e20


def var_at_k(s, frobenius_sq, k):
    return 1.0 if k >= len(s) else float(np.sum(s[:k] ** 2) / frobenius_sq)


def main():
    parser = argparse.ArgumentParser()
    mpi_runner.add_arguments(parser)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    model = os.path.join(args.work, "model")
    shutil.copytree(args.fixture, model)
    poke(model, NAME + "_scale_inv", 1, struct.pack("<f", SCALE))  # block [0, 1] of the F32 [2, 2] scales

    weights = SafetensorsDir(model)
    scales = weights.get(NAME + "_scale_inv")
    check(scales[0, 1] == np.float32(SCALE), f"the scale was not set: {scales}")
    codes = weights.get(NAME)
    # The premise: every value is finite, and a diagonal entry of the Gram matrix of the smaller
    # side (a squared column norm of this 200 x 136 matrix) is past float32's range.
    w = codes.astype(np.float64)
    check(np.all(np.isfinite(codes)), "the dequantized matrix must be finite")
    check(np.max(np.sum(w * w, axis=0 if w.shape[0] >= w.shape[1] else 1)) > np.finfo(np.float32).max,
          "the float32 Gram matrix of the test matrix would not overflow")

    for precision in ("default", "fp32"):
        out = os.path.join(args.work, f"out_{precision}")
        extra = [] if precision == "default" else ["--precision", precision]
        code, stdout, stderr = mpi_runner.run(args, 2, ["--model", model, "--out", out] + extra)
        errors = [line for line in stderr.splitlines() if line.startswith("vindex_mpi: error")]
        if not check(code == 0, f"{precision}: exit {code}: {errors or stderr.strip()[-600:]}"):
            continue
        with h5py.File(os.path.join(out, "vindex.h5"), "r") as h5:
            g = h5[f"phase1/layer_{LAYER:03d}/down_proj"]
            ks = list(g["var_at_k"].attrs["k"])
            ids = list(g["expert_ids"][...])
            for i, e in enumerate(ids):
                w = weights.get(f"model.layers.{LAYER}.mlp.experts.{e}.down_proj.weight").astype(np.float64)
                ref = np.linalg.svd(w, compute_uv=False)
                fro = float(np.sum(w * w))
                ours = g["singular_values"][i].astype(np.float64)
                sv_err = float(np.max(np.abs(ours - ref)) / ref[0])
                var_err = max(abs(float(g["var_at_k"][i, j]) - var_at_k(ref, fro, k)) for j, k in enumerate(ks))
                bits = (int(g["gram_bits"][i]), int(g["eigen_bits"][i]))
                print(f"{precision:8} expert {e}: sigma_max {ref[0]:.4g}, singular values off by {sv_err:.2e} x sigma_max, "
                      f"var@k off by {var_err:.2e}, gram/eigen bits {bits}")
                check(sv_err <= SV_TOL, f"{precision} expert {e}: singular values off by {sv_err:.3e} x sigma_max")
                check(var_err <= VAR_TOL, f"{precision} expert {e}: var@k off by {var_err:.3e}")
                if e == EXPERT:
                    check(bits == (64, 64), f"{precision} expert {e}: gram/eigen bits {bits}, expected (64, 64)")
            check(EXPERT in ids, f"expert {EXPERT} missing from layer {LAYER}")
    sys.exit(finish("extreme_block_scale"))


if __name__ == "__main__":
    main()
