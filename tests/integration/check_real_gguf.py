#!/usr/bin/env python3
"""Checks a run on a real GGUF checkpoint of a dense model (the SmolLM2-135M-Instruct Q4_1 file that
tools/real_model/fetch_smollm2.sh unpacks) against numpy float64 SVD of llama.cpp's own
dequantization: gguf-py's GGUFReader finds the tensors and gguf.quants.dequantize decodes them.
Runs in the venv that holds gguf (fetch_smollm2.sh makes it with numpy and h5py).

  check_real_gguf.py OUT MODEL.gguf --projections down,gate,up [--phases 1,2,3] [--k 16,64]

Every matrix of every requested projection: singular values within 1e-4 x sigma_max, var@k within
1e-6, Frobenius norm, the tensor it was read from and its [out_features, in_features] shape
(check_hf_fixture.check_run, the checks of the GGUF fixtures). Also printed: each projection's
var@64 range, the numbers the README quotes.
"""
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_hf_fixture import check_run, print_var64_ranges, run_arguments  # noqa: E402
from checks import check, finish  # noqa: E402

GGUF_NAMES = {"gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def field_value(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]].tolist()[0] if len(f.data) == 1 else None


def reference(path: Path, projections):
    reader = GGUFReader(path)
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    n_layers = int(field_value(reader, f"{arch}.block_count"))
    tensors = {t.name: t for t in reader.tensors}
    if any("_exps" in name or "ffn_gate_inp" in name for name in tensors):
        raise SystemExit(f"{path}: has experts; check_real_gguf.py checks dense models")
    matrices = []
    for layer in range(n_layers):
        for proj in projections:
            name = f"blk.{layer}.{GGUF_NAMES[proj]}.weight"
            t = tensors[name]
            w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64)
            s = np.linalg.svd(w, compute_uv=False)
            matrices.append({"layer": layer, "role": "dense", "expert": -1, "projection": proj, "tensor": name,
                             "shape": list(w.shape), "singular_values": s, "frobenius_sq": float(np.sum(w * w)),
                             "ggml_type": t.tensor_type.name})
    return {"fixture": path.stem, "family": "dense", "num_hidden_layers": n_layers, "moe_layers": [],
            "dense_layers": list(range(n_layers)), "matrices": matrices, "routers": [], "architecture": arch}


def main():
    a = run_arguments(what="gguf")
    ref = reference(a.gguf, a.projections)
    types = sorted({m["ggml_type"] for m in ref["matrices"]})
    check(len(ref["matrices"]) == ref["num_hidden_layers"] * len(a.projections), "a projection is missing from the GGUF")
    print_var64_ranges(ref, a.projections)
    status = check_run(a.out, ref, a.projections, a.phases - {3}, a.k,
                       f"{a.gguf.name} ({ref['architecture']}, {', '.join(types)}): {len(ref['matrices'])} matrices "
                       f"against numpy float64 SVD of gguf {version('gguf')} dequantize")
    return status


if __name__ == "__main__":
    sys.exit(main())
