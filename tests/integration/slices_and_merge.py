#!/usr/bin/env python3
"""Array-job slices and `vindex_mpi merge`, under mpiexec (the Slurm test runs the same through
sbatch): three slices of the demo (with 1, 2 and 1 ranks) merged must equal a single run, value for
value; merge refuses a missing slice, an unfinished slice, a slice of other options, another model
(also one whose headers are identical and only the weights differ, as two checkpoints of one
training run), a slice whose files no longer match its manifest, and a full output directory;
--verify-all re-reads every matrix and catches a weight changed between the fingerprint's samples;
--slice refuses bad slice numbers.

  slices_and_merge.py --mpiexec M --np-flag -n --binary B --fixtures tests/fixtures
                      --reference OUT_OF_A_SINGLE_RUN --checker tests/integration/check_outputs.py --work DIR
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import mpi_runner
from checks import check, finish


def poke_tensor(model, tensor, offset):
    """Flips the bits of one byte of a tensor's data, leaving every header as it was."""
    index = json.load(open(os.path.join(model, "model.safetensors.index.json")))["weight_map"]
    path = os.path.join(model, index[tensor])
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        begin = json.loads(f.read(n))[tensor]["data_offsets"][0]
        f.seek(8 + n + begin + offset)
        value = f.read(1)[0]
        f.seek(8 + n + begin + offset)
        f.write(bytes([value ^ 0x01]))


