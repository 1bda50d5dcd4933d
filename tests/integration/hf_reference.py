"""Read the torch reference spectra of the Hugging Face fixtures (tests/fixtures/hf/<name>/reference.json).

numpy only (runs under /usr/bin/python3, no torch). The references were written by
tools/fixtures/make_hf_fixtures.py; the schema is described in tests/fixtures/hf/README.md.

    from hf_reference import load_reference, numpy_bias_stats
    ref = load_reference("tests/fixtures/hf/mixtral")
    for m in ref["matrices"]:
        m["singular_values"]          # numpy float64, descending
    stats = numpy_bias_stats(ref["routers"][0]["bias"]["values"])
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

ROLES = ("dense", "routed", "shared")
PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
FAMILIES = ("deepseek_v3", "qwen2_moe", "qwen3_moe", "mixtral", "olmoe", "gpt_oss", "llama4", "dense")
_TOP_KEYS = ("fixture", "transformers_class", "transformers_version", "torch_version", "published_naming", "family",
             "num_hidden_layers", "moe_layers", "dense_layers", "matrices", "routers")


def load_reference(fixture_dir) -> dict:
    """Parse and sanity-check DIR/reference.json. Returns the JSON dict with every matrix's and router's
    "singular_values" and every router bias's "values" as numpy float64 arrays (all else as stored).
    Raises ValueError on a malformed file."""
    path = Path(fixture_dir) / "reference.json"
    with open(path, encoding="utf-8") as f:
        ref = json.load(f)
    missing = [k for k in _TOP_KEYS if k not in ref]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    if ref["family"] not in FAMILIES:
        raise ValueError(f"{path}: unknown family {ref['family']!r}")
    n = ref["num_hidden_layers"]
    if sorted(ref["moe_layers"] + ref["dense_layers"]) != list(range(n)):
        raise ValueError(f"{path}: moe_layers + dense_layers do not partition range({n})")
    seen = set()
    for m in ref["matrices"]:
        key = matrix_key(m)
        if key in seen:
            raise ValueError(f"{path}: duplicate matrix {key}")
        seen.add(key)
        if m["role"] not in ROLES or m["projection"] not in PROJECTIONS or not 0 <= m["layer"] < n:
            raise ValueError(f"{path}: bad matrix entry {key}")
        want_expert_ok = m["expert"] >= 0 if m["role"] == "routed" else m["expert"] == (0 if m["role"] == "shared" else -1)
        if not want_expert_ok:
            raise ValueError(f"{path}: expert {m['expert']} does not fit role {m['role']}")
        m["singular_values"] = _descending(m["singular_values"], min(m["shape"]), f"{path}: {key}")
    for r in ref["routers"]:
        r["singular_values"] = _descending(r["singular_values"], min(r["shape"]), f"{path}: router {r['layer']}")
        if r["bias"] is not None:
            r["bias"]["values"] = np.asarray(r["bias"]["values"], dtype=np.float64)
            if r["bias"]["values"].shape != (r["shape"][0],):
                raise ValueError(f"{path}: router {r['layer']} bias length != {r['shape'][0]}")
    return ref


def _descending(values, count: int, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (count,) or not np.all(np.isfinite(a)) or np.any(np.diff(a) > 0) or (count and a[-1] < 0):
        raise ValueError(f"{what}: singular values must be {count} finite, non-negative, descending numbers")
    return a


def matrix_key(m: dict) -> tuple:
    """(layer, role, expert, projection): unique per matrix entry."""
    return (m["layer"], m["role"], m["expert"], m["projection"])


def matrices_by_key(ref: dict) -> dict:
    return {matrix_key(m): m for m in ref["matrices"]}


def var_at_k(singular_values, frobenius_sq: float, k: int) -> float:
    """Share of ||W||_F^2 in the k largest singular values: sum_{j<k} s_j^2 / ||W||_F^2 (float64)."""
    s = np.asarray(singular_values, dtype=np.float64)[:k]
    return float(np.dot(s, s) / frobenius_sq)


def numpy_bias_stats(values) -> dict:
    """mean, std (population, ddof=0), min, max and l2_norm of a bias vector, in float64."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("empty bias vector")
    return {"mean": float(a.mean()), "std": float(a.std(ddof=0)), "min": float(a.min()), "max": float(a.max()),
            "l2_norm": float(math.sqrt(float(np.dot(a, a))))}


if __name__ == "__main__":  # python3 tests/integration/hf_reference.py [FIXTURES_ROOT]: summary of every fixture
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "fixtures" / "hf")
    for d in sorted(p for p in root.iterdir() if (p / "reference.json").exists()):
        ref = load_reference(d)
        print(f"{ref['fixture']:14} {ref['family']:12} layers={ref['num_hidden_layers']} moe={ref['moe_layers']} "
              f"matrices={len(ref['matrices'])} routers={len(ref['routers'])}")
