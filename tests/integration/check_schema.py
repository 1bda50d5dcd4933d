#!/usr/bin/env python3
"""phase1_moe_svd.json against its JSON Schema (docs/phase1_moe_svd.schema.json), and the seed's
layer-level fields against numpy on the run's own vindex.h5: median/q25/q75 var@64 of the layer's
down_proj matrices (routed experts, or the dense MLP), the median of sigma_0 / sigma_1, the median
expert (lower middle of an even count, lower id among equal values) and its three largest singular
values. Runs without var@64 of down_proj must have seed_fields null and none of the fields. Then
the schema must refuse broken copies of the first document (a seed field missing, an unknown key,
a var@k outside [0, 1], a bad kind), so that it can fail.

  check_schema.py --schema docs/phase1_moe_svd.schema.json OUT [OUT ...]
"""
import argparse
import copy
import json
import sys
from pathlib import Path

import h5py
import jsonschema
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import check, finish  # noqa: E402

SEED = ("median_var64", "q25_var64", "q75_var64", "s0_s1_ratio", "median_expert", "median_expert_top3_sv")


def close(a, b):
    return a is not None and abs(a - b) <= 1e-12 * max(1.0, abs(b))


def check_seed_fields(out: Path, doc: dict):
    label = out.name
    ks = doc["k"]
    if 64 not in ks or "down_proj" not in doc["projections"]:
        check(doc["seed_fields"] is None, f"{label}: seed_fields {doc['seed_fields']} without var@64 of down_proj")
        check(all(not any(f in layer for f in SEED) for layer in doc["layers"]), f"{label}: seed fields without var@64")
        return 0
    j64 = ks.index(64)
    n = 0
    with h5py.File(out / "vindex.h5", "r") as h5:
        for layer in doc["layers"]:
            where = f"phase1/layer_{layer['layer']:03d}/down_proj"
            if not check(where in h5 and "median_var64" in layer, f"{label}: layer {layer['layer']}: no seed fields"):
                continue
            g = h5[where]
            var = g["var_at_k"][()][:, j64].astype(np.float64)
            sv = g["singular_values"][()].astype(np.float64)
            ids = g["expert_ids"][()]
            what = f"{label}: layer {layer['layer']}"
            check(close(layer["median_var64"], float(np.median(var))), f"{what}: median_var64 {layer['median_var64']}")
            check(close(layer["q25_var64"], float(np.percentile(var, 25))), f"{what}: q25_var64 {layer['q25_var64']}")
            check(close(layer["q75_var64"], float(np.percentile(var, 75))), f"{what}: q75_var64 {layer['q75_var64']}")
            check(layer["median_var64"] == layer["down_proj"]["median_var64"], f"{what}: median_var64 differs from down_proj's")
            ratio = float(np.median(sv[:, 0] / sv[:, 1]))
            # (the tool's ratio is of its float64 singular values; vindex.h5 stores float32)
            check(layer["s0_s1_ratio"] is not None and abs(layer["s0_s1_ratio"] - ratio) <= 1e-6 * ratio,
                  f"{what}: s0_s1_ratio {layer['s0_s1_ratio']}, numpy {ratio}")
            m = int(np.argsort(var, kind="stable")[(len(var) - 1) // 2])
            check(layer["median_expert"] == int(ids[m]), f"{what}: median_expert {layer['median_expert']}, numpy {ids[m]}")
            check(layer["median_expert_top3_sv"] == [float(x) for x in sv[m, :3]],
                  f"{what}: median_expert_top3_sv {layer['median_expert_top3_sv']}, vindex.h5 {sv[m, :3]}")
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema", type=Path, required=True)
    ap.add_argument("outs", type=Path, nargs="+")
    a = ap.parse_args()
    schema = json.loads(a.schema.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    docs, layers = [], 0
    for out in a.outs:
        doc = json.loads((out / "phase1_moe_svd.json").read_text())
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        check(not errors, f"{out.name}: {len(errors)} schema error(s); first: "
                          f"{errors[0].message if errors else ''} at {list(errors[0].path) if errors else ''}")
        layers += check_seed_fields(out, doc)
        docs.append(doc)

    # The schema can fail: broken copies of the first document with seed fields.
    base = next((d for d in docs if d["seed_fields"] is not None), None)
    if check(base is not None, "no run with var@64 of down_proj to break"):
        def drop_q25(d):
            del d["layers"][0]["q25_var64"]

        def unknown_key(d):
            d["layers"][0]["down_proj"]["median_var65x"] = 0.5

        def var_out_of_range(d):
            d["layers"][0]["down_proj"]["median_var64"] = 1.5

        def bad_kind(d):
            d["layers"][0]["kind"] = "sparse"

        for breaker in (drop_q25, unknown_key, var_out_of_range, bad_kind):
            broken = copy.deepcopy(base)
            breaker(broken)
            check(not validator.is_valid(broken), f"the schema accepts a document with {breaker.__name__}")
    return finish(f"{len(docs)} phase1_moe_svd.json valid against {a.schema.name}; seed fields of {layers} layers "
                  f"equal numpy's on vindex.h5")


if __name__ == "__main__":
    sys.exit(main())
