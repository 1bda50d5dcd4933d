#!/usr/bin/env python3
"""Checks that two runs on the same weights stored in two containers (a safetensors checkpoint and
its GGUF conversion by tools/fixtures/hf_to_gguf.py) give the same numbers, bit for bit: every
dataset of vindex.h5 equal, and the JSON outputs equal once what names the files is set aside
(provenance, the model's name, tensor names, run ids). moe_config.json, which describes the files,
is compared in its layer kinds and shapes only.

  check_same_numbers.py OUT_A OUT_B [--values-only]

--values-only: the two checkpoints hold the same weight values in different encodings (a Q4_1 GGUF
and its float32 safetensors conversion by tools/real_model/gguf_to_safetensors.py), so the weight
digests, which hash the stored bytes, are set aside too; every number must still be equal.
"""
import json
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import check, finish  # noqa: E402

NAMING = {"provenance", "model", "model_dir", "tensor", "fused_tensor", "run_id", "model_fingerprint"}


def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in NAMING}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def main():
    args = [x for x in sys.argv[1:] if x != "--values-only"]
    values_only = len(args) < len(sys.argv) - 1
    a, b = Path(args[0]), Path(args[1])
    with h5py.File(a / "vindex.h5", "r") as fa, h5py.File(b / "vindex.h5", "r") as fb:
        names_a, names_b = [], []
        fa.visit(lambda n: names_a.append(n) if isinstance(fa[n], h5py.Dataset) else None)
        fb.visit(lambda n: names_b.append(n) if isinstance(fb[n], h5py.Dataset) else None)
        check(sorted(names_a) == sorted(names_b), f"vindex.h5 datasets differ: {sorted(set(names_a) ^ set(names_b))[:5]}")
        for n in sorted(set(names_a) & set(names_b)):
            if values_only and n.endswith("/weight_digest"):
                continue
            x, y = fa[n][()], fb[n][()]
            same = x.shape == y.shape and (np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y))
            check(same, f"vindex.h5 {n} differs")
    for f in ("phase1_moe_svd.json", "phase2_router_svd.json", "phase3_routing_stats.json", "phase1_moe_svd_agg.json"):
        if (a / f).exists() or (b / f).exists():
            check((a / f).exists() and (b / f).exists(), f"{f} in one output only")
            if (a / f).exists() and (b / f).exists():
                check(strip(json.loads((a / f).read_text())) == strip(json.loads((b / f).read_text())), f"{f} differs")
    ca, cb = json.loads((a / "moe_config.json").read_text()), json.loads((b / "moe_config.json").read_text())
    for key in ("family", "moe_layers", "dense_layers", "hidden_size", "n_routed_experts", "n_shared_experts"):
        check(ca.get(key) == cb.get(key), f"moe_config.json {key}: {ca.get(key)} vs {cb.get(key)}")
    return finish(f"{a.name} and {b.name}: the same numbers")


if __name__ == "__main__":
    sys.exit(main())
