"""The comparison page's own figures (the profile overlay is figures.profile): var@k histograms of
several models overlaid, C1-C5 side by side, and the cross-model CKA (matrix on normalised depth,
each layer's best match). Each function returns a matplotlib Figure; nothing here reads files."""
import numpy as np

from compare_data import SEED_LINE, SEED_LINE_K
from figures import COLORS, plt
from report_data import k_column

CONSTANTS = ("C1", "C2", "C3", "C4", "C5")


def histograms(rows, k, bins=50):
    """Each model's var@k over the matrices its row counts (routed experts of its MoE layers, or its
    dense MLPs), as a density on [0, 1]; its random floor dotted, the seed's line dashed."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    edges = np.linspace(0.0, 1.0, bins + 1)
    for i, row in enumerate(rows):
        color = COLORS[i % len(COLORS)]
        col = k_column(row.run, k)
        by_index = {l.index: l for l in row.run.layers}
        values = np.concatenate([by_index[j].main_group().var_at_k[:, col] for j in row.layers
                                 if by_index[j].main_group() is not None])
        ax.hist(values, bins=edges, density=True, histtype="stepfilled", alpha=0.18, color=color)
        ax.hist(values, bins=edges, density=True, histtype="step", linewidth=1.5, color=color,
                label=f"{row.label} ({len(values)} matrices, {row.counted} layers)")
        if np.isfinite(row.floor):
            ax.axvline(row.floor, color=color, linestyle=":", linewidth=1.2)
    ax.plot([], [], color="grey", linestyle=":", label="random floor of each model's shapes (median)")
    if k == SEED_LINE_K:
        ax.axvline(SEED_LINE, color="crimson", linestyle="--", linewidth=1, label=f"the seed's line {SEED_LINE}")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"var@{k} of down_proj")
    ax.set_ylabel("density")
    ax.set_title(f"var@{k} of every counted matrix, models overlaid")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def constants(rows):
    """C1-C5 of each model side by side: a bar where measured, 'not measured' where not."""
    fig, axes = plt.subplots(1, len(CONSTANTS), figsize=(12, 3.6))
    for ax, key in zip(axes, CONSTANTS):
        name = ""
        for i, row in enumerate(rows):
            c = row.run.aggregate.get("constants", {}).get(key, {})
            name = c.get("name", name)
            if c.get("status") == "measured" and c.get("value") is not None:
                ax.bar(i, c["value"], color=COLORS[i % len(COLORS)])
                ax.annotate(f"{c['value']:.3g}", (i, c["value"]), ha="center", va="bottom", fontsize=7)
            else:
                ax.text(i, 0.04, "not measured", ha="center", va="bottom", fontsize=7, color="grey", rotation=90,
                        transform=ax.get_xaxis_transform())
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([str(i + 1) for i in range(len(rows))])
        ax.set_xlabel("model (row of the table)", fontsize=7)
        ax.set_title(f"{key}: {name}", fontsize=8)
        ax.margins(y=0.25)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def _edges(depth):
    """Cell edges around each normalised depth (midpoints; the ends half a step out)."""
    d = np.asarray(depth, dtype=float)
    if len(d) == 1:
        return np.array([d[0] - 0.5, d[0] + 0.5])
    mid = (d[1:] + d[:-1]) / 2
    return np.concatenate([[d[0] - (mid[0] - d[0])], mid, [d[-1] + (d[-1] - mid[-1])]])


def _cka_panel(ax, cka, pooling, estimator):
    a, b = cka.models
    matrix = np.array(cka.block(pooling, estimator)["matrix"], dtype=float)
    mesh = ax.pcolormesh(_edges(b["depth"]), _edges(a["depth"]), matrix, vmin=0.0, vmax=1.0, cmap="magma",
                         shading="flat")
    ax.plot([0, 1], [0, 1], color="cyan", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"normalised depth in {b['model']} ({b['layers']} representations)", fontsize=8)
    ax.set_ylabel(f"normalised depth in {a['model']} ({a['layers']})", fontsize=8)
    ax.set_title(f"{pooling} pooling, {estimator} CKA", fontsize=9)
    return mesh


def cka_matrix(cka, pooling, estimator):
    fig, ax = plt.subplots(figsize=(6.6, 5.6))
    mesh = _cka_panel(ax, cka, pooling, estimator)
    fig.colorbar(mesh, ax=ax, label="linear CKA")
    a, b = cka.models
    ax.set_title(f"CKA {a['model']} x {b['model']}: {pooling} pooling, {estimator}", fontsize=9)
    fig.tight_layout()
    return fig


def cka_small_multiples(cka, combos):
    """Every (pooling, estimator) of the file, two panels a row."""
    cols = min(2, len(combos))
    rows = (len(combos) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.8 * rows), squeeze=False)
    fig.subplots_adjust(hspace=0.4)
    mesh = None
    for ax, (pooling, estimator) in zip(axes.flat, combos):
        mesh = _cka_panel(ax, cka, pooling, estimator)
    for ax in list(axes.flat)[len(combos):]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=list(axes.flat), label="linear CKA", shrink=0.8)
    return fig


def cka_best_match(cka):
    """Per pooling: the normalised depth of each layer's best match in the other model, both ways,
    solid for the default estimator, dashed for the other; the diagonal is 'same depth'."""
    poolings = list(cka.data["poolings"])
    fig, axes = plt.subplots(1, len(poolings), figsize=(5.2 * len(poolings), 4.4), squeeze=False)
    a, b = cka.models
    default = cka.data["default_estimator"]
    for ax, pooling in zip(axes[0], poolings):
        for estimator in sorted(cka.data["poolings"][pooling], key=lambda e: e != default):
            block = cka.block(pooling, estimator)
            style = "-" if estimator == default else "--"
            for j, (key, who, other) in enumerate((("best_match_a", a, b), ("best_match_b", b, a))):
                entries = block[key]
                ax.plot([e["depth"] for e in entries], [e["match_depth"] for e in entries], linestyle=style,
                        marker="o", markersize=3, color=COLORS[j], linewidth=1.3,
                        label=f"{who['model']} -> best in {other['model']} ({estimator})")
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":", label="same normalised depth")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("normalised depth of the layer")
        ax.set_ylabel("normalised depth of its best match")
        ax.set_title(f"best match by CKA, {pooling} pooling", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
