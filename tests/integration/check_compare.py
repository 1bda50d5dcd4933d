#!/usr/bin/env python3
"""The comparison page (tools/report/vindex_compare.py) on real outputs, read back and checked
against numbers computed here with numpy from the inputs (not hard-coded):

- each model's median var@k, IQR and random floor from vindex.h5 (var_at_k and
  random_floor_var_at_k of each counted layer's down_proj; the tool reads phase1_moe_svd.json), its
  median equal to C4 where the run measured C4, the floor near the var@k of seeded Gaussian matrices
  of the same shapes, the two classes by the rule the page states;
- C1-C5 as phase1_moe_svd_agg.json gives them, a measured value only where measured;
- precision: the --precision text with its source, the storage dtypes of moe_config.json;
- cross-model CKA from a synthetic cross_cka.json written here from seeded random matrices: matched
  depth (nearest rows to 0, 0.25, 0.5, 0.75, 1; j = round(d (layers_b - 1))) and each layer's best
  match, every pooling and estimator, against the matrices;
- the seed card's table only inside its own block (with --seed-card), never otherwise;
- a page with one number changed fails these checks (the checks can fail); bad arguments exit 2,
  bad inputs 3, naming the file, leaving nothing behind.

  check_compare.py --compare tools/report/vindex_compare.py --run OUT1 --run OUT2 ... --work DIR
                   [--seed-card ../shared/seed/kimi-k2-vindex-card.md] [--cka DIR_WITH_CROSS_CKA_JSON]...
"""
import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
from check_report import check_self_contained
from checks import check, finish

SPAN = re.compile(r'<span data-key="([^"]+)" data-run="([^"]+)" data-value="([^"]+)">([^<]*)</span>')
TOLERANCE = 0.05          # the tool's default --floor-tolerance, passed explicitly below
TARGETS = (0.0, 0.25, 0.5, 0.75, 1.0)


def run_tool(script, *args):
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def spans(page):
    """{(key, where): (exact value, shown text)} of every machine-readable number on the page."""
    out = {}
    for key, where, value, shown in SPAN.findall(page):
        out[(key, where)] = (float(value), html.unescape(shown))
    return out


def expected_row(run_dir):
    """The model-table numbers, from vindex.h5 with numpy."""
    with h5py.File(os.path.join(run_dir, "vindex.h5"), "r") as h5:
        ks = [int(v) for v in np.atleast_1d(h5.attrs["k"])]
        col = ks.index(64)
        layers = []
        for name in sorted(h5["phase1"]):
            g = h5[f"phase1/{name}"]
            kind = g.attrs["kind"]
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            d = g["down_proj"]
            layers.append((kind, float(np.median(d["var_at_k"][:, col])), float(d["random_floor_var_at_k"][col]),
                           tuple(int(v) for v in d.attrs["shape"])))
    counted = [l for l in layers if l[0] == "moe"] or [l for l in layers if l[0] == "dense"]
    medians = np.array([l[1] for l in counted])
    row = {"median": float(np.median(medians)), "q25": float(np.percentile(medians, 25)),
           "q75": float(np.percentile(medians, 75)), "floor": float(np.median([l[2] for l in counted]))}
    row["ratio"] = row["median"] / row["floor"]
    row["excess"] = row["median"] - row["floor"]
    row["line_class"] = "dissolved" if row["median"] < 0.15 else "non-dissolved"
    r = row["ratio"]
    row["floor_class"] = "below floor" if r < 1 - TOLERANCE else "at floor" if r <= 1 + TOLERANCE else "above floor"
    row["moe"] = counted[0][0] == "moe"
    row["shapes"] = {l[3]: l[2] for l in counted}
    return row


def var_at_k(matrix, k):
    s2 = np.linalg.svd(matrix, compute_uv=False) ** 2
    return s2[:k].sum() / s2.sum()


def check_floor_by_simulation(shapes, k=64, samples=4):
    """The floor the page uses is the var@k Gaussian matrices of that shape have (within 3%)."""
    rng = np.random.default_rng(11)
    for (rows, cols), floor in shapes.items():
        if min(rows, cols) > 1600:
            continue
        simulated = np.mean([var_at_k(rng.standard_normal((rows, cols)), k) for _ in range(samples)])
        check(abs(simulated / floor - 1) < 0.03, f"floor {floor:.4g} of {rows}x{cols} vs Gaussian {simulated:.4g}")


