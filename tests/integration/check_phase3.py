#!/usr/bin/env python3
"""Checks a run with --phases 3 against the float64 numpy reference of docs/phase3.md
(tests/integration/phase3_reference.py) on the same capture and checkpoint.

  check_phase3.py OUT CAPTURE MODEL_DIR [--sample-tokens 512]

The capture was written by tools/capture/capture.py from transformers' own forward pass, so the
engine's choices (selected_experts) are transformers' router outputs: the recomputed routing must
make at least 99.9% of them, in the reference and in the tool. Loads and co-activation must be equal,
the other statistics, CKA, stages and the constants C1, C2, C3, C5 equal to the reference's to
floating-point rounding.
"""
import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import check, finish  # noqa: E402
from phase3_reference import reference_stats  # noqa: E402

RTOL = 1e-9


def close(a, b, tol=RTOL):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("capture", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("--sample-tokens", type=int, default=512)
    a = ap.parse_args()
    ref = reference_stats(str(a.capture), str(a.model), sample_tokens=a.sample_tokens)
    stats = json.loads((a.out / "phase3_routing_stats.json").read_text())
    agg = json.loads((a.out / "phase1_moe_svd_agg.json").read_text())
    name = a.model.name
    ours = {entry["layer"]: entry for entry in stats["layers"]}
    check(len(ours) == len(stats["layers"]), f"{name}: a layer listed twice in phase3_routing_stats.json")
    extra = sorted(set(ours) - {r["layer"] for r in ref["layers"]})
    check(not extra, f"{name}: layers {extra} in phase3_routing_stats.json that the reference does not have")
    check(stats["capture"]["n_tokens"] == ref["n_tokens"], f"{name}: n_tokens {stats['capture']['n_tokens']}")
    check(stats["capture"]["sampled_tokens"] == len(ref["sampled_token_indices"]), f"{name}: sampled tokens")

    with h5py.File(a.out / "vindex.h5", "r") as h5:
        want_groups = {f"layer_{r['layer']:03d}" for r in ref["layers"]}
        got_groups = {key for key in h5["phase3"] if key.startswith("layer_")}
        check(got_groups == want_groups, f"{name}: vindex.h5 phase3 layer groups {sorted(got_groups ^ want_groups)} "
                                         "differ from the reference's layers")
        for r in ref["layers"]:
            label = f"{name}: layer {r['layer']}"
            e = ours.get(r["layer"])
            if not check(e is not None, f"{label}: missing from phase3_routing_stats.json"):
                continue
            g = h5[f"phase3/layer_{r['layer']:03d}"]
            if r["moe"]:
                check(r["agreement"] is not None and r["agreement"] >= 0.999,
                      f"{label}: the reference's routing makes only {r['agreement']} of transformers' choices")
                check(close(e["selection_agreement"], r["agreement"]),
                      f"{label}: selection agreement {e['selection_agreement']}, reference {r['agreement']}")
                check(e["load_counts"] == [int(v) for v in r["load_counts"]], f"{label}: load counts {e['load_counts']}")
                check(np.array_equal(g["load_counts"][()], r["load_counts"]), f"{label}: vindex.h5 load counts")
                check(np.array_equal(g["coactivation"][()], r["coactivation"]), f"{label}: co-activation differs")
                for key in ("load_entropy", "load_cv", "max_over_mean_load", "topk_weight_concentration"):
                    check(close(e[key], float(r[key])), f"{label}: {key} {e[key]}, reference {r[key]}")
                check(e["never_chosen"] == r["never_chosen"], f"{label}: never_chosen {e['never_chosen']}")
            for key, ref_key in (("activation_sparsity", "c1_sparsity"), ("gate_coherence", "c3_gate_coherence")):
                want = None if r[ref_key] is None else float(r[ref_key])
                check(close(e[key], want, 1e-7), f"{label}: {key} {e[key]}, reference {want}")
            check(e["activation_vectors"] == r["c1_vectors"], f"{label}: {e['activation_vectors']} activation vectors")
        cka = np.array(stats["cka"]["matrix"], dtype=float)
        check(np.allclose(cka, ref["C5"]["cka"], rtol=0, atol=1e-9), f"{name}: CKA matrix differs from the reference")
        check(np.allclose(h5["phase3/cka"][()], ref["C5"]["cka"], rtol=0, atol=1e-9), f"{name}: vindex.h5 CKA differs")
    want_stages = [(s["start_layer"], s["end_layer"]) for s in ref["C5"]["stages"]]
    got_stages = [(s["first_layer"], s["last_layer"]) for s in stats["stages"]]
    check(got_stages == want_stages, f"{name}: stages {got_stages}, reference {want_stages}")

    c = agg["constants"]
    for key, want in (("C1", ref["C1"]["median"]), ("C3", ref["C3"]["median"]), ("C2", ref["C2"]),
                      ("C5", ref["C5"]["count"])):
        measured = c[key]["status"] == "measured"
        check(measured == (want is not None), f"{name}: {key} status {c[key]['status']}")
        check(close(c[key]["value"], None if want is None else float(want), 1e-7),
              f"{name}: {key} = {c[key]['value']}, reference {want}")
        check(bool(c[key].get("definition")), f"{name}: {key} has no definition")
    return finish(f"{name} phase 3 against the float64 reference")


if __name__ == "__main__":
    sys.exit(main())
