"""The one-file HTML page: figures embedded as data: URIs, tables of the runs, constants and layers.
No script, no stylesheet or font from the network: the file opens offline and can be mailed."""
import base64
import html
import math

STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; } figure { margin: 1.2em 0; } img { max-width: 100%; height: auto; }
figcaption { font-size: 0.88em; color: #555; } .muted { color: #777; } .pending { color: #a60; }
.measured { color: #161; } code { background: #f5f5f5; padding: 0 0.2em; }
.claims { border: 2px dashed #a60; background: #fff8ee; padding: 0.2em 1em 0.6em; margin: 1.2em 0; }
"""


def esc(value):
    return html.escape(str(value), quote=True)


def number(value, digits=4):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def table(header, rows, numeric=()):
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<td{cls}>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def figure(figure_id, png_bytes, caption):
    data = base64.b64encode(png_bytes).decode("ascii")
    return (f'<figure><img id="{esc(figure_id)}" data-figure="{esc(figure_id)}" alt="{esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)}</figcaption></figure>')


def run_table(runs):
    rows = []
    for run in runs:
        p, c = run.provenance, run.moe_config
        c4 = run.aggregate.get("constants", {}).get("C4", {})
        rows.append([esc(run.model), esc(c.get("family", "")),
                     f"{len(run.layers)} of {run.num_hidden_layers} (dense {esc(len([l for l in run.layers if l.kind == 'dense']))}, "
                     f"MoE {esc(len(run.moe_layers()))})",
                     esc(c.get("n_routed_experts", "")), esc(", ".join(str(k) for k in run.k)),
                     number(c4.get("value")), esc(run.aggregate["spectral_class"]) if run.aggregate.get("spectral_class") else "&ndash;",
                     esc(f"{p.get('tool', '')} ({p.get('git_commit', '')})"),
                     esc(f"{p.get('ranks', '')} x {p.get('threads_per_rank', '')}, {p.get('backend', '')}"),
                     esc(p.get("started_utc", "")), number(p.get("elapsed_seconds"), 3)])
    return table(["model", "family", "layers analysed", "routed experts", "k", "C4", "spectral class", "tool",
                  "ranks x threads, backend", "started (UTC)", "seconds"], rows, numeric=(3, 5, 10))


def constants_table(run):
    rows = []
    for key, c in run.aggregate.get("constants", {}).items():
        status = c.get("status", "")
        value = number(c.get("value")) if c.get("value") is not None else "&ndash;"
        if c.get("range"):
            value += f" <span class='muted'>[{number(c['range'][0])}, {number(c['range'][1])}]</span>"
        about = c.get("definition") or ("needs: " + c["needs"] if c.get("needs") else "")
        rows.append([esc(key), esc(c.get("name", "")), f"<span class='{esc(status)}'>{esc(status)}</span>", value,
                     esc(about)])
    return table(["constant", "name", "status", "value", "definition (or what it needs)"], rows, numeric=(3,))


def layer_table(run, k):
    rows = []
    for layer in run.layers:
        for label, s in (("", layer.summary), ("shared", (layer.summary or {}).get("shared"))):
            if not s:
                continue
            kind = layer.kind if not label else "shared"
            shape = "x".join(str(v) for v in s.get("shape", []))
            rows.append([str(layer.index), esc(kind), str(s.get("n_matrices", "")), esc(shape),
                         number(s.get(f"median_var{k}")), number(s.get(f"q25_var{k}")), number(s.get(f"q75_var{k}")),
                         number(s.get("median_sv_ratio")), number(s.get("median_top_sv")),
                         number(s.get("median_stable_rank")), number(s.get("median_effective_rank"))])
    return table(["layer", "kind", "n", "shape", f"median var@{k}", "q25", "q75", "sigma0/sigma1", "top sigma",
                  "stable rank", "effective rank"], rows, numeric=tuple(range(4, 11)))


def router_table(run, k):
    """Phase 2: each MoE layer's router spectrum statistics and its bias, from phase2_router_svd.json."""
    rows = []
    for r in (run.routers or {}).get("layers", []):
        bias = r.get("bias") or {}
        rows.append([str(r["layer"]), esc("x".join(str(v) for v in r.get("shape", []))), number(r.get(f"var{k}")),
                     number(r.get("effective_rank")), number(r.get("sv_ratio")), number(r.get("top_sv")),
                     number(r.get("alpha")), number(bias.get("mean")) if bias else "&ndash;",
                     number(bias.get("std")) if bias else "&ndash;"])
    return table(["layer", "shape", f"var@{k}", "effective rank", "sigma0/sigma1", "top sigma", "alpha", "bias mean",
                  "bias std"], rows, numeric=tuple(range(2, 9)))


def routing_table(run):
    """Phase 3: each layer's routing and activation statistics, from phase3_routing_stats.json."""
    rows = []
    for e in run.phase3["layers"]:
        rows.append([str(e["layer"]), esc(e["kind"]), number(e.get("load_entropy")), number(e.get("load_cv")),
                     number(e.get("max_over_mean_load")), str(e.get("never_chosen", "")),
                     number(e.get("topk_weight_concentration")), number(e.get("selection_agreement")),
                     number(e.get("activation_sparsity")), number(e.get("gate_coherence"))])
    return table(["layer", "kind", "load entropy", "load CV", "max/mean load", "never chosen", "top-1 weight share",
                  "agreement with the engine", "activation sparsity (C1)", "gate coherence (C3)"], rows,
                 numeric=tuple(range(2, 10)))


def page(runs, k, sections):
    """sections: list of (heading, html) in order."""
    title = "vindex report: " + ", ".join(run.model for run in runs)
    body = [f"<h1>{esc(title)}</h1>",
            f"<p class='muted'>Singular-value spectra of every expert's down_proj (phase 1), computed by vindex_mpi; "
            f"var@{k} is the share of the squared Frobenius norm in the {k} largest singular values. "
            f"Below the dissolution line of {runs[0].dissolution_threshold} a layer's spectrum is called dissolved "
            f"(flat).</p>",
            "<h2>Runs</h2>", run_table(runs)]
    return document(title, body, sections)


def document(title, body, sections):
    """The whole file: `body` (html strings) then each (heading, html) section under its h2."""
    body = list(body)
    for heading, content in sections:
        body.append(f"<h2>{esc(heading)}</h2>")
        body.append(content)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) +
            "\n</body></html>\n")
