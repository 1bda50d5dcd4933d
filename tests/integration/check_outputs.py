#!/usr/bin/env python3
"""Checks vindex_mpi's output files against independent references (CTest integration tests).

  check_outputs.py reference OUT FIXTURE   outputs vs FIXTURE/reference.npz (float64 numpy SVD of the
                                           matrices dequantized by torch) and FIXTURE/config.json
  check_outputs.py identical OUT_A OUT_B   two runs (e.g. 1 and 2 ranks) give identical values

Reads vindex.h5 with h5py and the JSON files with the json module; every expected number is
computed here with numpy from the reference spectra, never taken from the tool. `reference` also
checks the output set against its manifest (hashlib's SHA-256, one run id in every file) and every
matrix's weight digest against the xxhash library's XXH64 of the fixture's own bytes.
"""
import hashlib
import json
import math
import struct
import sys
from pathlib import Path

import h5py
import numpy as np
import xxhash

OUTPUT_FILES = ("vindex.h5", "phase1_moe_svd.json", "phase2_router_svd.json", "phase3_routing_stats.json",
                "phase1_moe_svd_agg.json", "moe_config.json")

SV_TOL = 1e-4      # |sigma_i - ref_i| <= SV_TOL * sigma_max (README, "Accuracy")
VAR_TOL = 1e-6     # |var@k - ref| absolute
STAT_RTOL = 1e-5   # other per-matrix statistics, relative

failures = []


def check(cond, message):
    if not cond:
        failures.append(message)


def var_at_k(s, k):
    s2 = np.asarray(s, dtype=np.float64) ** 2
    return 1.0 if k >= len(s2) else s2[:k].sum() / s2.sum()


def effective_rank(s):
    p = np.asarray(s, dtype=np.float64) ** 2
    p = p / p.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def random_floor(rows, cols, k, points=2_000_000):
    """var@k of a Gaussian rows x cols matrix under the Marchenko-Pastur law, integrated here on a
    grid in x (midpoint rule), independently of the C++'s substitution in theta."""
    n, m = min(rows, cols), max(rows, cols)
    if k >= n:
        return 1.0
    c = n / m
    a, b = (1 - math.sqrt(c)) ** 2, (1 + math.sqrt(c)) ** 2
    edges = np.linspace(a, b, points + 1)
    x = (edges[1:] + edges[:-1]) / 2
    mass = np.sqrt((b - x) * (x - a)) / (2 * math.pi * c * x) * (b - a) / points
    tail = np.cumsum(mass[::-1])[::-1]  # mass above each cell's lower edge
    moment = np.cumsum((mass * x)[::-1])[::-1]
    i = np.searchsorted(-tail, -k / n)  # first cell whose tail is at most k/n
    frac = (k / n - tail[i]) / mass[i - 1]  # the part of cell i-1 still above the quantile
    return float((moment[i] + frac * mass[i - 1] * x[i - 1]) / moment[0])


def close(a, b, rtol):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def summary_keys(ks):
    for k in ks:
        for stat in ("median", "q25", "q75", "mean", "min", "max"):
            yield k, stat, f"{stat}_var{k}"


def expected_summary(ref_var, k):
    v = np.asarray(ref_var)
    return {"median": np.median(v), "q25": np.quantile(v, 0.25), "q75": np.quantile(v, 0.75),
            "mean": np.mean(v), "min": np.min(v), "max": np.max(v)}


