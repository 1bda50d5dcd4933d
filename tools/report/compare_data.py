"""The numbers of the comparison page, from loaded runs (report_data.RunOutput) and the optional
inputs beside them: one row per model (median var@k over its layers, the spread, the random floor of
its shapes, the two classes), each model's precision as the user gave it or as its output records it,
the cross-model CKA files (cross_cka.json) and the seed card's own table. Rules are stated once here
and printed on the page from the same constants."""
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from report_data import ReportInputError, _read_regular

SEED_LINE = 0.15           # the seed card's dissolution line, for var@64
SEED_LINE_K = 64
DEFAULT_FLOOR_TOLERANCE = 0.05
CKA_TARGET_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)

CLASS_RULE = (f"Against the seed's line: 'dissolved' when the model's median var@{SEED_LINE_K} is below {SEED_LINE}, "
              f"'non-dissolved' otherwise (shown only for k = {SEED_LINE_K}, the k the line is drawn for). Against the "
              "random floor (the Marchenko-Pastur var@k of an i.i.d. Gaussian matrix of the layer's shape): with "
              "r = median / floor and tolerance t, 'below floor' when r < 1 - t, 'at floor' when 1 - t <= r <= 1 + t, "
              "'above floor' when r > 1 + t.")


@dataclass
class Precision:
    training: str
    training_source: str
    storage: str
    storage_source: str


@dataclass
class ModelRow:
    label: str
    run: object                    # report_data.RunOutput
    counted: str                   # "MoE" | "dense": which layers the row summarises
    layers: list                   # indices of those layers
    layer_medians: np.ndarray
    median: float
    q25: float
    q75: float
    floor: float                   # median over the counted layers of their random floor
    floors_by_shape: dict          # "rows x cols" -> floor
    precision: Precision

    @property
    def ratio(self):
        return self.median / self.floor if self.floor else math.nan

    @property
    def excess(self):
        return self.median - self.floor


def line_class(median, k):
    if k != SEED_LINE_K or median is None or not math.isfinite(median):
        return None
    return "dissolved" if median < SEED_LINE else "non-dissolved"


def floor_class(ratio, tolerance):
    if ratio is None or not math.isfinite(ratio):
        return None
    if ratio < 1 - tolerance:
        return "below floor"
    return "at floor" if ratio <= 1 + tolerance else "above floor"


def counted_layers(run):
    """The layers a model's row summarises: its MoE layers (as C4 and the seed do) when it has any,
    else its dense layers; each with the seed field of its down_proj (routed experts / dense MLP)."""
    moe = run.moe_layers()
    return ("MoE", moe) if moe else ("dense", [l for l in run.layers if l.kind == "dense"])


def storage_precision(run):
    """What the output records of how the weights were stored: the down_proj tensors' dtypes (and
    encodings) from moe_config.json's layers, with its quantization block when there is one."""
    seen = []
    for layer in run.moe_config.get("layers", []):
        for part in ("mlp", "expert", "shared_expert"):
            entry = (layer.get(part) or {}).get("down_proj") if isinstance(layer.get(part), dict) else None
            if entry and entry.get("dtype"):
                text = entry["dtype"] + (f" ({entry['encoding']})" if entry.get("encoding") not in (None, "plain") else "")
                if text not in seen:
                    seen.append(text)
    q = run.moe_config.get("quantization")
    if isinstance(q, dict) and q:
        seen.append("quantization: " + ", ".join(f"{key} {value}" for key, value in q.items()))
    return ", ".join(seen) if seen else "not recorded"


def model_row(run, label, k, user_training, user_storage, tolerance):
    counted, layers = counted_layers(run)
    medians, floors, shapes = [], [], {}
    for layer in layers:
        s = layer.summary or {}
        if s.get(f"median_var{k}") is None:
            continue
        medians.append(float(s[f"median_var{k}"]))
        floor = s.get(f"random_floor_var{k}")
        if floor is not None:
            floors.append(float(floor))
            shapes["x".join(str(v) for v in s.get("shape", []))] = float(floor)
    if not medians:
        raise ReportInputError(f"{os.path.join(run.directory, 'phase1_moe_svd.json')}: no layer has median_var{k}")
    medians = np.array(medians)
    stored = storage_precision(run)
    precision = Precision(
        training=user_training if user_training is not None else "not given",
        training_source="--precision" if user_training is not None else "the outputs do not record it",
        storage=user_storage if user_storage is not None else stored,
        storage_source="--storage" if user_storage is not None else "moe_config.json: down_proj dtype, quantization")
    return ModelRow(label=label, run=run, counted=counted, layers=[l.index for l in layers], layer_medians=medians,
                    median=float(np.median(medians)), q25=float(np.percentile(medians, 25)),
                    q75=float(np.percentile(medians, 75)), floor=float(np.median(floors)) if floors else math.nan,
                    floors_by_shape=shapes, precision=precision)


def run_labels(runs, given):
    """Each run's label: --label's value, else its model name, made unique with its directory's name."""
    names = [run.model for run in runs]
    labels = []
    for i, run in enumerate(runs):
        if i in given:
            labels.append(given[i])
        elif names.count(run.model) > 1:
            labels.append(f"{run.model} ({os.path.basename(os.path.normpath(run.directory))})")
        else:
            labels.append(run.model)
    if len(set(labels)) != len(labels):
        raise ValueError(f"--label: two runs would share a label ({labels}); give each its own")
    return labels


