#!/usr/bin/env python3
"""A CUDA plugin built to another plugin ABI (vindex/run/cuda_plugin_abi.hpp) is refused, without a GPU:
the executable is copied beside a fake libvindex_cuda.so (tests/plugin/fake_cuda_plugin.cpp), where
the loader looks for the plugin, and run under mpiexec -n 2 with --backend cuda. Two fakes: one
reporting the next ABI version, beside the executable; one without the version entry point (as
plugins were before it existed), in ../lib. Each must end the job with exit 4 and exactly one
message naming the plugin's file and both versions, no output directory, no rank left running;
--backend auto must refuse it too (a broken installation is not a reason to fall back quietly), and
--backend cpu never loads the plugin and succeeds.

  plugin_abi_mismatch.py --mpiexec M --np-flag -n --binary B --abi-version N --next-abi-plugin P
                         --unversioned-plugin P --fixture tests/fixtures/kimi_k2_tiny --work DIR
"""
import argparse
import os
import shutil
import sys

import mpi_runner
from checks import check, finish

LIBRARY = 4


def install(work, binary, plugin, plugin_dir):
    """bin/vindex_mpi (a copy: the loader looks beside the running executable) and the plugin in
    bin/ or lib/; returns (the copied binary, the plugin's path as the loader names it)."""
    work = os.path.realpath(work)  # the loader names the plugin from /proc/self/exe, links resolved
    bin_dir = os.path.join(work, "bin")
    os.makedirs(bin_dir)
    os.makedirs(os.path.join(work, plugin_dir), exist_ok=True)
    copied = os.path.join(bin_dir, os.path.basename(binary))
    shutil.copy2(binary, copied)
    installed = os.path.join(work, plugin_dir, "libvindex_cuda.so")
    shutil.copy2(plugin, installed)
    return copied, installed


def run(args, binary, vindex_args):
    copied_args = argparse.Namespace(**{**vars(args), "binary": binary})
    return mpi_runner.run(copied_args, 2, vindex_args, timeout=120)


def expect_refused(label, code, err, out, needles):
    errors = [line for line in err.splitlines() if line.startswith("vindex_mpi: error")]
    check(code == LIBRARY, f"{label}: exit {code}, expected {LIBRARY}: {err[-800:]}")
    check(len(errors) == 1, f"{label}: {len(errors)} error lines, expected exactly one: {errors}")
    missing = [n for n in needles if not any(n in e for e in errors)]
    check(not missing, f"{label}: the message lacks {missing}: {errors}")
    check("was called" not in err, f"{label}: an entry point of the refused plugin was called: {err[-500:]}")
    check(not any(s in err for s in ("fatal", "MPI_ABORT", "Segmentation")), f"{label}: crashed: {err[-500:]}")
    check(not os.path.exists(out), f"{label}: {out} was created")
    print(f"{label}: exit {code}: {errors[0] if errors else err.strip()[-300:]}")


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--abi-version", type=int, required=True, help="kCudaPluginAbiVersion of this tree")
    for path_option in ("--next-abi-plugin", "--unversioned-plugin", "--fixture", "--work"):
        ap.add_argument(path_option, required=True)
    args = ap.parse_args()
    mpi_runner.fresh_dir(args.work)
    expects = f"this vindex_mpi expects {args.abi_version} (commit "
    rebuild = "rebuild and install both from one source tree"

    work = os.path.join(args.work, "next_abi")
    binary, plugin = install(work, args.binary, args.next_abi_plugin, "bin")
    for backend in ("cuda", "auto"):
        out = os.path.join(work, f"out-{backend}")
        code, _, err = run(args, binary, ["--model", args.fixture, "--out", out, "--backend", backend])
        expect_refused(f"next ABI version, --backend {backend}", code, err, out,
                       [f"libvindex_cuda.so at {plugin}: plugin ABI version {args.abi_version + 1} (commit fake-plugin), "
                        + expects, rebuild])
    out = os.path.join(work, "out-cpu")
    code, _, err = run(args, binary, ["--model", args.fixture, "--out", out, "--backend", "cpu", "--layers", "0,1"])
    check(code == 0, f"next ABI version, --backend cpu: exit {code}: {err[-800:]}")

    work = os.path.join(args.work, "unversioned")
    binary, plugin = install(work, args.binary, args.unversioned_plugin, "lib")
    out = os.path.join(work, "out-cuda")
    code, _, err = run(args, binary, ["--model", args.fixture, "--out", out, "--backend", "cuda"])
    expect_refused("no ABI version, in ../lib", code, err, out,
                   [f"libvindex_cuda.so at {plugin}: the plugin has no ABI version",
                    "vindex_cuda_plugin_abi_version", expects, rebuild])
    return finish("plugin ABI mismatch")


if __name__ == "__main__":
    sys.exit(main())
