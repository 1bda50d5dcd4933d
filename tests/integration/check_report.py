#!/usr/bin/env python3
"""The report command on real outputs: the page is self-contained (every image an embedded PNG,
nothing referenced outside the file), each embedded figure is the PNG file written beside it, the
tables carry the run's own numbers (phase1_moe_svd.json and phase1_moe_svd_agg.json), the
Marchenko-Pastur edge it draws matches the largest and smallest singular values of Gaussian random
matrices (numpy float64 SVD), several runs give an overlay, and bad inputs are clear errors that
leave no report behind.

  check_report.py --report tools/report/vindex_report.py --run OUT [--other OUT2] --work DIR
"""
import argparse
import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
from checks import check, finish


def run_report(script, *args):
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def check_self_contained(report_dir, label, min_figures, page_name="report.html"):
    """The page in report_dir: one file (every image an embedded PNG, nothing from the network, no
    script) whose figures are exactly the PNG files written beside it. Returns the page's text."""
    page = open(os.path.join(report_dir, page_name), encoding="utf-8").read()
    # Self-contained: every src/href is a data: URI; no link, script or stylesheet from elsewhere.
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page) + re.findall(r"(?:src|href)\s*=\s*'([^']*)'", page)
    check(refs and all(r.startswith("data:image/png;base64,") for r in refs), f"{label}: external references {refs[:3]}")
    check(not re.search(r"https?://", page), f"{label}: page mentions a network URL")
    check("<script" not in page.lower(), f"{label}: page has a script")
    figures = re.findall(r'<img id="([^"]+)" data-figure="[^"]+" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    check(len(figures) >= min_figures, f"{label}: {len(figures)} figures, expected at least {min_figures}")
    files = sorted(os.listdir(os.path.join(report_dir, "figures")))
    check(sorted(f + ".png" for f, _ in figures) == files, f"{label}: figures {files} vs page {[f for f, _ in figures]}")
    for figure_id, data in figures:
        png = base64.b64decode(data)
        check(png[:8] == b"\x89PNG\r\n\x1a\n", f"{label}: {figure_id} is not a PNG")
        path = os.path.join(report_dir, "figures", figure_id + ".png")
        check(os.path.exists(path) and open(path, "rb").read() == png, f"{label}: {figure_id}.png differs from the page")
    return page


def check_page(report_dir, runs, label, min_figures):
    page = check_self_contained(report_dir, label, min_figures)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    for run_dir in runs:
        summary = json.load(open(os.path.join(run_dir, "phase1_moe_svd.json")))
        agg = json.load(open(os.path.join(run_dir, "phase1_moe_svd_agg.json")))
        k = 64 if 64 in summary["k"] else min(summary["k"])
        # Every layer's median var@k appears in the layer table, as printed with 4 significant digits.
        for layer in summary["layers"]:
            value = layer["down_proj"].get(f"median_var{k}")
            if value is not None:
                check(f"{value:.4g}" in text, f"{label}: layer {layer['layer']} median var@{k} {value:.4g} not shown")
        routers_path = os.path.join(run_dir, "phase2_router_svd.json")
        if os.path.exists(routers_path):  # phase 2: every router's effective rank in the router table
            for router in json.load(open(routers_path))["layers"]:
                value = router["effective_rank"]
                check(f"{value:.4g}" in text, f"{label}: router of layer {router['layer']} effective rank {value:.4g} not shown")
            check("Routers (phase 2)" in text, f"{label}: no router section")
        c4 = agg["constants"]["C4"]
        if c4.get("value") is not None:
            check(f"{c4['value']:.4g}" in text, f"{label}: C4 {c4['value']:.4g} not shown")
        for key, c in agg["constants"].items():
            about = c.get("definition") or c.get("needs")
            check(about is None or about in text, f"{label}: {key}'s definition/needs not shown")
            check(f"{key}" in text and c["status"] in text, f"{label}: {key} status not shown")
        check(summary["model"] in text, f"{label}: model name not shown")


def check_marchenko_pastur(report_tool_dir):
    sys.path.insert(0, report_tool_dir)
    from report_data import marchenko_pastur_edges
    rng = np.random.default_rng(7)
    for rows, cols in ((2000, 500), (600, 1800), (1000, 1000)):
        w = rng.standard_normal((rows, cols)) * 0.023
        sv = np.linalg.svd(w, compute_uv=False)
        lower, upper = marchenko_pastur_edges(rows, cols, float(np.linalg.norm(w)))
        check(abs(sv[0] / upper - 1) < 0.02, f"MP upper edge {upper:.5g} vs largest singular value {sv[0]:.5g} ({rows}x{cols})")
        if rows != cols:
            check(abs(sv[-1] / lower - 1) < 0.05, f"MP lower edge {lower:.5g} vs smallest {sv[-1]:.5g} ({rows}x{cols})")
        else:
            check(lower == 0 and sv[-1] < 0.05 * upper, f"MP lower edge of a square matrix ({rows}x{cols})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True, help="tools/report/vindex_report.py")
    ap.add_argument("--run", required=True)
    ap.add_argument("--other", help="a second run for the overlay")
    ap.add_argument("--phase3-run", help="a run with phase 3 (its CKA figure and routing table)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--single-figures", type=int, default=4,
                    help="figures the single run's page must have at least (a dense model has no expert heatmap "
                         "or histogram)")
    ap.add_argument("--overlay-spectra", default="1:3,1:shared,0:dense", help="--spectra of the overlay (of --run)")
    ap.add_argument("--overlay-figures", type=int, default=7, help="figures the overlay must have at least")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    check_marchenko_pastur(os.path.dirname(os.path.abspath(args.report)))

    single = os.path.join(args.work, "single")
    rc, out, err = run_report(args.report, args.run, "--out", single)
    check(rc == 0 and out.strip() == f"report: {os.path.join(single, 'report.html')}", f"single: rc {rc}, {out!r} {err!r}")
    if rc == 0:
        check_page(single, [args.run], "single", args.single_figures)

    if args.other:
        both = os.path.join(args.work, "overlay")
        rc, out, err = run_report(args.report, args.run, args.other, "--out", both, "--spectra", args.overlay_spectra)
        check(rc == 0, f"overlay: rc {rc}, {err!r}")
        if rc == 0:
            check_page(both, [args.run, args.other], "overlay", args.overlay_figures)
            check("models overlaid" in open(os.path.join(both, "report.html")).read(), "overlay: no overlaid profile")

    if args.phase3_run:
        p3 = os.path.join(args.work, "phase3")
        rc, out, err = run_report(args.report, args.phase3_run, "--out", p3)
        check(rc == 0, f"phase 3: rc {rc}, {err!r}")
        if rc == 0:
            check_page(p3, [args.phase3_run], "phase 3", 5)
            page = open(os.path.join(p3, "report.html")).read()
            text = html.unescape(re.sub(r"<[^>]+>", " ", page))
            check('data-figure="cka"' in page, "phase 3: no CKA figure")
            stats = json.load(open(os.path.join(args.phase3_run, "phase3_routing_stats.json")))
            for layer in stats["layers"]:
                for key in ("load_entropy", "activation_sparsity"):
                    if layer.get(key) is not None:
                        check(f"{layer[key]:.4g}" in text, f"phase 3: layer {layer['layer']} {key} not shown")

    # Rerunning into the same directory replaces it whole.
    before = sorted(os.listdir(args.work))
    rc, _, err = run_report(args.report, args.run, "--out", single)
    check(rc == 0 and sorted(os.listdir(args.work)) == before, f"rerun: rc {rc} {err!r}")
    check(sorted(os.listdir(single)) == ["figures", "report.html"], f"rerun: {sorted(os.listdir(single))}")

    # Bad inputs: one clear message, the documented exit code, no report directory, no temporaries.
    not_vindex = os.path.join(args.work, "not_vindex")
    os.makedirs(not_vindex)
    broken = os.path.join(args.work, "broken_run")
    shutil.copytree(args.run, broken, ignore=shutil.ignore_patterns("report"))
    open(os.path.join(broken, "phase1_moe_svd_agg.json"), "w").write("{ not json")
    unfinished = os.path.join(args.work, "unfinished_commit")  # killed during its commit (output_files.hpp)
    shutil.copytree(args.run, unfinished, ignore=shutil.ignore_patterns("report"))
    os.rename(os.path.join(unfinished, "vindex-manifest.json"), os.path.join(unfinished, ".vindex-commit.json"))
    mixed = os.path.join(args.work, "mixed_set")  # one file of another run in place
    shutil.copytree(args.run, mixed, ignore=shutil.ignore_patterns("report"))
    shutil.copy(os.path.join(args.other, "moe_config.json"), os.path.join(mixed, "moe_config.json"))
    fifo = os.path.join(args.work, "fifo_in_set")  # a FIFO where a file belongs must not block the reader
    shutil.copytree(args.run, fifo, ignore=shutil.ignore_patterns("report"))
    os.remove(os.path.join(fifo, "phase1_moe_svd.json"))
    os.mkfifo(os.path.join(fifo, "phase1_moe_svd.json"))
    for name, argv, code, needle in (
            ("not a vindex output", [not_vindex], 3, "vindex.h5"),
            ("unfinished commit", [unfinished], 3, "unfinished commit"),
            ("a file of another run", [mixed], 3, "moe_config.json: does not match the manifest"),
            ("a FIFO in the set", [fifo], 3, "phase1_moe_svd.json: not a regular file"),
            ("missing directory", [os.path.join(args.work, "nope")], 3, "not a directory"),
            ("broken JSON", [broken], 3, "phase1_moe_svd_agg.json"),
            ("k not computed", [args.run, "--k", "7"], 2, "var@7"),
            ("bad --spectra", [args.run, "--spectra", "1:999"], 2, "--spectra"),
            ("unknown option", [args.run, "--colour", "red"], 2, "--colour")):
        target = os.path.join(args.work, "bad_" + re.sub(r"\W+", "_", name))
        rc, out, err = run_report(args.report, *argv, "--out", target)
        check(rc == code, f"{name}: exit {rc}, expected {code}")
        check(needle in err and out == "", f"{name}: message {err!r}")
        check(not os.path.exists(target), f"{name}: left {target}")
    leftovers = [f for f in os.listdir(args.work) if ".partial-" in f or ".old-" in f]
    check(not leftovers, f"temporaries left: {leftovers}")

    return finish("report")


if __name__ == "__main__":
    sys.exit(main())
