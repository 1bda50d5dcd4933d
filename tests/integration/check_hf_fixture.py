#!/usr/bin/env python3
"""Checks a run on a Hugging Face fixture (tests/fixtures/hf/<name>, saved by transformers' own model
classes) against its torch float64 reference (reference.json, tools/fixtures/make_hf_fixtures.py).

  check_hf_fixture.py OUT FIXTURE --projections down,gate,up [--phases 1,2] [--k 4,16]

Every expected number comes from the reference (torch.linalg.svdvals in float64 of the tensors as
the safetensors library loads them; for MXFP4, transformers' own dequantization); nothing is taken
from the tool. Checked: the layout (family, MoE and dense layers, skipped layers, the tensor each
matrix is read from), every matrix of every requested projection (singular values within
1e-4 x sigma_max, var@k within 1e-6, Frobenius norm), no matrix more or less than the reference,
and with phase 2 every router's spectrum, its bias values and their statistics against numpy.
"""
import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import check, finish  # noqa: E402
from hf_reference import load_reference, numpy_bias_stats, var_at_k  # noqa: E402

SV_TOL = 1e-4     # |sigma_i - ref_i| <= SV_TOL * sigma_max (README, "Accuracy")
VAR_TOL = 1e-6    # |var@k - ref| absolute
FRO_RTOL = 1e-6   # Frobenius norm, relative


def group_name(m):
    return ("shared_" if m["role"] == "shared" else "") + m["projection"]


def check_spectrum(label, ours, ref_sv, ref_fro_sq, var_row, ks, fro=None):
    if not check(ours.shape == ref_sv.shape, f"{label}: {ours.shape[0]} singular values, reference {ref_sv.shape[0]}"):
        return
    err = float(np.max(np.abs(ours.astype(np.float64) - ref_sv))) if ref_sv.size else 0.0
    check(err <= SV_TOL * ref_sv[0], f"{label}: singular values off by {err:.3g} (bar {SV_TOL * ref_sv[0]:.3g})")
    for j, k in enumerate(ks):
        want = 1.0 if k >= ref_sv.size else var_at_k(ref_sv, ref_fro_sq, k)
        check(abs(var_row[j] - want) <= VAR_TOL, f"{label}: var@{k} {var_row[j]:.9f}, reference {want:.9f}")
    if fro is not None:
        want = float(np.sqrt(ref_fro_sq))
        check(abs(fro - want) <= FRO_RTOL * want, f"{label}: Frobenius norm {fro}, reference {want}")


def run_arguments(argv=None, what="fixture"):
    """The arguments every checker of a run shares: OUT, the model (fixture directory or file), and
    the run's --projections, --phases and --k."""
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument(what, type=Path)
    ap.add_argument("--projections", default="down")
    ap.add_argument("--phases", default="1")
    ap.add_argument("--k", default="64")
    ap.add_argument("--activations", help="the run's phase-3 capture (not read here)")
    a = ap.parse_args(argv)
    a.projections = [p if p.endswith("_proj") else p + "_proj" for p in a.projections.split(",")]
    a.phases = {int(p) for p in a.phases.split(",")}
    a.k = sorted({int(k) for k in a.k.split(",")})
    return a


def main():
    a = run_arguments()
    ref = load_reference(a.fixture)
    kind = ("gguf-py/numpy" if ref["fixture"].startswith("gguf_") else
            "quantizing library's" if ref["fixture"].startswith("postquant_") else "transformers/torch")
    return check_run(a.out, ref, a.projections, a.phases, a.k, f"{ref['fixture']} against its {kind} reference")


def print_var64_ranges(ref, projections):
    """Each projection's var@64 range over the reference's matrices (the numbers the README quotes)."""
    for proj in projections:
        v = []
        for m in ref["matrices"]:
            if m["projection"] == proj:
                s2 = np.asarray(m["singular_values"], np.float64) ** 2
                v.append(float(np.sum(s2[:64]) / m["frobenius_sq"]))
        print(f"{proj}: {len(v)} matrices, var@64 {min(v):.4f}-{max(v):.4f} (median {np.median(v):.4f}), numpy float64")


