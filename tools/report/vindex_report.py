#!/usr/bin/env python3
"""vindex_report: turns vindex_mpi output directories into PNG figures and one self-contained HTML
file (figures embedded, nothing fetched from the network).

  python3 tools/report/vindex_report.py demo-out                  # -> demo-out/report/report.html
  python3 tools/report/vindex_report.py kimi-out gemma-out --out compare --k 64

Figures: the per-layer var@k profile (median, q25-q75 band, dense layers, the dissolution
line; several directories are overlaid on normalised depth), a layer x expert heatmap of var@k, a
per-layer histogram, and spectra of chosen experts against the Marchenko-Pastur bulk edge; then
the constants with their definitions and status, and the per-layer table. Output is written under
a temporary name and renamed into place when complete, so a failed run leaves no partial report.

Exit codes: 0 success, 2 bad arguments, 3 an input directory that is not a complete vindex output.
"""
import argparse
import io
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import figures  # noqa: E402
import html_page  # noqa: E402
from report_data import ReportInputError, load_run  # noqa: E402

USAGE, BAD_INPUT = 2, 3


def log(message, prog="vindex_report"):
    """Plain lines, flushed: readable in a terminal and in Slurm logs alike."""
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


def png_bytes(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    figures.plt.close(fig)
    return buffer.getvalue()


def parse_picks(text, run):
    """"L:E,L:shared,L:dense" -> [(layer, group, expert)] checked against the run."""
    by_index = {l.index: l for l in run.layers}
    picks = []
    for token in text.split(","):
        layer_text, _, what = token.strip().partition(":")
        if not layer_text.isdigit() or not what:
            raise ValueError(f"--spectra: '{token}' is not LAYER:EXPERT, LAYER:shared or LAYER:dense")
        layer = by_index.get(int(layer_text))
        if layer is None:
            raise ValueError(f"--spectra: layer {layer_text} is not in {run.directory}")
        if what in ("shared", "dense"):
            group = layer.groups.get("shared_down_proj" if what == "shared" else "down_proj")
            if group is None or (what == "dense") != (layer.kind == "dense"):
                raise ValueError(f"--spectra: layer {layer_text} has no {what} matrix")
            picks.append((layer.index, group.name, int(group.expert_ids[0])))
            continue
        if not what.isdigit() or layer.main_group() is None or int(what) not in set(layer.main_group().expert_ids.tolist()):
            raise ValueError(f"--spectra: layer {layer_text} has no routed expert '{what}'")
        picks.append((layer.index, "down_proj", int(what)))
    return picks


def build(runs, k, spectra_text):
    """Renders every figure; returns ({file name: png bytes}, [(heading, html)])."""
    pngs, sections = {}, []
    several = len(runs) > 1

    def add(name, fig, caption, into):
        started = time.monotonic()
        pngs[name] = png_bytes(fig)
        log(f"figure {name} ({len(pngs[name]) // 1024} KiB, {time.monotonic() - started:.1f} s)")
        into.append(html_page.figure(name.removesuffix(".png"), pngs[name], caption))

    overview = []
    add("profile.png", figures.profile(runs, k),
        f"var@{k} per layer: median of the routed experts with the q25-q75 band, the shared expert, dense MLP layers "
        f"as squares, and the dissolution line at {runs[0].dissolution_threshold}" + (" -- models overlaid on normalised depth." if several else "."),
        overview)
    sections.append((f"var@{k} profile", "\n".join(overview)))

    for i, run in enumerate(runs):
        prefix = f"run{i + 1}_" if several else ""
        title = f" -- {run.model}" if several else ""
        parts = []
        if run.moe_layers():
            add(f"{prefix}heatmap.png", figures.heatmap(run, k),
                f"var@{k} of every routed expert (rows: MoE layers, columns: expert ids).", parts)
            add(f"{prefix}histogram.png", figures.histogram(run, k),
                f"Per-layer histograms of the routed experts' var@{k} (each column one layer), with the layer medians.",
                parts)
        else:
            parts.append("<p class='muted'>No MoE layer in this output: no expert heatmap or histogram.</p>")
        picks = parse_picks(spectra_text, run) if (spectra_text and i == 0) else figures.default_spectra_picks(run, k)
        if picks:
            add(f"{prefix}spectra.png", figures.spectra(run, picks),
                "Singular values of chosen matrices (log-log), each with the Marchenko-Pastur edges of an i.i.d. random "
                "matrix of the same shape and Frobenius norm: sigma_+- = ||W||_F (sqrt(rows) +- sqrt(cols)) / "
                "sqrt(rows cols). Spectra above the upper edge carry structure a random matrix would not.", parts)
        sections.append((f"Experts{title}", "\n".join(parts)))
        sections.append((f"Constants{title}", html_page.constants_table(run)))
        if run.routers:
            sections.append((f"Routers (phase 2){title}", html_page.router_table(run, k)))
        if run.phase3:
            parts = []
            add(f"{prefix}cka.png", figures.cka(run),
                "Linear CKA between the layers' MLP inputs on the sampled tokens; the outlined blocks are the stages "
                "that give C5 (docs/phase3.md).", parts)
            parts.append(html_page.routing_table(run))
            sections.append((f"Routing and activations (phase 3){title}", "\n".join(parts)))
        missing = [p for p in (2, 3) if p not in run.phases]
        if missing:
            names = {2: "phase 2 (router spectra)", 3: "phase 3 (routing loads, co-activation, CKA)"}
            sections.append((f"Router and routing{title}",
                             "<p class='muted'>Not in this output: " + "; ".join(names[p] for p in missing) +
                             ". vindex.h5 holds " + ", ".join(f"phase {p}" for p in run.phases) +
                             " only; these panels appear when those phases have been run.</p>"))
        sections.append((f"Layers{title}", html_page.layer_table(run, k)))
    return pngs, sections


def write_report(out_dir, pngs, page_html, page_name="report.html"):
    """Writes into a sibling temporary directory, then swaps it into place: all or nothing. An
    existing out_dir is replaced only when it is an earlier page of this name (or empty): never a run's
    outputs or anything else given by mistake."""
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir):
        if os.path.islink(out_dir) or not os.path.isdir(out_dir):
            raise ValueError(f"--out {out_dir} exists and is not a directory")
        if not set(os.listdir(out_dir)) <= {page_name, "figures"}:
            raise ValueError(f"--out {out_dir} holds other files than an earlier {page_name} and its figures; "
                             f"it would be replaced: choose a new directory")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = f"{out_dir}.partial-{os.getpid()}"
    old = f"{out_dir}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.makedirs(os.path.join(staging, "figures"))
        for name, data in pngs.items():
            with open(os.path.join(staging, "figures", name), "wb") as f:
                f.write(data)
        with open(os.path.join(staging, page_name), "w", encoding="utf-8") as f:
            f.write(page_html)
        if os.path.lexists(out_dir):
            os.rename(out_dir, old)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.lexists(old) and not os.path.lexists(out_dir):
            os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return os.path.join(out_dir, page_name)


