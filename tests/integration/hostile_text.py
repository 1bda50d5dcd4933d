#!/usr/bin/env python3
"""Untrusted text and a narrow binding, under mpiexec:
  - a model name (config.json _name_or_path) holding a NUL, an escape sequence and a C1 control
    is written escaped -- the same in vindex.h5's `model` attribute (a C string, which a NUL would
    cut short), in the JSON files and on the terminal -- and no raw control character is printed;
  - a tensor name holding an escape sequence, named in an error message, is printed escaped;
  - --threads 2 on a rank bound to one core (mpiexec --bind-to core) prints a warning that says
    how to give the rank more cores; --bind-to none on a machine with two cores prints none.

  hostile_text.py --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny --work DIR
"""
import argparse
import json
import os
import shutil
import struct
import sys

import h5py

import mpi_runner
from checks import check, finish

RAW_NAME = "evil\u0000name\u001b[31mred\u009b2J"
SHOWN = "evil\\x00name\\x1b[31mred\\u009b2J"


def rename_tensor(model, shard, old, new):
    path = os.path.join(model, shard)
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header[new] = header.pop(old)
    header[new]["dtype"] = "F8_E9M9"  # an unknown dtype: the error names the tensor
    text = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + data[8 + n:])
    index_path = os.path.join(model, "model.safetensors.index.json")
    index = json.load(open(index_path))
    index["weight_map"][new] = index["weight_map"].pop(old)
    json.dump(index, open(index_path, "w"))


def no_raw_controls(label, text):
    """None of the injected characters reaches the terminal raw (the progress line's own "\r" and
    "\x1b[K", which vindex_mpi writes when rank 0's output is a terminal, are not text from a file)."""
    for raw in ("\u0000", "\u001b[31m", "\u009b", "\u001b]0;pwned", "\u0007"):
        check(raw not in text, f"{label}: {raw!r} printed raw")


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    mpi_runner.fresh_dir(args.work)

    model = os.path.join(args.work, "model")
    shutil.copytree(args.fixture, model)
    config = json.load(open(os.path.join(model, "config.json")))
    config["_name_or_path"] = RAW_NAME
    json.dump(config, open(os.path.join(model, "config.json"), "w"))
    out = os.path.join(args.work, "out")
    code, stdout, stderr = mpi_runner.run(args, 2, ["--model", model, "--out", out])
    check(code == 0, f"run with a hostile model name: exit {code}: {stderr[-800:]}")
    no_raw_controls("stdout", stdout)
    no_raw_controls("stderr", stderr)
    check(SHOWN in stdout, f"the escaped name is not in the table's headline: {stdout[:300]!r}")
    if code == 0:
        with h5py.File(os.path.join(out, "vindex.h5"), "r") as h5:
            check(h5.attrs["model"] == SHOWN, f"vindex.h5 model attribute {h5.attrs['model']!r}")
        for name in ("phase1_moe_svd.json", "phase1_moe_svd_agg.json", "moe_config.json"):
            doc = json.load(open(os.path.join(out, name)))
            check(doc.get("model", doc.get("model_name")) == SHOWN, f"{name}: model {doc.get('model')!r}")

    bad = os.path.join(args.work, "bad_model")
    shutil.copytree(args.fixture, bad)
    rename_tensor(bad, "model-00001-of-00004.safetensors", "model.layers.0.self_attn.o_proj.weight",
                  "model.layers.0.self_attn.o_proj\u001b]0;pwned\u0007.weight")
    code, stdout, stderr = mpi_runner.run(args, 2, ["--model", bad, "--out", os.path.join(args.work, "bad_out")])
    check(code == 3 and "o_proj\\x1b]0;pwned\\x07.weight" in stderr, f"escaped tensor name in the error: exit {code}: {stderr!r}")
    no_raw_controls("stderr of the bad tensor name", stderr)

    cmd = ["--model", args.fixture, "--threads", "2", "--dry-run"]
    narrow = mpi_runner.run_with(args, 1, cmd, ["--bind-to", "core"])
    check(narrow[0] == 0 and "warning: --threads 2 but each rank may run on only 1 core" in narrow[2],
          f"--threads 2 bound to one core: exit {narrow[0]}: {narrow[2][-500:]}")
    if os.cpu_count() and os.cpu_count() >= 2 and len(os.sched_getaffinity(0)) >= 2:
        wide = mpi_runner.run_with(args, 1, cmd, ["--bind-to", "none"])
        check(wide[0] == 0 and "--threads 2 but" not in wide[2], f"--bind-to none: {wide[2][-500:]}")
    return finish("hostile text and binding")


if __name__ == "__main__":
    sys.exit(main())