def resolve_assignments(option, items, runs):
    """'RUN=TEXT' items -> {run index: TEXT}; RUN is a 1-based position, an output directory as given,
    its last path component, or a model name that names one run only. ValueError otherwise."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{option}: '{item}' is not RUN=TEXT")
        matches = [i for i, run in enumerate(runs)
                   if key in (str(i + 1), run.directory, os.path.normpath(run.directory),
                              os.path.basename(os.path.normpath(run.directory)), run.model)]
        matches = sorted(set(matches))
        if len(matches) != 1:
            raise ValueError(f"{option}: '{key}' names {'no run' if not matches else 'several runs'}; use a position "
                             f"(1-{len(runs)}), an output directory or a model name of: "
                             + ", ".join(run.model for run in runs))
        if matches[0] in out:
            raise ValueError(f"{option}: run '{key}' given twice")
        out[matches[0]] = value
    return out


# --- Cross-model CKA (cross_cka.json, format vindex-cross-cka; README, "The comparison page") ----

@dataclass
class CrossCKA:
    path: str
    data: dict

    @property
    def models(self):
        return self.data["models"]

    def combos(self):
        """(pooling, estimator) pairs present, the default estimator's mean pooling first."""
        pairs = [(p, e) for p, by_e in self.data["poolings"].items() for e in by_e]
        first = ("mean", self.data["default_estimator"])
        return sorted(pairs, key=lambda pe: (pe != first, pe[0] != "mean", pe[1] != self.data["default_estimator"], pe))

    def block(self, pooling, estimator):
        return self.data["poolings"][pooling][estimator]


def _need(cond, path, what):
    if not cond:
        raise ReportInputError(f"{path}: {what}")


def load_cross_cka(directory):
    path = os.path.join(directory, "cross_cka.json")
    if not os.path.isdir(directory):
        raise ReportInputError(f"{directory}: not a directory (--cka names the directory holding cross_cka.json)")
    try:
        data = json.loads(_read_regular(path))
    except ValueError as e:
        raise ReportInputError(f"{path}: cannot be read as JSON: {e}") from None
    _need(isinstance(data, dict) and data.get("format") == "vindex-cross-cka", path, "'format' is not 'vindex-cross-cka'")
    _need(data.get("version") == 1, path, f"version {data.get('version')!r}, this page reads version 1")
    models = data.get("models")
    _need(isinstance(models, list) and len(models) == 2, path, "'models' must list the two models compared")
    for m in models:
        _need(isinstance(m, dict) and isinstance(m.get("layers"), int) and m["layers"] >= 1 and
              isinstance(m.get("depth"), list) and len(m["depth"]) == m["layers"], path,
              f"model {m.get('model') if isinstance(m, dict) else m!r}: 'depth' must have one entry per layer")
    poolings = data.get("poolings")
    _need(isinstance(poolings, dict) and poolings, path, "'poolings' is missing or empty")
    _need(data.get("default_estimator") in ("debiased", "plain"), path, "'default_estimator' is not debiased or plain")
    _need("mean" in poolings and data["default_estimator"] in poolings["mean"], path,
          f"no mean pooling with the default estimator {data['default_estimator']!r}")
    rows, cols = models[0]["layers"], models[1]["layers"]
    for pooling, by_estimator in poolings.items():
        for estimator, block in by_estimator.items():
            where = f"poolings.{pooling}.{estimator}"
            try:
                matrix = np.array(block["matrix"], dtype=float)
            except (KeyError, TypeError, ValueError) as e:
                raise ReportInputError(f"{path}: {where}.matrix cannot be read: {e}") from None
            _need(matrix.shape == (rows, cols), path, f"{where}.matrix is {matrix.shape}, expected ({rows}, {cols})")
            for key, n in (("best_match_a", rows), ("best_match_b", cols), ("matched_depth", rows)):
                _need(isinstance(block.get(key), list) and len(block[key]) == n, path,
                      f"{where}.{key} must have {n} entries")
    return CrossCKA(path=path, data=data)


def matched_depth_rows(cka, targets=CKA_TARGET_DEPTHS):
    """For each target depth the matched_depth entry (of the default estimator, mean pooling) at
    the nearest available depth (the first on a tie), distinct entries only."""
    entries = cka.block("mean", cka.data["default_estimator"])["matched_depth"]
    chosen = []
    for t in targets:
        best = min(range(len(entries)), key=lambda i: (abs(entries[i]["depth"] - t), i))
        if best not in [c[1] for c in chosen]:
            chosen.append((t, best))
    return [(t, entries[i]) for t, i in chosen]


def cka_at(cka, pooling, estimator, layer_a, layer_b):
    return cka.block(pooling, estimator)["matrix"][layer_a][layer_b]


# --- The seed card's claims (shown only with --seed-claims, apart from every measured number) ----

def seed_claims(path):
    """The seed card's model table (the first markdown table with a var@64 column) as written, cells
    unchanged but for markdown emphasis; and the file's SHA-256."""
    try:
        raw = _read_regular(path)
    except ReportInputError as e:
        raise ValueError(f"--seed-claims: {e}") from None
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and "var@64" in line and i + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[i + 1]):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([re.sub(r"[*]", "", c).strip() for c in row.strip("|").split("|")])
            note = next((l.strip("* ") for l in lines[i + 2 + len(rows):i + 6 + len(rows)] if l.startswith("*")), "")
            return {"path": path, "sha256": hashlib.sha256(raw).hexdigest(), "header": header, "rows": rows,
                    "note": note}
    raise ValueError(f"--seed-claims: {path} holds no markdown table with a var@64 column")
