"""Reads one vindex_mpi output directory (vindex.h5 and the JSON files, README "Output files") into
plain numpy/dict structures for the figures and the page. A directory that is not a complete
vindex output is a ReportInputError naming the file and what is wrong: the set must be the one its
manifest (vindex-manifest.json) names, every file of its size and SHA-256 and carrying its run id."""
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field

import h5py
import numpy as np


class ReportInputError(Exception):
    """Bad or incomplete input directory; the message names the file."""


@dataclass
class Group:
    """One HDF5 group of matrices (a layer's down_proj or shared_down_proj)."""
    name: str
    role: str                      # "dense" | "routed" | "shared"
    shape: tuple                   # (rows, cols)
    expert_ids: np.ndarray         # int32 [n]
    var_at_k: np.ndarray           # float64 [n, len(k)]
    singular_values: np.ndarray    # float32 [n, min(rows, cols)], descending
    frobenius_norm: np.ndarray     # float64 [n]


@dataclass
class Layer:
    index: int
    kind: str                      # "dense" | "moe"
    groups: dict = field(default_factory=dict)   # group name -> Group
    summary: dict = None           # the layer's entry of phase1_moe_svd.json

    def main_group(self):
        return self.groups.get("down_proj")


@dataclass
class RunOutput:
    directory: str
    model: str
    k: list
    layers: list                   # Layer, ascending index
    num_hidden_layers: int
    moe_config: dict
    summary: dict                  # phase1_moe_svd.json
    aggregate: dict                # phase1_moe_svd_agg.json
    provenance: dict
    phases: list                   # phases present in vindex.h5, e.g. [1]
    routers: dict = None           # phase2_router_svd.json, when the run had phase 2
    phase3: dict = None            # phase3_routing_stats.json, when the run had phase 3

    def moe_layers(self):
        return [l for l in self.layers if l.kind == "moe"]

    @property
    def dissolution_threshold(self):
        """The C4 line below which a spectrum is called dissolved, as the run wrote it."""
        return self.aggregate["dissolution_threshold"]


OUTPUT_FILES = ("vindex.h5", "phase1_moe_svd.json", "phase2_router_svd.json", "phase3_routing_stats.json",
                "phase1_moe_svd_agg.json", "moe_config.json")
MANIFEST = "vindex-manifest.json"
COMMIT_RECORD = ".vindex-commit.json"