def check_run(out, ref, projections, phases, ks, verdict):
    """Checks the run in OUT against a reference in reference.json's schema (tests/fixtures/hf/README.md)."""
    name = ref["fixture"]

    config = json.loads((out / "moe_config.json").read_text())
    check(config["family"] == ref["family"], f"{name}: family {config['family']}, reference {ref['family']}")
    check(config["moe_layers"] == ref["moe_layers"], f"{name}: MoE layers {config['moe_layers']}, reference {ref['moe_layers']}")
    check(config["dense_layers"] == ref["dense_layers"],
          f"{name}: dense layers {config['dense_layers']}, reference {ref['dense_layers']}")
    if name == "deepseek_v3":  # the emulated multi-token-prediction layer is skipped
        check(config["skipped_layers"] == [ref["num_hidden_layers"]], f"{name}: skipped layers {config['skipped_layers']}")
    # The tensor each matrix is read from: moe_config.json lists expert 0's (and the dense MLP's).
    for m in ref["matrices"]:
        if m["expert"] > 0:
            continue
        layer = config["layers"][m["layer"]]
        where = layer["mlp"] if m["role"] == "dense" else layer["expert"] if m["role"] == "routed" else layer["shared_expert"]
        entry = (where or {}).get(m["projection"])
        label = f"{name}: layer {m['layer']} {m['role']} {m['projection']}"
        if check(entry is not None, f"{label}: not in moe_config.json"):
            check(entry["tensor"] == m["tensor"], f"{label}: read from {entry['tensor']}, reference {m['tensor']}")
            check(entry["shape"] == m["shape"], f"{label}: shape {entry['shape']}, reference {m['shape']}")

    with h5py.File(out / "vindex.h5", "r") as h5:
        check(list(h5.attrs["k"]) == ks, f"{name}: k {list(h5.attrs['k'])}, expected {ks}")
        expected = [m for m in ref["matrices"] if m["projection"] in projections] if 1 in phases else []
        seen = 0
        for m in expected:
            label = f"{name}: layer {m['layer']} {group_name(m)} expert {m['expert']}"
            path = f"phase1/layer_{m['layer']:03d}/{group_name(m)}"
            if not check(path in h5, f"{label}: {path} missing"):
                continue
            g = h5[path]
            ids = list(g["expert_ids"][()])
            if not check(m["expert"] in ids, f"{label}: not in {path}"):
                continue
            i = ids.index(m["expert"])
            check(list(g.attrs["shape"]) == m["shape"], f"{label}: shape {list(g.attrs['shape'])}, reference {m['shape']}")
            check_spectrum(label, g["singular_values"][i], m["singular_values"], m["frobenius_sq"], g["var_at_k"][i], ks,
                           float(g["frobenius_norm"][i]))
            seen += 1
        total = sum(len(g["expert_ids"]) for layer in h5.get("phase1", {}).values() for g in layer.values())
        check(seen == len(expected) and total == len(expected),
              f"{name}: phase 1 holds {total} matrices, the reference {len(expected)} for {projections}")

        if 2 in phases:
            phase2 = json.loads((out / "phase2_router_svd.json").read_text())
            by_layer = {entry["layer"]: entry for entry in phase2["layers"]}
            check(sorted(by_layer) == sorted(r["layer"] for r in ref["routers"]),
                  f"{name}: routers of layers {sorted(by_layer)}, reference {[r['layer'] for r in ref['routers']]}")
            for r in ref["routers"]:
                label = f"{name}: router of layer {r['layer']}"
                path = f"phase2/layer_{r['layer']:03d}/router"
                if not check(path in h5 and r["layer"] in by_layer, f"{label}: missing"):
                    continue
                g = h5[path]
                fro_sq = float(np.dot(r["singular_values"], r["singular_values"]))
                check_spectrum(label, g["singular_values"][0], r["singular_values"], fro_sq, g["var_at_k"][0], ks)
                entry = by_layer[r["layer"]]
                check(np.allclose(entry["singular_values"], r["singular_values"], rtol=0, atol=SV_TOL * r["singular_values"][0]),
                      f"{label}: phase2_router_svd.json singular values differ")
                s = r["singular_values"]
                check(abs(entry["sv_ratio"] - s[0] / s[1]) <= 1e-4 * s[0] / s[1], f"{label}: sv_ratio {entry['sv_ratio']}")
                if r["bias"] is None:
                    check(entry["bias"] is None and "bias" not in g, f"{label}: a bias where the reference has none")
                    continue
                if not check(entry["bias"] is not None and "bias" in g, f"{label}: bias missing"):
                    continue
                check(np.array_equal(g["bias"][()], r["bias"]["values"]), f"{label}: bias values differ from the tensor's")
                check(g["bias"].attrs["tensor"] == r["bias"]["tensor"], f"{label}: bias tensor {g['bias'].attrs['tensor']}")
                for key, want in numpy_bias_stats(r["bias"]["values"]).items():
                    got = entry["bias"][key]
                    check(abs(got - want) <= 1e-12 * max(1.0, abs(want)), f"{label}: bias {key} {got}, numpy {want}")
        else:
            check("phase2" not in h5 and not (out / "phase2_router_svd.json").exists(), f"{name}: phase 2 written unasked")

    if 1 in phases:
        summary = json.loads((out / "phase1_moe_svd.json").read_text())
        check(summary["projections"] == [p for p in ("gate_proj", "up_proj", "down_proj") if p in projections],
              f"{name}: projections {summary['projections']}")
        for entry in summary["layers"]:
            for p in projections:
                check(p in entry, f"{name}: phase1_moe_svd.json layer {entry['layer']} lacks {p}")
    return finish(verdict)


if __name__ == "__main__":
    sys.exit(main())
