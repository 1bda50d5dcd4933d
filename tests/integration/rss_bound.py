#!/usr/bin/env python3
"""A rank's peak resident memory is bounded by the matrices in flight, not by the shard it reads:
one rank reads 128 down_proj matrices (256 MiB) out of a 768 MiB shard and must peak far below
either (each matrix is read with pread into a buffer its thread reuses; nothing is mapped). The
peak is the one vindex_mpi records in its provenance (getrusage ru_maxrss)."""
import argparse
import json
import os
import shutil
import subprocess
import sys

import mpi_runner


def main():
    parser = argparse.ArgumentParser()
    mpi_runner.add_arguments(parser)
    parser.add_argument("--generator", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    model, out = os.path.join(args.work, "model"), os.path.join(args.work, "out")
    subprocess.run([sys.executable, args.generator, "--out", model, "--experts", "128", "--hidden", "4096",
                    "--inter", "256", "--dtype", "F16"], check=True)
    shard_mib = os.path.getsize(os.path.join(model, "model.safetensors")) / 2**20
    read_mib = 129 * 4096 * 256 * 2 / 2**20  # the down_proj matrices: 128 experts and the dense MLP
    code, stdout, stderr = mpi_runner.run(args, 1, ["--model", model, "--out", out, "--threads", "1"], timeout=600)
    if code != 0:
        sys.exit(f"vindex_mpi failed ({code}): {stderr}")
    peak = json.load(open(os.path.join(out, "phase1_moe_svd.json")))["provenance"]["peak_rss_mib_max_rank"]
    print(f"shard {shard_mib:.0f} MiB, down_proj read {read_mib:.0f} MiB, peak RSS {peak:.1f} MiB")
    shutil.rmtree(args.work, ignore_errors=True)
    if not peak < min(read_mib / 3, 128):
        sys.exit(f"peak RSS {peak:.1f} MiB is not bounded by the matrices in flight")


if __name__ == "__main__":
    main()
