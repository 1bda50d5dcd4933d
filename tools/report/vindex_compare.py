#!/usr/bin/env python3
"""vindex_compare: several vindex_mpi output directories on one self-contained page (and PNGs): a
table of the models (training and storage precision, median var@k with its IQR, the random floor of
their shapes, the class against the seed's 0.15 line and against the floor), the per-layer profiles
on normalised depth with IQR bands and floors, the var@k histograms overlaid, C1-C5 side by side, and
the cross-model CKA of each --cka directory.

  python3 tools/report/vindex_compare.py kimi-out smollm2-out --out cmp \\
      --precision kimi-out="fp8 (native, per its card)" --storage 2="Q4_1 GGUF" --cka cka-out

RUN in --label/--precision/--storage is a position (1, 2, ...), an output directory as given, its
last path component, or a model name that names one run only. --seed-claims CARD.md adds the seed
card's own table in a block of its own, marked as claims not measured here. Output: OUT/compare.html
and OUT/figures/*.png, written under a temporary name and renamed into place when complete.

Exit codes: 0 success, 2 bad arguments, 3 an input that is not a complete vindex output (or a
cross_cka.json that is not one), the message naming the file.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare_data  # noqa: E402
import compare_figures  # noqa: E402
import compare_page  # noqa: E402
import figures  # noqa: E402
import html_page  # noqa: E402
from report_data import ReportInputError  # noqa: E402
from vindex_report import BAD_INPUT, USAGE, load_runs, log, png_bytes, require_k, write_report  # noqa: E402

PROG = "vindex_compare"
PAGE = "compare.html"


def build(rows, k, tolerance, ckas, claims):
    """Renders every figure; returns ({file name: png bytes}, [(heading, html)])."""
    pngs, sections = {}, []
    runs = [row.run for row in rows]

    def add(name, fig, caption):
        started = time.monotonic()
        pngs[name] = png_bytes(fig)
        log(f"figure {name} ({len(pngs[name]) // 1024} KiB, {time.monotonic() - started:.1f} s)", PROG)
        return html_page.figure(name.removesuffix(".png"), pngs[name], caption)

    sections.append(("Models (measured by vindex_mpi)",
                     compare_page.model_table(rows, k, tolerance) + compare_page.rules(k, tolerance)))
    sections.append((f"var@{k} profiles on normalised depth", add(
        "profile.png", figures.profile(runs, k, labels=[r.label for r in rows], floors=True, normalised=True),
        f"var@{k} per layer on normalised depth (layer / (layers - 1)): the routed experts' median with the q25-q75 "
        f"band, shared experts dotted, dense MLP layers as squares, each model's random floor for its layers' "
        f"shapes dashed, and the dissolution line at {runs[0].dissolution_threshold}.")))
    sections.append((f"var@{k} histograms", add(
        "histogram.png", compare_figures.histograms(rows, k),
        f"var@{k} of every matrix each row counts, as densities on [0, 1], overlaid; each model's random floor "
        f"(median over its counted layers) dotted" + (f", the seed's line at {compare_data.SEED_LINE} dashed."
                                                       if k == compare_data.SEED_LINE_K else "."))))
    sections.append(("Constants C1-C5 side by side",
                     compare_page.constants_side_by_side(rows) +
                     add("constants.png", compare_figures.constants(rows),
                         "C1-C5 where measured (phase 1 gives C4 on a model with MoE layers and 64 in --k; phase 3 "
                         "gives C1, C2, C3 and C5); the numbers under each panel are the rows of the model table.")))
    for n, cka in enumerate(ckas, start=1):
        a, b = cka.models
        combos = cka.combos()
        default = combos[0]
        parts = [compare_page.cka_intro(cka),
                 add(f"cka{n}_matrix.png", compare_figures.cka_matrix(cka, *default),
                     f"Linear CKA between every representation of {a['model']} (rows) and of {b['model']} (columns) "
                     f"on normalised depth, {default[0]} pooling, {default[1]} estimator; the dotted line is equal "
                     f"depth.")]
        if len(combos) > 1:
            parts.append(add(f"cka{n}_all.png", compare_figures.cka_small_multiples(cka, combos),
                             "The same matrix for every pooling and estimator in the file."))
        parts.append(add(f"cka{n}_best_match.png", compare_figures.cka_best_match(cka),
                         "Each layer's best match in the other model (the layer of maximum CKA), as normalised "
                         "depths, both ways; solid: the default estimator, dashed: the other."))
        parts.append("<h3>CKA at matched normalised depth</h3>" + compare_page.cka_matched_table(cka, n))
        parts.append(compare_page.cka_best_table(cka, n, "best_match_a"))
        parts.append(compare_page.cka_best_table(cka, n, "best_match_b"))
        sections.append((f"Cross-model CKA {n}: {a['model']} x {b['model']}", "\n".join(parts)))
    sections.append(("Runs", html_page.run_table(runs)))
    if claims:
        sections.append(("The seed card (claims, not measurements)", compare_page.seed_claims_block(claims)))
    return pngs, sections


def intro(k):
    return [f"<p class='muted'>Every number above the seed card's block comes from the vindex_mpi output "
            f"directories named below (phase1_moe_svd.json, phase1_moe_svd_agg.json, vindex.h5, moe_config.json) "
            f"or from the cross_cka.json files given; var@{k} is the share of the squared Frobenius norm of a "
            f"down_proj in its {k} largest singular values.</p>"]


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="OUTPUT_DIR", help="vindex_mpi output directories (--out of a run)")
    ap.add_argument("--out", required=True, help="directory for compare.html and figures/ (an earlier page there is replaced, "
                                                        "any other content refused)")
    ap.add_argument("--k", type=int, help="which var@k (default: 64 if every run computed it)")
    ap.add_argument("--label", action="append", metavar="RUN=TEXT", help="the run's name on the page")
    ap.add_argument("--precision", action="append", metavar="RUN=TEXT", help="the run's training precision")
    ap.add_argument("--storage", action="append", metavar="RUN=TEXT",
                    help="the run's storage precision (default: read from its moe_config.json)")
    ap.add_argument("--floor-tolerance", type=float, default=compare_data.DEFAULT_FLOOR_TOLERANCE,
                    help="t in the 'at floor' rule: median/floor within [1 - t, 1 + t] (default %(default)s)")
    ap.add_argument("--cka", action="append", metavar="DIR", help="a directory holding cross_cka.json (repeatable)")
    ap.add_argument("--seed-claims", metavar="CARD.md",
                    help="add the seed card's model table, apart and marked as claims not measured here")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return USAGE if e.code else 0

    try:
        started = time.monotonic()
        if not 0 <= args.floor_tolerance < 1:
            raise ValueError(f"--floor-tolerance: {args.floor_tolerance} is not in [0, 1)")
        runs = load_runs(args.runs, PROG)
        k = args.k if args.k is not None else (64 if all(64 in r.k for r in runs) else None)
        if k is None:
            shared = sorted(set.intersection(*(set(r.k) for r in runs)))
            raise ValueError("--k: not every run computed var@64 (" + "; ".join(f"{r.directory}: {r.k}" for r in runs) +
                             (f"); choose one they share: {shared}" if shared else "); they share no k"))
        require_k(runs, k)
        labels = compare_data.run_labels(runs, compare_data.resolve_assignments("--label", args.label, runs))
        training = compare_data.resolve_assignments("--precision", args.precision, runs)
        storage = compare_data.resolve_assignments("--storage", args.storage, runs)
        claims = compare_data.seed_claims(args.seed_claims) if args.seed_claims else None
        ckas = [compare_data.load_cross_cka(d) for d in args.cka or []]
        rows = [compare_data.model_row(run, labels[i], k, training.get(i), storage.get(i), args.floor_tolerance)
                for i, run in enumerate(runs)]
        pngs, sections = build(rows, k, args.floor_tolerance, ckas, claims)
        title = "vindex comparison: " + ", ".join(labels)
        page = html_page.document(title, [f"<h1>{html_page.esc(title)}</h1>"] + intro(k), sections)
        path = write_report(args.out, pngs, page, PAGE)
    except ReportInputError as e:
        log(f"error: {e}", PROG)
        return BAD_INPUT
    except ValueError as e:
        log(f"error: {e}", PROG)
        return USAGE
    log(f"{len(pngs)} figures in {time.monotonic() - started:.1f} s", PROG)
    print(f"compare: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
