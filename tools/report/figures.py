"""The report's figures, drawn with matplotlib (Agg: no display needed). Each function takes loaded
runs (report_data.RunOutput) and returns a matplotlib Figure; nothing here reads files."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from report_data import k_column, marchenko_pastur_edges  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _threshold_line(ax, threshold):
    """The dissolution line (phase1_moe_svd_agg.json's dissolution_threshold), horizontal."""
    ax.axhline(threshold, color="crimson", linestyle="--", linewidth=1, label=f"dissolution line {threshold}")


def _series(run, k, role_key=None):
    """(layers, median, q25, q75) of the routed experts of MoE layers, from phase1_moe_svd.json."""
    xs, med, lo, hi = [], [], [], []
    for layer in run.moe_layers():
        s = layer.summary if role_key is None else (layer.summary or {}).get(role_key)
        if not s or s.get(f"median_var{k}") is None:
            continue
        xs.append(layer.index)
        med.append(s[f"median_var{k}"])
        lo.append(s[f"q25_var{k}"])
        hi.append(s[f"q75_var{k}"])
    return np.array(xs, dtype=float), np.array(med), np.array(lo), np.array(hi)


def _floor_series(run, k):
    """(layers, random floor of var@k) of the layers the profile draws (README, "The random floor")."""
    pairs = [(l.index, l.summary.get(f"random_floor_var{k}")) for l in run.layers if l.summary]
    pairs = [p for p in pairs if p[1] is not None]
    return np.array([p[0] for p in pairs], dtype=float), np.array([p[1] for p in pairs], dtype=float)


def profile(runs, k, labels=None, floors=False, normalised=None):
    """Per-layer var@k: median of the routed experts with the q25-q75 band, shared experts and dense
    layers marked, the dissolution line. Several runs (or normalised=True): on normalised depth,
    labelled with `labels` (default: the model names); floors=True adds each layer's random floor."""
    fig, ax = plt.subplots(figsize=(9, 4.2) if not floors else (12, 4.8))
    several = len(runs) > 1 if normalised is None else normalised
    labels = labels or [run.model for run in runs]
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        depth = max(run.num_hidden_layers - 1, 1)
        scale = (lambda x: x / depth) if several else (lambda x: x)
        name = labels[i]
        label = name if several else "routed experts: median"
        xs, med, lo, hi = _series(run, k)
        if len(xs):
            ax.fill_between(scale(xs), lo, hi, color=color, alpha=0.22, linewidth=0,
                            label=None if several else "routed experts: q25-q75")
            ax.plot(scale(xs), med, color=color, marker="o", markersize=3.5, linewidth=1.6, label=label)
        sx, smed, _, _ = _series(run, k, "shared")
        if len(sx):
            ax.plot(scale(sx), smed, color=color, linestyle=":", marker="^", markersize=3.5, linewidth=1,
                    label=f"{name}: shared expert" if several else "shared expert")
        dense = [(l.index, l.summary.get(f"median_var{k}")) for l in run.layers
                 if l.kind == "dense" and l.summary and l.summary.get(f"median_var{k}") is not None]
        if dense:
            dx = np.array([d[0] for d in dense], dtype=float)
            ax.scatter(scale(dx), [d[1] for d in dense], marker="s", s=36, facecolor="white", edgecolor=color,
                       zorder=3, label=f"{name}: dense MLP layer" if several else "dense MLP layer")
            if several and not len(xs) and len(dense) > 1:  # a dense model: its layers joined as its profile
                ax.plot(scale(dx), [d[1] for d in dense], color=color, linewidth=1.2)
        if floors:
            fx, fv = _floor_series(run, k)
            if len(fx):
                ax.plot(scale(fx), fv, color=color, linestyle="--", linewidth=0.9, drawstyle="steps-mid",
                        label=f"{name}: random floor of its shapes")
    _threshold_line(ax, runs[0].dissolution_threshold)
    ax.set_xlabel("normalised depth (layer / (layers - 1))" if several else "layer")
    if not several:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(f"var@{k} of down_proj")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"var@{k} profile across layers" + (" (models overlaid)" if several else f": {runs[0].model}"))
    ax.grid(alpha=0.3)
    if floors:  # many entries: beside the axes, not over the curves
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def heatmap(run, k):
    """Layer x expert var@k of the routed experts."""
    col = k_column(run, k)
    moe = [l for l in run.moe_layers() if l.main_group() is not None]
    n_experts = max(int(l.main_group().expert_ids.max()) + 1 for l in moe)
    grid = np.full((len(moe), n_experts), np.nan)
    for row, layer in enumerate(moe):
        g = layer.main_group()
        grid[row, g.expert_ids] = g.var_at_k[:, col]
    fig, ax = plt.subplots(figsize=(9, max(2.6, min(9.0, 0.18 * len(moe) + 1.8))))
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xlabel("expert")
    ax.set_ylabel("MoE layer")
    step = max(1, len(moe) // 20)
    ax.set_yticks(range(0, len(moe), step))
    ax.set_yticklabels([str(moe[i].index) for i in range(0, len(moe), step)])
    fig.colorbar(image, ax=ax, label=f"var@{k}")
    ax.set_title(f"var@{k} of every routed expert's down_proj: {run.model}")
    fig.tight_layout()
    return fig


def cka(run):
    """Phase 3: linear CKA between every pair of layers' MLP inputs, with the stages of C5 outlined."""
    layers = run.phase3["cka"]["layers"]
    matrix = np.array([[np.nan if v is None else v for v in row] for row in run.phase3["cka"]["matrix"]], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, interpolation="nearest", cmap="magma")
    step = max(1, len(layers) // 16)
    ticks = list(range(0, len(layers), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(layers[i]) for i in ticks])
    ax.set_yticks(ticks)
    ax.set_yticklabels([str(layers[i]) for i in ticks])
    for stage in run.phase3["stages"]:
        a, b = layers.index(stage["first_layer"]), layers.index(stage["last_layer"])
        ax.add_patch(matplotlib.patches.Rectangle((a - 0.5, a - 0.5), b - a + 1, b - a + 1, fill=False,
                                                  edgecolor="cyan", linewidth=1.5))
    ax.set_xlabel("layer")
    ax.set_ylabel("layer")
    fig.colorbar(image, ax=ax, label="linear CKA")
    ax.set_title(f"CKA of the MLP inputs, {len(run.phase3['stages'])} stage(s): {run.model}")
    fig.tight_layout()
    return fig


def histogram(run, k, bins=40):
    """One histogram of routed-expert var@k per MoE layer, as the columns of an image (each column
    normalised to its largest bin), with the layer medians and the dissolution line."""
    col = k_column(run, k)
    moe = [l for l in run.moe_layers() if l.main_group() is not None]
    values = np.concatenate([l.main_group().var_at_k[:, col] for l in moe])
    lo, hi = float(values.min()), float(values.max())
    pad = max((hi - lo) * 0.05, 1e-3)
    edges = np.linspace(max(0.0, lo - pad), min(1.0, hi + pad), bins + 1)
    counts = np.stack([np.histogram(l.main_group().var_at_k[:, col], bins=edges)[0] for l in moe], axis=1)
    density = counts / np.maximum(counts.max(axis=0, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(9, 4))
    x_edges = np.arange(len(moe) + 1) - 0.5
    mesh = ax.pcolormesh(x_edges, edges, density, cmap="Blues", shading="flat")
    ax.plot(range(len(moe)), [np.median(l.main_group().var_at_k[:, col]) for l in moe], color="black",
            marker=".", linewidth=1, label="median")
    if edges[0] <= run.dissolution_threshold <= edges[-1]:
        _threshold_line(ax, run.dissolution_threshold)
    step = max(1, len(moe) // 20)
    ax.set_xticks(range(0, len(moe), step))
    ax.set_xticklabels([str(moe[i].index) for i in range(0, len(moe), step)])
    ax.set_xlabel("MoE layer")
    ax.set_ylabel(f"var@{k}")
    fig.colorbar(mesh, ax=ax, label="experts (fraction of the layer's fullest bin)")
    ax.set_title(f"Distribution of var@{k} over each layer's routed experts: {run.model}")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def default_spectra_picks(run, k):
    """The routed expert with the median var@k in the first, middle and last MoE layers (the dense
    layer's MLP when there is no MoE layer)."""
    col = k_column(run, k)
    moe = [l for l in run.moe_layers() if l.main_group() is not None]
    if not moe:
        return [(l.index, "down_proj", int(l.main_group().expert_ids[0])) for l in run.layers[:1] if l.main_group()]
    chosen = sorted({0, len(moe) // 2, len(moe) - 1})
    picks = []
    for i in chosen:
        g = moe[i].main_group()
        order = np.argsort(g.var_at_k[:, col], kind="stable")
        picks.append((moe[i].index, "down_proj", int(g.expert_ids[order[len(order) // 2]])))
    return picks


def spectra(run, picks):
    """Singular values of chosen matrices on log-log axes, each with the Marchenko-Pastur bulk edges
    of an i.i.d. random matrix of the same shape and Frobenius norm."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    by_index = {l.index: l for l in run.layers}
    for i, (layer_index, group_name, expert) in enumerate(picks):
        g = by_index[layer_index].groups[group_name]
        row = int(np.nonzero(g.expert_ids == expert)[0][0])
        sv = g.singular_values[row].astype(np.float64)
        sv = sv[sv > 0]
        color = COLORS[i % len(COLORS)]
        who = "dense MLP" if g.role == "dense" else "shared expert" if g.role == "shared" else f"expert {expert}"
        ax.loglog(np.arange(1, len(sv) + 1), sv, color=color, linewidth=1.4,
                  label=f"layer {layer_index} {who} ({g.shape[0]}x{g.shape[1]})")
        lower, upper = marchenko_pastur_edges(g.shape[0], g.shape[1], float(g.frobenius_norm[row]))
        ax.axhline(upper, color=color, linestyle="--", linewidth=0.9)
        if lower > 0:
            ax.axhline(lower, color=color, linestyle=":", linewidth=0.9)
    ax.plot([], [], color="grey", linestyle="--", label="Marchenko-Pastur bulk edge (random, same shape and norm)")
    ax.plot([], [], color="grey", linestyle=":", label="Marchenko-Pastur lower edge")
    ax.set_xlabel("index i (descending)")
    ax.set_ylabel("singular value sigma_i")
    ax.set_title(f"Spectra of chosen experts: {run.model}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig
