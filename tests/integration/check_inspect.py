#!/usr/bin/env python3
"""`vindex_mpi inspect --json` against the checkpoint's own files, read here independently
(struct + json, no vindex code): tensor counts, bytes, dtypes and shapes per name pattern, layers
and experts against config.json, bytes per kind of matrix, and the estimates against the rates
they cite. Also Kimi-K2-Instruct's full layout (sparse files, tools/make_sparse_kimi_k2.py) and
the failure paths (unknown architecture, missing directory, bad option).

  check_inspect.py --binary B --fixtures tests/fixtures --sparse-generator tools/make_sparse_kimi_k2.py --work DIR
"""
import argparse
import collections
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

from checks import check, finish


def close(a, b, rel=1e-9):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def read_headers(model):
    """{tensor name: (dtype, shape, bytes)} from every shard's header."""
    index_path = os.path.join(model, "model.safetensors.index.json")
    if os.path.exists(index_path):
        shards = sorted(set(json.load(open(index_path))["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    tensors = {}
    for shard in shards:
        with open(os.path.join(model, shard), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            tensors[name] = (info["dtype"], info["shape"], end - begin)
    return tensors, len(shards)


def pattern_of(name):
    parts, out, seen = name.split("."), [], False
    for i, part in enumerate(parts):
        if re.fullmatch(r"[0-9]+", part):
            out.append("{E}" if seen and parts[i - 1] == "experts" else "{N}" if seen else "{L}")
            seen = True
        else:
            out.append(part)
    return ".".join(out)


def inspect(binary, model, *extra):
    proc = subprocess.run([binary, "inspect", "--model", model, "--json", *extra], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def check_inventory(binary, model, label):
    rc, out, err = inspect(binary, model, "--cores", "16", "--gpus", "8")
    check(rc == 0, f"{label}: exit {rc}: {err.strip()}")
    if rc != 0:
        return None
    report = json.loads(out)
    tensors, n_shards = read_headers(model)
    config = json.load(open(os.path.join(model, "config.json")))

    check(report["files"]["shards"] == n_shards, f"{label}: shards {report['files']['shards']} != {n_shards}")
    check(report["files"]["tensors"] == len(tensors), f"{label}: tensors {report['files']['tensors']} != {len(tensors)}")
    total = sum(t[2] for t in tensors.values())
    check(report["files"]["tensor_bytes"] == total, f"{label}: tensor bytes {report['files']['tensor_bytes']} != {total}")

    expected = collections.defaultdict(lambda: {"tensors": 0, "bytes": 0, "dtypes": collections.Counter(), "shapes": set()})
    for name, (dtype, shape, nbytes) in tensors.items():
        e = expected[pattern_of(name)]
        e["tensors"] += 1
        e["bytes"] += nbytes
        e["dtypes"][dtype] += 1
        e["shapes"].add(tuple(shape))
    got = {p["pattern"]: p for p in report["tensor_patterns"]}
    check(set(got) == set(expected), f"{label}: patterns differ: {sorted(set(got) ^ set(expected))}")
    for pattern, e in expected.items():
        p = got.get(pattern)
        if p is None:
            continue
        check(p["tensors"] == e["tensors"] and p["bytes"] == e["bytes"], f"{label}: {pattern}: counts/bytes")
        check(dict(p["dtypes"]) == dict(e["dtypes"]), f"{label}: {pattern}: dtypes {p['dtypes']} != {dict(e['dtypes'])}")
        want_shape = list(next(iter(e["shapes"]))) if len(e["shapes"]) == 1 else None
        check(p["shape"] == want_shape, f"{label}: {pattern}: shape {p['shape']} != {want_shape}")

    # Layers and experts from config.json (DeepSeek-V3 rules: the first first_k_dense_replace layers
    # dense, then every moe_layer_freq-th layer MoE).
    layout = report["layout"]
    n_layers = config["num_hidden_layers"]
    first_dense = config.get("first_k_dense_replace", 0)
    freq = config.get("moe_layer_freq", 1)
    moe = [l for l in range(n_layers) if l >= first_dense and l % freq == 0]
    check(layout["num_hidden_layers"] == n_layers, f"{label}: layers")
    check(layout["moe_layers"] == moe, f"{label}: moe layers {layout['moe_layers']} != {moe}")
    check(layout["dense_layers"] == [l for l in range(n_layers) if l not in moe], f"{label}: dense layers")
    check(layout["n_routed_experts"] == config["n_routed_experts"], f"{label}: experts")

    # Bytes per kind of matrix, from the names (weight plus its block scale).
    kinds = collections.defaultdict(lambda: [0, 0])
    for name, (dtype, shape, nbytes) in tensors.items():
        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.(experts\.\d+\.|shared_experts\.|)(gate|up|down)_proj\.weight", name)
        if m and int(m.group(1)) < n_layers:
            role = "routed" if m.group(2).startswith("experts") else "shared" if m.group(2) else "dense"
            scale = tensors.get(name + "_scale_inv")
            k = kinds[f"{role} {m.group(3)}_proj"]
            k[0] += 1
            k[1] += nbytes + (scale[2] if scale else 0)
        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.gate\.weight", name)
        if m and int(m.group(1)) < n_layers:
            bias = tensors.get(f"model.layers.{m.group(1)}.mlp.gate.e_score_correction_bias")
            kinds["router"][0] += 1
            kinds["router"][1] += nbytes + (bias[2] if bias else 0)
    got_kinds = {g["group"]: [g["matrices"], g["bytes"]] for g in report["matrix_bytes"]}
    check(got_kinds == dict(kinds), f"{label}: matrix bytes {got_kinds} != {dict(kinds)}")
    check(report["other_bytes"] == total - sum(v[1] for v in kinds.values()), f"{label}: other bytes")

    # Estimates: the phase-1 matrices are every layer's down_proj (dense, routed, shared); the GPU
    # rate of the seed's method is 201.6 ms per 7168 x 2048 (docs/gpu-baselines.md), scaled by m*n^2.
    downs = [(tensors[n][1], tensors[n][2] + (tensors.get(n + "_scale_inv") or (0, 0, 0))[2]) for n in tensors
             if re.fullmatch(r"model\.layers\.(\d+)\.mlp\.(experts\.\d+\.|shared_experts\.|)down_proj\.weight", n)
             and int(n.split(".")[2]) < n_layers]
    est = report["estimate"]
    check(est["matrices"] == len(downs), f"{label}: estimate matrices {est['matrices']} != {len(downs)}")
    check(est["bytes"] == sum(b for _, b in downs), f"{label}: estimate bytes")
    seed = sum(0.2016 * max(s) * min(s) ** 2 / (7168 * 2048 ** 2) for s, _ in downs)
    check(close(est["gpu_seed_method_seconds"], seed), f"{label}: seed estimate {est['gpu_seed_method_seconds']} != {seed}")
    check(close(est["cpu_wall_seconds"], est["cpu_core_seconds"] / 16), f"{label}: cpu wall")
    check(est["cpu_core_seconds"] > 0 and est["gpu_gram_cusolver_seconds"] > 0, f"{label}: positive estimates")
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--sparse-generator", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    check_inventory(args.binary, os.path.join(args.fixtures, "kimi_k2_tiny"), "kimi_k2_tiny")
    check_inventory(args.binary, os.path.join(args.fixtures, "steep_mixed"), "steep_mixed")
    # Every family saved by transformers: family and layer kinds as the fixture's reference gives them.
    hf_root = os.path.join(args.fixtures, "hf")
    for name in sorted(os.listdir(hf_root)):
        ref_path = os.path.join(hf_root, name, "reference.json")
        if not os.path.exists(ref_path):
            continue
        ref = json.load(open(ref_path))
        rc, out, err = inspect(args.binary, os.path.join(hf_root, name))
        if check(rc == 0, f"{name}: exit {rc}: {err.strip()}"):
            layout = json.loads(out)["layout"]
            check(layout["family"] == ref["family"], f"{name}: family {layout['family']}, reference {ref['family']}")
            check(layout["moe_layers"] == ref["moe_layers"] and layout["dense_layers"] == ref["dense_layers"],
                  f"{name}: MoE layers {layout['moe_layers']}, reference {ref['moe_layers']}")

    # Kimi-K2-Instruct's real layout: 61 shards, 139,583 tensors, headers only.
    sparse = os.path.join(args.work, "kimi-k2-sparse")
    subprocess.run([sys.executable, args.sparse_generator, "--out", sparse], check=True, stdout=subprocess.DEVNULL)
    kimi = check_inventory(args.binary, sparse, "kimi-k2 layout")
    if kimi:
        routed = {g["group"]: g for g in kimi["matrix_bytes"]}["routed down_proj"]
        check(routed["matrices"] == 60 * 384, f"kimi-k2: routed down_proj {routed['matrices']} != 23040")
        # docs/gpu-baselines.md: 23,040 experts at the seed's 201.6 ms is 77 GPU-minutes (plus shared and dense).
        minutes = kimi["estimate"]["gpu_seed_method_seconds"] / 60
        check(77 <= minutes <= 79, f"kimi-k2: seed estimate {minutes:.1f} GPU-minutes, expected about 77-78")

    # Text output: the same facts, readable.
    proc = subprocess.run([args.binary, "inspect", "--model", os.path.join(args.fixtures, "kimi_k2_tiny")],
                          capture_output=True, text=True, timeout=60)
    check(proc.returncode == 0 and "Layers        4: dense 0; MoE 1-3" in proc.stdout
          and "model.layers.{L}.mlp.experts.{E}.down_proj.weight" in proc.stdout
          and "Estimated phase-1 time (28 down_proj matrices" in proc.stdout, f"text output:\n{proc.stdout}")
    # The note under the estimates tells the truth about the GPU lines: a CUDA backend exists but
    # has never run on a GPU, and the rates come from docs/gpu-baselines.md, which is in the repository.
    note = " ".join(proc.stdout.split())
    check("no CUDA backend" not in note and "--backend cuda" in note and "never run on a GPU" in note
          and "no GPU line is a measured performance of this tool" in note, f"GPU note:\n{proc.stdout}")
    cited = re.findall(r"[\w./-]*gpu-baselines\.md", note)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(args.fixtures)))
    check(cited == ["docs/gpu-baselines.md"] and os.path.isfile(os.path.join(repo, cited[0])),
          f"GPU note cites {cited}, not an existing docs/gpu-baselines.md")

    # An unknown architecture: the inventory is still printed, then one error naming config.json
    # and the known families; exit 3.
    unknown = os.path.join(args.work, "unknown_arch")
    shutil.copytree(os.path.join(args.fixtures, "kimi_k2_tiny"), unknown)
    config = json.load(open(os.path.join(unknown, "config.json")))
    config["model_type"], config["architectures"] = "mystery_moe", ["MysteryForCausalLM"]
    json.dump(config, open(os.path.join(unknown, "config.json"), "w"))
    rc, out, err = inspect(args.binary, unknown)
    check(rc == 3, f"unknown architecture: exit {rc}")
    check(rc == 3 and json.loads(out)["layout"] is None and len(json.loads(out)["tensor_patterns"]) > 0,
          "unknown architecture: inventory not printed")
    check(err.count("error:") == 1 and "config.json" in err and "mystery_moe" in err and "deepseek" in err.lower(),
          f"unknown architecture: message {err!r}")

    rc, out, err = inspect(args.binary, os.path.join(args.work, "no_such_model"))
    check(rc == 3 and out == "" and err.count("error:") == 1 and "no_such_model" in err, f"missing model: {rc} {err!r}")
    rc, out, err = inspect(args.binary, unknown, "--gpus", "0")
    check(rc == 2 and out == "" and "--gpus" in err, f"bad option: {rc} {err!r}")

    return finish("inspect")


if __name__ == "__main__":
    sys.exit(main())