def make_synthetic_cka(directory, names, layers, seed=5):
    """A cross_cka.json in the documented layout from seeded random matrices (not a reference)."""
    rng = np.random.default_rng(seed)
    la, lb = layers
    depth_a, depth_b = [i / max(la - 1, 1) for i in range(la)], [j / max(lb - 1, 1) for j in range(lb)]
    poolings = {}
    for pooling in ("mean", "last"):
        poolings[pooling] = {}
        for estimator in ("debiased", "plain"):
            near = np.exp(-((np.array(depth_a)[:, None] - np.array(depth_b)[None, :]) ** 2) / 0.05)
            m = np.clip(0.6 * near + 0.4 * rng.random((la, lb)), 0, 1)
            best_a = [{"layer": i, "depth": depth_a[i], "match": int(np.argmax(m[i])),
                       "match_depth": depth_b[int(np.argmax(m[i]))], "cka": float(m[i].max())} for i in range(la)]
            best_b = [{"layer": j, "depth": depth_b[j], "match": int(np.argmax(m[:, j])),
                       "match_depth": depth_a[int(np.argmax(m[:, j]))], "cka": float(m[:, j].max())} for j in range(lb)]
            matched = [{"depth": depth_a[i], "layer_a": i, "layer_b": int(round(depth_a[i] * (lb - 1))),
                        "cka": float(m[i, int(round(depth_a[i] * (lb - 1)))])} for i in range(la)]
            poolings[pooling][estimator] = {"matrix": m.tolist(), "best_match_a": best_a, "best_match_b": best_b,
                                            "matched_depth": matched}
    data = {"format": "vindex-cross-cka", "version": 1, "default_estimator": "debiased", "prompts": 48,
            "prompt_set_sha256": "0" * 64,
            "models": [{"model": names[0], "capture": "synthetic", "layers": la, "hidden_size": 64, "depth": depth_a},
                       {"model": names[1], "capture": "synthetic", "layers": lb, "hidden_size": 96, "depth": depth_b}],
            "poolings": poolings}
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "cross_cka.json"), "w") as f:
        json.dump(data, f)
    return data