def check_manifest(out):
    """The set is what its manifest says: each file's size and SHA-256, one run id everywhere."""
    manifest = json.loads((out / "vindex-manifest.json").read_text())
    run_id = manifest["run_id"]
    listed = {f["name"] for f in manifest["files"]}
    for f in manifest["files"]:
        data = (out / f["name"]).read_bytes()
        check(len(data) == f["bytes"], f"{f['name']}: {len(data)} bytes, the manifest says {f['bytes']}")
        check(hashlib.sha256(data).hexdigest() == f["sha256"], f"{f['name']}: SHA-256 differs from the manifest")
        if f["name"].endswith(".json"):
            check(json.loads(data)["run_id"] == run_id, f"{f['name']}: run_id is not the manifest's")
    with h5py.File(out / "vindex.h5", "r") as h5:
        check(h5.attrs["run_id"] == run_id, "vindex.h5: run_id is not the manifest's")
        check(json.loads(h5.attrs["provenance"])["run_id"] == run_id, "vindex.h5: provenance run_id")
    for name in OUTPUT_FILES:
        check((out / name).exists() == (name in listed), f"{name}: present {(out / name).exists()}, listed {name in listed}")
    check(not (out / ".vindex-commit.json").exists(), "a commit record is left")


def tensor_bytes(fixture, name):
    """The stored bytes of a tensor, read with the safetensors layout (8-byte length, JSON header, data)."""
    index = fixture / "model.safetensors.index.json"
    shard = json.loads(index.read_text())["weight_map"][name] if index.exists() else "model.safetensors"
    with open(fixture / shard, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        if name not in header:
            return None
        begin, end = header[name]["data_offsets"]
        f.seek(8 + n + begin)
        return f.read(end - begin)


def check_weight_digests(out, fixture):
    """XXH64 (the xxhash library) of each matrix's weight bytes followed by its block scales'."""
    checked = 0
    with h5py.File(out / "vindex.h5", "r") as h5:
        for layer_name, lg in h5["phase1"].items():
            layer = int(layer_name[6:])
            for group in ("down_proj", "shared_down_proj"):
                if group not in lg:
                    continue
                g = lg[group]
                for i, expert in enumerate(g["expert_ids"][...]):
                    base = f"model.layers.{layer}.mlp"
                    name = (f"{base}.shared_experts.down_proj.weight" if group.startswith("shared") else
                            f"{base}.experts.{expert}.down_proj.weight" if expert >= 0 else f"{base}.down_proj.weight")
                    data = tensor_bytes(fixture, name)
                    scale = tensor_bytes(fixture, name + "_scale_inv")
                    expect = xxhash.xxh64(data + (scale or b"")).intdigest()
                    check(int(g["weight_digest"][i]) == expect, f"{layer_name}/{group}[{i}]: weight digest differs from XXH64")
                    checked += 1
    check(checked > 0, "no weight digest was compared")


def check_reference(out, fixture):
    out, fixture = Path(out), Path(fixture)
    check_manifest(out)
    check_weight_digests(out, fixture)
    ref = np.load(fixture / "reference.npz")
    config = json.loads((fixture / "config.json").read_text())
    summary = json.loads((out / "phase1_moe_svd.json").read_text())
    agg = json.loads((out / "phase1_moe_svd_agg.json").read_text())
    moe_config = json.loads((out / "moe_config.json").read_text())
    ks = summary["k"]

    n_layers = config["num_hidden_layers"]
    first_dense = config.get("first_k_dense_replace", 0)
    freq = config.get("moe_layer_freq", 1)
    moe_layers = [l for l in range(n_layers) if config.get("n_routed_experts") and l >= first_dense and l % freq == 0]
    check(moe_config["moe_layers"] == moe_layers, f"moe_config moe_layers {moe_config['moe_layers']} != {moe_layers}")
    check(moe_config["dense_layers"] == [l for l in range(n_layers) if l not in moe_layers], "moe_config dense_layers")
    check(moe_config["n_routed_experts"] == config["n_routed_experts"], "moe_config n_routed_experts")

    layers_json = {entry["layer"]: entry for entry in summary["layers"]}
    layer_medians, layer_floors = [], []
    checked = 0
    with h5py.File(out / "vindex.h5", "r") as h5:
        check(h5.attrs["format"] == "vindex", "root attribute format")
        check(list(h5.attrs["k"]) == ks, "root attribute k")
        for layer in sorted(layers_json):
            kind = "moe" if layer in moe_layers else "dense"
            lg = h5[f"phase1/layer_{layer:03d}"]
            check(lg.attrs["kind"] == kind, f"layer {layer} kind attribute")
            down = layers_json[layer]["down_proj"]
            for group, json_entry in (("down_proj", down), ("shared_down_proj", down["shared"])):
                key = f"layer_{layer:03d}/{group}"
                if f"{key}/singular_values" not in ref:
                    check(group not in lg, f"{key}: present in output but not in the reference")
                    continue
                g = lg[group]
                ref_s = ref[f"{key}/singular_values"]
                ref_ids = ref[f"{key}/expert_ids"]
                ref_fro2 = ref[f"{key}/frobenius_sq"]
                ours_s = g["singular_values"][...]
                check(ours_s.dtype == np.float32, f"{key}: singular_values dtype {ours_s.dtype}")
                check(ours_s.shape == ref_s.shape, f"{key}: singular_values shape {ours_s.shape} != {ref_s.shape}")
                check(np.array_equal(g["expert_ids"][...], ref_ids), f"{key}: expert_ids")
                check(list(g["var_at_k"].attrs["k"]) == ks, f"{key}: var_at_k attribute k")
                check(g.attrs["kind"] == kind, f"{key}: kind attribute")
                if ours_s.shape != ref_s.shape:
                    continue
                ref_var = np.array([[var_at_k(s, k) for k in ks] for s in ref_s])
                for i in range(ref_s.shape[0]):
                    smax = ref_s[i, 0]
                    err = np.max(np.abs(ours_s[i].astype(np.float64) - ref_s[i])) / smax
                    check(err <= SV_TOL, f"{key}[{i}]: singular values off by {err:.3e} x sigma_max")
                    dvar = np.max(np.abs(g["var_at_k"][i] - ref_var[i]))
                    check(dvar <= VAR_TOL, f"{key}[{i}]: var@k off by {dvar:.3e}")
                    s = ref_s[i]
                    expect = {
                        "top_sv": s[0],
                        "sv_ratio": s[0] / s[1] if len(s) > 1 and s[1] > 0 else float("nan"),
                        "frobenius_norm": math.sqrt(ref_fro2[i]),
                        "stable_rank": ref_fro2[i] / s[0] ** 2,
                        "effective_rank": effective_rank(s),
                    }
                    for name, value in expect.items():
                        got = float(g[name][i])
                        check(close(got, value, STAT_RTOL), f"{key}[{i}]: {name} {got} != {value}")
                    checked += 1
                # Per-layer order statistics in the JSON, from the reference var@k.
                check(json_entry is not None, f"{key}: missing from phase1_moe_svd.json")
                if json_entry is None:
                    continue
                check(json_entry["n_matrices"] == ref_s.shape[0], f"{key}: n_matrices")
                check(json_entry["shape"] == list(g.attrs["shape"]), f"{key}: shape")
                floors = g["random_floor_var_at_k"][...]
                check(floors.shape == (len(ks),), f"{key}: random_floor_var_at_k shape {floors.shape}")
                for j, k in enumerate(ks):
                    exp = expected_summary(ref_var[:, j], k)
                    for _, stat, name in summary_keys([k]):
                        check(abs(json_entry[name] - exp[stat]) <= VAR_TOL, f"{key}: {name} {json_entry[name]} != {exp[stat]}")
                    # The random floor for this shape, and the median's excess over it.
                    floor = random_floor(*g.attrs["shape"], k)
                    check(close(floors[j], floor, 1e-6), f"{key}: random floor var@{k} {floors[j]} != {floor}")
                    check(json_entry[f"random_floor_var{k}"] == floors[j], f"{key}: JSON and HDF5 random floors differ")
                    check(abs(json_entry[f"excess_var{k}"] - (exp["median"] - floor)) <= VAR_TOL, f"{key}: excess_var{k}")
                med_ratio = np.median([s[0] / s[1] for s in ref_s])
                check(close(json_entry["median_sv_ratio"], med_ratio, STAT_RTOL), f"{key}: median_sv_ratio")
                check(close(json_entry["median_top_sv"], np.median(ref_s[:, 0]), STAT_RTOL), f"{key}: median_top_sv")
                check(close(json_entry["median_stable_rank"], np.median(ref_fro2 / ref_s[:, 0] ** 2), STAT_RTOL),
                      f"{key}: median_stable_rank")
                check(close(json_entry["median_effective_rank"], np.median([effective_rank(s) for s in ref_s]), STAT_RTOL),
                      f"{key}: median_effective_rank")
                if group == "down_proj" and kind == "moe" and 64 in ks:
                    layer_medians.append(np.median(ref_var[:, ks.index(64)]))
                    layer_floors.append(random_floor(*g.attrs["shape"], 64))

    c4 = agg["constants"]["C4"]
    if layer_medians:
        expect = float(np.median(layer_medians))
        check(c4["status"] == "measured", "C4 status")
        check(abs(c4["value"] - expect) <= VAR_TOL, f"C4 {c4['value']} != {expect}")
        check(abs(c4["range"][0] - min(layer_medians)) <= VAR_TOL and abs(c4["range"][1] - max(layer_medians)) <= VAR_TOL,
              "C4 range")
        check(agg["spectral_class"] == ("dissolved" if expect < 0.15 else "non-dissolved"), "spectral_class")
        floor = float(np.median(layer_floors))
        check(close(c4["random_floor"], floor, 1e-6), f"C4 random floor {c4['random_floor']} != {floor}")
        check(abs(c4["excess_over_random"] - (expect - floor)) <= VAR_TOL, "C4 excess over random")
    else:
        check(c4["status"] == "pending", "C4 must be pending without MoE layers")
    for name in ("C1", "C2", "C3", "C5"):
        check(agg["constants"][name]["status"] == "pending" and agg["constants"][name]["value"] is None,
              f"{name} must be pending with no value")
    check(checked > 0, "no matrix was compared")
    return checked


def check_identical(a, b):
    a, b = Path(a), Path(b)
    with h5py.File(a / "vindex.h5", "r") as ha, h5py.File(b / "vindex.h5", "r") as hb:
        names_a, names_b = [], []
        ha.visit(names_a.append)
        hb.visit(names_b.append)
        check(names_a == names_b, f"HDF5 trees differ: {set(names_a) ^ set(names_b)}")
        for name in [""] + names_a:
            oa, ob = (ha[name], hb[name]) if name else (ha, hb)
            if name and isinstance(oa, h5py.Dataset):
                check(np.array_equal(oa[...], ob[...], equal_nan=oa.dtype.kind == "f"), f"dataset {name} differs")
            keys = sorted(set(oa.attrs) | set(ob.attrs))
            for key in keys:
                if key in ("provenance", "run_id"):  # timestamps, rank counts; each run's own id
                    continue
                same = key in oa.attrs and key in ob.attrs and np.array_equal(np.asarray(oa.attrs[key]), np.asarray(ob.attrs[key]))
                check(same, f"attribute {key} of /{name} differs")
    for f in ("phase1_moe_svd.json", "phase2_router_svd.json", "phase3_routing_stats.json", "phase1_moe_svd_agg.json",
              "moe_config.json"):
        check((a / f).exists() == (b / f).exists(), f"{f} exists in one run only")
        if not (a / f).exists():
            continue
        ja, jb = json.loads((a / f).read_text()), json.loads((b / f).read_text())
        for j in (ja, jb):
            j.pop("provenance", None)
            j.pop("run_id", None)
        check(ja == jb, f"{f} differs")


def main(argv):
    if len(argv) != 4 or argv[1] not in ("reference", "identical"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "reference":
        n = check_reference(argv[2], argv[3])
        what = f"{n} matrices match the float64 reference"
    else:
        check_identical(argv[2], argv[3])
        what = "outputs are identical"
    if failures:
        print(f"FAILED: {len(failures)} check(s)", file=sys.stderr)
        for f in failures[:50]:
            print("  " + f, file=sys.stderr)
        return 1
    print(what)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