def merge(args, out, model, *extra):
    p = subprocess.run([args.binary, "merge", "--model", model, "--out", out, *extra], capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--checker", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    mpi_runner.fresh_dir(args.work)
    os.makedirs(args.work)
    model = os.path.join(args.fixtures, "kimi_k2_tiny")
    out = os.path.join(args.work, "job")
    slices = os.path.join(out, "slices")

    for index, ranks in ((0, 1), (1, 2), (2, 1)):
        code, _, err = mpi_runner.run(args, ranks, ["--model", model, "--out", out, "--slice", f"{index}/3", "--resume",
                                                    "--phases", "1,2"])
        check(code == 0, f"slice {index}/3: exit {code}: {err[-1500:]}")
    names = sorted(os.listdir(slices)) if os.path.isdir(slices) else []
    check(names == ["000-of-003", "001-of-003", "002-of-003"], f"slice directories: {names}")

    code, stdout, err = merge(args, out, model)
    check(code == 0 and "merged from 3 slices" in stdout, f"merge: exit {code}: {err[-1500:]}")
    p = subprocess.run([sys.executable, args.checker, "identical", out, args.reference], capture_output=True, text=True)
    check(p.returncode == 0, f"merged files differ from a single run:\n{p.stdout}{p.stderr}")

    # Phases 1 and 2 with all projections, on a sharded family saved by transformers: two slices merged
    # equal one run (the routers' spectra and biases included).
    qwen = os.path.join(args.fixtures, "hf", "qwen3_moe")
    both = ["--phases", "1,2", "--projections", "down,gate,up", "--k", "4,16"]
    single = os.path.join(args.work, "qwen_single")
    code, _, err = mpi_runner.run(args, 2, ["--model", qwen, "--out", single] + both)
    check(code == 0, f"qwen3_moe single run: exit {code}: {err[-1500:]}")
    qwen_job = os.path.join(args.work, "qwen_job")
    for index in (0, 1):
        code, _, err = mpi_runner.run(args, 1, ["--model", qwen, "--out", qwen_job, "--slice", f"{index}/2"] + both)
        check(code == 0, f"qwen3_moe slice {index}/2: exit {code}: {err[-1500:]}")
    code, stdout, err = merge(args, qwen_job, qwen)
    check(code == 0 and "phase 2 (routers)" in stdout, f"qwen3_moe merge: exit {code}: {err[-1500:]}")
    p = subprocess.run([sys.executable, args.checker, "identical", qwen_job, single], capture_output=True, text=True)
    check(p.returncode == 0, f"qwen3_moe: merged phases 1+2 differ from a single run:\n{p.stdout}{p.stderr}")

    # The same on a GGUF checkpoint (block-quantized, fused experts, shared experts, router biases):
    # two slices, the second resumed after it completed, merged, equal one run.
    ds = os.path.join(args.fixtures, "gguf_models", "deepseek_v3", "model.gguf")
    gguf_single = os.path.join(args.work, "gguf_single")
    code, _, err = mpi_runner.run(args, 2, ["--model", ds, "--out", gguf_single] + both)
    check(code == 0, f"GGUF single run: exit {code}: {err[-1500:]}")
    gguf_job = os.path.join(args.work, "gguf_job")
    for index, extra in ((0, []), (1, []), (1, ["--resume"])):
        code, _, err = mpi_runner.run(args, 1, ["--model", ds, "--out", gguf_job, "--slice", f"{index}/2"] + extra + both)
        check(code == 0, f"GGUF slice {index}/2 {extra}: exit {code}: {err[-1500:]}")
    code, stdout, err = merge(args, gguf_job, ds)
    check(code == 0 and "phase 2 (routers)" in stdout, f"GGUF merge: exit {code}: {err[-1500:]}")
    p = subprocess.run([sys.executable, args.checker, "identical", gguf_job, gguf_single], capture_output=True, text=True)
    check(p.returncode == 0, f"GGUF: merged phases 1+2 differ from a single run:\n{p.stdout}{p.stderr}")

    # Refusals: each exits with its code and one message, and writes nothing.
    def refused(label, code_expected, needles, prepare, model_dir=model):
        work = os.path.join(args.work, label.replace(" ", "_"))
        shutil.copytree(slices, os.path.join(work, "slices"))
        prepare(os.path.join(work, "slices"))
        code, stdout, err = merge(args, work, model_dir)
        ok = code == code_expected and err.count("error:") == 1 and all(n in err for n in needles)
        check(ok, f"{label}: exit {code}, expected {code_expected}; message {err!r}")
        check(sorted(os.listdir(work)) == ["slices"], f"{label}: wrote into {work}: {sorted(os.listdir(work))}")

    refused("missing slice", 2, ["001-of-003 is missing"], lambda d: shutil.rmtree(os.path.join(d, "001-of-003")))
    def unfinished(d):  # killed before its commit: neither its files nor its manifest
        for name in ("vindex.h5", "vindex-manifest.json"):
            os.remove(os.path.join(d, "002-of-003", name))
    refused("unfinished slice", 3, ["002-of-003", "did not finish"], unfinished)
    refused("slice file removed", 3, ["002-of-003", "vindex.h5", "cannot be opened"],
            lambda d: os.remove(os.path.join(d, "002-of-003", "vindex.h5")))
    refused("slice file changed", 3, ["001-of-003", "phase1_moe_svd.json", "does not match the manifest"],
            lambda d: open(os.path.join(d, "001-of-003", "phase1_moe_svd.json"), "a").write(" "))

    def fifo(d):  # a FIFO where a slice's file belongs: refused, never opened blocking
        os.remove(os.path.join(d, "001-of-003", "vindex.h5"))
        os.mkfifo(os.path.join(d, "001-of-003", "vindex.h5"))
    refused("slice file is a FIFO", 3, ["001-of-003", "vindex.h5", "FIFO"], fifo)

    def swapped(d):  # a whole file of slice 0, checksum-consistent, put into slice 1's set
        shutil.copy(os.path.join(d, "000-of-003", "moe_config.json"), os.path.join(d, "001-of-003", "moe_config.json"))
    refused("slice file swapped", 3, ["001-of-003", "moe_config.json"], swapped)

    def other_options(d):
        code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", os.path.dirname(d), "--slice", "1/3",
                                                "--k", "32", "--overwrite"])
        check(code == 0, f"slice with --k 32: exit {code}: {err[-500:]}")
    refused("other options", 3, ["001-of-003", "computed differently", "k:"], other_options)
    refused("other model", 3, ["another model"], lambda d: None, model_dir=os.path.join(args.fixtures, "steep_mixed"))
    # Another checkpoint with identical headers: one weight byte differs inside a fingerprint sample
    # (the first byte of a tensor), as between two checkpoints of one training run.
    twin = os.path.join(args.work, "model_twin")
    shutil.copytree(model, twin)
    poke_tensor(twin, "model.layers.2.mlp.experts.4.down_proj.weight", 0)
    refused("twin model", 3, ["another model"], lambda d: None, model_dir=twin)
    # A byte between the samples is invisible to the fingerprint (as documented); --verify-all re-reads
    # every matrix and finds it, naming the tensor.
    twin2 = os.path.join(args.work, "model_twin_2")
    shutil.copytree(model, twin2)
    poke_tensor(twin2, "model.layers.2.mlp.experts.4.down_proj.weight", 5000)
    unverified = os.path.join(args.work, "unverified")
    shutil.copytree(slices, os.path.join(unverified, "slices"))
    code, _, err = merge(args, unverified, twin2)
    check(code == 0, f"merge without --verify-all cannot see a byte between the samples: exit {code}: {err[-500:]}")
    verify_work = os.path.join(args.work, "verify_all")
    shutil.copytree(slices, os.path.join(verify_work, "slices"))
    code, _, err = merge(args, verify_work, twin2, "--verify-all")
    check(code == 3 and "model.layers.2.mlp.experts.4.down_proj.weight" in err and "weight digest" in err,
          f"--verify-all on a model changed between samples: exit {code}: {err[-800:]}")
    code, _, err = merge(args, verify_work, model, "--verify-all")
    check(code == 0 and "every weight digest matches" in err, f"--verify-all on the right model: exit {code}: {err[-800:]}")

    code, _, err = merge(args, out, model)  # out now holds the merged files
    check(code == 2 and "not empty" in err, f"merge into a full directory: exit {code}: {err!r}")
    code, _, err = merge(args, out, model, "--overwrite")
    check(code == 0, f"merge --overwrite: exit {code}: {err[-500:]}")

    for bad, needle in (("3/3", "0 <= I < N"), ("0/9", "only 4 layers"), ("1", "I/N"), ("-1/3", "--slice")):
        code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", os.path.join(args.work, "bad"), "--slice", bad])
        check(code == 2 and needle in err, f"--slice {bad}: exit {code}: {err!r}")

    return finish("slices and merge")


if __name__ == "__main__":
    sys.exit(main())