def _read_regular(path):
    """The bytes of a regular file; a FIFO, device or link in its place is refused without blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ReportInputError(f"{path}: missing") from None
    except OSError as e:
        raise ReportInputError(f"{path}: cannot be opened: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ReportInputError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def verify_output_set(directory):
    """The run id of the committed output set in `directory`, after checking every file against
    the manifest (as `vindex_mpi inspect --outputs` does); ReportInputError otherwise."""
    manifest_path = os.path.join(directory, MANIFEST)
    if not os.path.lexists(manifest_path):
        if os.path.lexists(os.path.join(directory, COMMIT_RECORD)):
            raise ReportInputError(f"{directory}: holds an unfinished commit ({COMMIT_RECORD}): a run was killed while "
                                   f"writing its outputs; a run with --resume (or --overwrite) into it finishes it")
        raise ReportInputError(f"{manifest_path}: missing (not a complete vindex_mpi output set)")
    try:
        manifest = json.loads(_read_regular(manifest_path))
        run_id = manifest["run_id"]
        files = {f["name"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError) as e:
        raise ReportInputError(f"{manifest_path}: not a vindex manifest: {e}") from None
    for name, entry in files.items():
        if name not in OUTPUT_FILES:
            raise ReportInputError(f"{manifest_path}: names an unknown file {name!r}")
        path = os.path.join(directory, name)
        data = _read_regular(path)
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ReportInputError(f"{path}: does not match the manifest (changed or replaced after run {run_id} wrote it)")
        if name.endswith(".json"):
            try:
                got = json.loads(data).get("run_id")
            except ValueError as e:
                raise ReportInputError(f"{path}: cannot be read as JSON: {e}") from None
        else:
            with h5py.File(path, "r") as h5:
                got = h5.attrs.get("run_id")
                got = got.decode() if isinstance(got, bytes) else got
        if got != run_id:
            raise ReportInputError(f"{path}: carries run id {got!r}, the manifest's run is {run_id}: the set is mixed")
    for name in OUTPUT_FILES:
        if name not in files and os.path.lexists(os.path.join(directory, name)):
            raise ReportInputError(f"{os.path.join(directory, name)}: not in the manifest of run {run_id} (left by another run?)")
    return run_id


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ReportInputError(f"{path}: missing (is this a vindex_mpi output directory?)") from None
    except (OSError, ValueError) as e:
        raise ReportInputError(f"{path}: cannot be read as JSON: {e}") from None


def _dataset(h5, path, file_label, ndim):
    if path not in h5:
        raise ReportInputError(f"{file_label}: dataset '{path}' is missing")
    data = h5[path][()]
    if data.ndim != ndim:
        raise ReportInputError(f"{file_label}: dataset '{path}' has {data.ndim} dimensions, expected {ndim}")
    return data


def _read_group(h5, path, file_label, n_k):
    g = h5[path]
    n = None
    values = {}
    for name, ndim in (("expert_ids", 1), ("var_at_k", 2), ("singular_values", 2), ("frobenius_norm", 1)):
        values[name] = _dataset(h5, f"{path}/{name}", file_label, ndim)
        if n is None:
            n = values[name].shape[0]
        elif values[name].shape[0] != n:
            raise ReportInputError(f"{file_label}: '{path}/{name}' has {values[name].shape[0]} rows, expected {n}")
    if values["var_at_k"].shape[1] != n_k:
        raise ReportInputError(f"{file_label}: '{path}/var_at_k' has {values['var_at_k'].shape[1]} columns, "
                               f"expected one per k ({n_k})")
    shape = tuple(int(v) for v in g.attrs.get("shape", (0, 0)))
    return Group(name=path.rsplit("/", 1)[1], role=str(g.attrs.get("role", "")), shape=shape,
                 expert_ids=values["expert_ids"].astype(np.int64), var_at_k=values["var_at_k"].astype(np.float64),
                 singular_values=values["singular_values"], frobenius_norm=values["frobenius_norm"].astype(np.float64))


def load_run(directory):
    """Reads an output directory; raises ReportInputError when it is not a complete vindex output."""
    if not os.path.isdir(directory):
        raise ReportInputError(f"{directory}: not a directory")
    h5_path = os.path.join(directory, "vindex.h5")
    if not os.path.exists(h5_path):
        raise ReportInputError(f"{h5_path}: missing (is this a vindex_mpi output directory?)")
    verify_output_set(directory)
    summary = _load_json(os.path.join(directory, "phase1_moe_svd.json"))
    if "down_proj" not in summary.get("projections", []):
        raise ReportInputError(f"{os.path.join(directory, 'phase1_moe_svd.json')}: the report draws down_proj, which this "
                               f"run did not compute (projections {summary.get('projections')})")
    routers_path = os.path.join(directory, "phase2_router_svd.json")
    routers = _load_json(routers_path) if os.path.exists(routers_path) else None
    phase3_path = os.path.join(directory, "phase3_routing_stats.json")
    phase3 = _load_json(phase3_path) if os.path.exists(phase3_path) else None
    aggregate = _load_json(os.path.join(directory, "phase1_moe_svd_agg.json"))
    moe_config = _load_json(os.path.join(directory, "moe_config.json"))
    try:
        h5 = h5py.File(h5_path, "r")
    except OSError as e:
        raise ReportInputError(f"{h5_path}: cannot be opened as HDF5: {e}") from None
    with h5:
        fmt = h5.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != "vindex":
            raise ReportInputError(f"{h5_path}: attribute 'format' is {fmt!r}, expected 'vindex'")
        k = [int(v) for v in np.atleast_1d(h5.attrs.get("k", []))]
        if not k or k != list(summary.get("k", [])):
            raise ReportInputError(f"{h5_path}: k {k} disagrees with phase1_moe_svd.json's {summary.get('k')}")
        model = h5.attrs.get("model", "")
        model = model.decode() if isinstance(model, bytes) else str(model)
        phases = sorted(int(m.group(1)) for name in h5 if (m := re.fullmatch(r"phase(\d+)", name)))
        if "phase1" not in h5:
            raise ReportInputError(f"{h5_path}: group '/phase1' is missing")
        by_index = {entry["layer"]: entry for entry in summary.get("layers", [])}
        layers = []
        for name in sorted(h5["phase1"]):
            m = re.fullmatch(r"layer_(\d{3,})", name)
            if not m:
                continue
            path = f"phase1/{name}"
            kind = h5[path].attrs.get("kind", "")
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            # The page shows down_proj; the layer's entry holds one object per projection.
            entry = by_index.get(int(m.group(1)))
            layer = Layer(index=int(m.group(1)), kind=kind, summary=entry.get("down_proj") if entry else None)
            for group_name in h5[path]:
                layer.groups[group_name] = _read_group(h5, f"{path}/{group_name}", h5_path, len(k))
            if layer.summary is None:
                raise ReportInputError(f"{os.path.join(directory, 'phase1_moe_svd.json')}: no entry for layer {layer.index}, "
                                       f"which vindex.h5 has")
            layers.append(layer)
    if not layers:
        raise ReportInputError(f"{h5_path}: '/phase1' holds no layers")
    layers.sort(key=lambda l: l.index)
    return RunOutput(directory=directory, model=model, k=k, layers=layers,
                     num_hidden_layers=int(moe_config.get("num_hidden_layers", layers[-1].index + 1)),
                     moe_config=moe_config, summary=summary, aggregate=aggregate,
                     provenance=summary.get("provenance", {}), phases=phases, routers=routers, phase3=phase3)


def k_column(run, k):
    """Index of k in the run's var@k columns; ReportInputError when the run lacks it."""
    if k not in run.k:
        raise ReportInputError(f"{run.directory}: var@{k} was not computed (this run has k = {run.k}); "
                               f"choose one of those with --k")
    return run.k.index(k)


def marchenko_pastur_edges(rows, cols, frobenius_norm):
    """Singular-value bulk edges of a rows x cols matrix of i.i.d. entries with the same Frobenius
    norm: variance s^2 = ||W||_F^2 / (rows cols), edges s |sqrt(rows) -+ sqrt(cols)|."""
    s = frobenius_norm / np.sqrt(rows * cols)
    return s * abs(np.sqrt(rows) - np.sqrt(cols)), s * (np.sqrt(rows) + np.sqrt(cols))