def model_problems(page, runs, precision, cka_files):
    """Everything numeric on the page against the inputs; a list of problems (empty when right)."""
    problems = []
    got = spans(page)
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))

    def same(key, where, expected, rel=1e-9, what=""):
        if (key, where) not in got:
            problems.append(f"{what or key} of {where}: not on the page")
            return
        value, shown = got[(key, where)]
        if not abs(value - expected) <= rel * max(abs(expected), 1e-12):
            problems.append(f"{what or key} of {where}: page {value!r}, expected {expected!r}")
        if shown != f"{value:.4g}" and shown != f"{value:.3g}":
            problems.append(f"{what or key} of {where}: shows {shown!r} for {value!r}")

    for i, run_dir in enumerate(runs):
        want = expected_row(run_dir)
        for key in ("median", "q25", "q75", "floor", "ratio", "excess"):
            same(key, str(i), want[key], what=f"run {i + 1} {key}")
        for key in ("line_class", "floor_class"):
            m = re.search(rf'<span data-key="{key}" data-run="{i}">([^<]*)</span>', page)
            if not m or m.group(1) != want[key]:
                problems.append(f"run {i + 1} {key}: page {m.group(1) if m else None!r}, expected {want[key]!r}")
        agg = json.load(open(os.path.join(run_dir, "phase1_moe_svd_agg.json")))
        c4 = agg["constants"]["C4"]
        if want["moe"] and c4["status"] == "measured" and abs(c4["value"] - want["median"]) > 1e-12:
            problems.append(f"run {i + 1}: median {want['median']} is not C4 {c4['value']} (same definition)")
        for key, c in agg["constants"].items():
            if c["status"] == "measured":
                same(key, str(i), c["value"], what=f"run {i + 1} {key}")
            elif (key, str(i)) in got:
                problems.append(f"run {i + 1} {key}: a value shown for a {c['status']} constant")
        config = json.load(open(os.path.join(run_dir, "moe_config.json")))
        dtypes = {part["down_proj"]["dtype"] for layer in config["layers"] for part in layer.values()
                  if isinstance(part, dict) and "down_proj" in part}
        if i not in precision:
            for dtype in dtypes:
                if dtype not in text:
                    problems.append(f"run {i + 1}: storage dtype {dtype} not shown")
    for i, value in precision.items():
        if f"{value} (--precision)" not in text:
            problems.append(f"run {i + 1}: --precision {value!r} not shown with its source")

    for n, data in enumerate(cka_files, start=1):
        la, lb = data["models"][0]["layers"], data["models"][1]["layers"]
        depth_a = np.array(data["models"][0]["depth"])
        rows = []
        for t in TARGETS:
            i = int(np.argmin(np.abs(depth_a - t)))
            if i not in rows:
                rows.append(i)
        shown_rows = sorted({int(w.split(":")[1]) for (k, w) in got if k.startswith("cka_") and w.startswith(f"cka{n}:")})
        if shown_rows != sorted(rows):
            problems.append(f"CKA {n}: matched-depth rows {shown_rows}, expected {sorted(rows)}")
        for pooling, by_e in data["poolings"].items():
            for estimator, block in by_e.items():
                m = np.array(block["matrix"])
                for i in rows:
                    # The file's pair (its rounding of d (layers_b - 1) at a tie is its own), checked here.
                    entry = block["matched_depth"][i]
                    j = entry["layer_b"]
                    if entry["layer_a"] != i or abs(j - depth_a[i] * (lb - 1)) > 0.5 + 1e-9 or entry["cka"] != m[i, j]:
                        problems.append(f"CKA {n}: {pooling} {estimator} matched_depth[{i}] {entry} is not the "
                                        f"matrix's pair at depth {depth_a[i]}")
                    same(f"cka_{pooling}_{estimator}", f"cka{n}:{i}:{j}", m[i, j], rel=1e-12,
                         what=f"CKA {n} {pooling} {estimator} at depth {depth_a[i]:.3g}")
                for side, mm, count in (("a", m, la), ("b", m.T, lb)):
                    for r in range(count):
                        same(f"best_{side}_{pooling}_{estimator}", f"cka{n}:{r}", float(mm[r].max()), rel=1e-12,
                             what=f"CKA {n} best match of {side} layer {r} ({pooling}, {estimator})")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", required=True, help="tools/report/vindex_compare.py")
    ap.add_argument("--run", action="append", required=True, help="an output directory (two or more)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed-card", help="the seed card, for --seed-claims")
    ap.add_argument("--cka", action="append", default=[],
                    help="a directory with a real cross_cka.json, drawn after the synthetic one (repeatable)")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    runs = args.run

    models = [json.load(open(os.path.join(r, "phase1_moe_svd.json")))["model"] for r in runs]
    cka_dir = os.path.join(args.work, "cka_synthetic")
    cka = make_synthetic_cka(cka_dir, models[:2], (7, 13))
    precision = {0: "bf16, trained (as the user says)"}
    out = os.path.join(args.work, "compare")
    ckas = [cka] + [json.load(open(os.path.join(d, "cross_cka.json"))) for d in args.cka]
    argv = [*runs, "--out", out, "--precision", f"1={precision[0]}", "--floor-tolerance", str(TOLERANCE)]
    for d in [cka_dir] + args.cka:
        argv += ["--cka", d]
    if args.seed_card:
        argv += ["--seed-claims", args.seed_card]
    rc, stdout, stderr = run_tool(args.compare, *argv)
    check(rc == 0 and stdout.strip() == f"compare: {os.path.join(out, 'compare.html')}", f"compare: rc {rc} {stdout!r} {stderr!r}")
    if rc != 0:
        return finish("compare")
    page = check_self_contained(out, "compare", 6, "compare.html")
    for figure_id in ["profile", "histogram", "constants"] + [f"cka{n}_{what}" for n in range(1, len(ckas) + 1)
                                                              for what in ("matrix", "best_match")]:
        check(f'data-figure="{figure_id}"' in page, f"compare: no figure {figure_id}")
    for problem in model_problems(page, runs, precision, ckas):
        check(False, problem)
    for run_dir in runs:
        check_floor_by_simulation(expected_row(run_dir)["shapes"])

    # The seed card's numbers: only in their own block, after every measured number.
    block_at = page.find("id='seed-claims'")
    if args.seed_card:
        check(block_at > 0 and "The seed card's claims (not measured here)" in page, "seed claims block missing")
        block = page[block_at:]
        check(not SPAN.search(block), "a measured number inside the seed card's block")
        check("Kimi-K2-Instruct" in block and "0.088" in block, "the card's table is not in its block")
        check("0.088" not in page[:block_at], "a seed card number outside its block")

    # The checks can fail: one number changed on the page is caught.
    first = SPAN.search(page)
    wrong = float(first.group(3)) * 1.01
    tampered = page.replace(first.group(0), first.group(0).replace(f'data-value="{first.group(3)}">{first.group(4)}',
                                                                   f'data-value="{wrong!r}">{wrong:.4g}'), 1)
    check(tampered != page and model_problems(tampered, runs, precision, ckas),
          "the checks did not notice a changed number")

    # A rerun replaces the directory whole (the browser test opens the page left there).
    rc, _, stderr = run_tool(args.compare, *argv)
    check(rc == 0 and sorted(os.listdir(out)) == ["compare.html", "figures"], f"rerun: rc {rc}, {sorted(os.listdir(out))}")

    # Without --cka and --seed-claims: neither appears, and every measured number is as before.
    plain = os.path.join(args.work, "compare_plain")
    rc, _, stderr = run_tool(args.compare, *runs, "--out", plain)
    page = open(os.path.join(plain, "compare.html")).read() if rc == 0 else ""
    check(rc == 0 and "seed-claims" not in page and "Cross-model CKA" not in page, f"plain compare: rc {rc} {stderr!r}")
    if rc == 0:
        for problem in model_problems(page, runs, {}, []):
            check(False, "plain compare: " + problem)

    # Bad arguments (2) and inputs (3): one message naming what is wrong, nothing left behind.
    no_json = os.path.join(args.work, "cka_empty")
    os.makedirs(no_json)
    bad_format = os.path.join(args.work, "cka_bad_format")
    os.makedirs(bad_format)
    json.dump(dict(cka, format="other"), open(os.path.join(bad_format, "cross_cka.json"), "w"))
    bad_shape = os.path.join(args.work, "cka_bad_shape")
    os.makedirs(bad_shape)
    broken = json.loads(json.dumps(cka))
    broken["poolings"]["last"]["plain"]["matrix"].pop()
    json.dump(broken, open(os.path.join(bad_shape, "cross_cka.json"), "w"))
    for name, argv, code, needle in (
            ("not a directory", [os.path.join(args.work, "nope")], 3, "not a directory"),
            ("no cross_cka.json", [runs[0], "--cka", no_json], 3, "cross_cka.json: missing"),
            ("wrong format", [runs[0], "--cka", bad_format], 3, "vindex-cross-cka"),
            ("wrong matrix shape", [runs[0], "--cka", bad_shape], 3, "poolings.last.plain.matrix"),
            ("unknown run in --precision", [runs[0], "--precision", "9=fp8"], 2, "--precision"),
            ("not RUN=TEXT", [runs[0], "--label", "x"], 2, "--label"),
            ("k not computed", [runs[0], "--k", "7"], 2, "var@7"),
            ("bad tolerance", [runs[0], "--floor-tolerance", "2"], 2, "--floor-tolerance"),
            ("missing card", [runs[0], "--seed-claims", os.path.join(args.work, "none.md")], 2, "--seed-claims")):
        target = os.path.join(args.work, "bad_" + re.sub(r"\W+", "_", name))
        rc, stdout, stderr = run_tool(args.compare, *argv, "--out", target)
        check(rc == code, f"{name}: exit {rc}, expected {code} ({stderr.strip()})")
        check(needle in stderr and stdout == "", f"{name}: message {stderr!r}")
        check(not os.path.exists(target), f"{name}: left {target}")
    rc, _, stderr = run_tool(args.compare, runs[0])
    check(rc == 2 and "--out" in stderr, f"no --out: exit {rc}")
    # --out naming a run's outputs (or anything but an earlier page) is refused, the directory intact.
    before = sorted(os.listdir(runs[1]))
    rc, _, stderr = run_tool(args.compare, *runs, "--out", runs[1])
    check(rc == 2 and "choose a new directory" in stderr and sorted(os.listdir(runs[1])) == before,
          f"--out a run's directory: exit {rc} ({stderr.strip()}), its files {sorted(os.listdir(runs[1]))}")
    leftovers = [f for f in os.listdir(args.work) if ".partial-" in f or ".old-" in f]
    check(not leftovers, f"temporaries left: {leftovers}")
    return finish("compare")


if __name__ == "__main__":
    sys.exit(main())