def load_runs(directories, prog="vindex_report"):
    """Every output directory, checked against its manifest, in order (a line logged for each)."""
    runs = []
    for directory in directories:
        runs.append(load_run(directory))
        log(f"read {directory}: {runs[-1].model}, {len(runs[-1].layers)} layers", prog)
    return runs


def require_k(runs, k):
    for run in runs:
        if k not in run.k:
            raise ValueError(f"--k: var@{k} was not computed in {run.directory} (its k: {run.k})")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="vindex_report", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="OUTPUT_DIR", help="vindex_mpi output directories (--out of a run)")
    ap.add_argument("--out", help="report directory (default: OUTPUT_DIR/report of the first run); an earlier report "
                                  "there is replaced, any other content refused")
    ap.add_argument("--k", type=int, help="which var@k to show (default: 64 if computed, else the smallest k)")
    ap.add_argument("--spectra", help="matrices of the first run to plot, e.g. 3:17,3:shared,0:dense "
                                      "(default: the median-var@k expert of the first, middle and last MoE layer)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return USAGE if e.code else 0

    try:
        started = time.monotonic()
        runs = load_runs(args.runs)
        k = args.k if args.k is not None else (64 if all(64 in r.k for r in runs) else min(runs[0].k))
        require_k(runs, k)
        pngs, sections = build(runs, k, args.spectra)
        out_dir = args.out or os.path.join(args.runs[0], "report")
        path = write_report(out_dir, pngs, html_page.page(runs, k, sections))
    except ReportInputError as e:
        log(f"error: {e}")
        return BAD_INPUT
    except ValueError as e:
        log(f"error: {e}")
        return USAGE
    log(f"{len(pngs)} figures in {time.monotonic() - started:.1f} s")
    print(f"report: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
