#!/usr/bin/env python3
"""I/O failures end the job with the documented code on every rank, never with a signal.

  io_failures.py full-disk      --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny --work DIR
  io_failures.py truncated-shard --mpiexec M --np-flag -n --binary B --generator tools/make_large_fixture.py
                                 --checker tests/integration/check_outputs.py --work DIR

full-disk: --out on a tmpfs of 8 KiB to 256 KiB (in steps of 8 KiB; mounted in a private mount
namespace, `unshare -m`, so it cannot outlive the test): every size either succeeds or ends with
exit 4 and exactly one error naming a path in --out and "No space left on device"; no segfault
or other signal on any rank, no output file under its final name, no temporary left. Without
permission to mount, the mode exits 77 (CTest: skipped) and says why.

truncated-shard: the single shard of a run under mpiexec -n 2 is truncated to three quarters of its
size once the first results are journaled: exit 3 with one message naming the shard, the tensor
and the truncation, no signal; the journal is kept, and once the shard is whole again --resume
finishes the run with files equal to an uninterrupted run's.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import mpi_runner
from checks import check, finish

SKIP = 77
FINAL = ("vindex.h5", "phase1_moe_svd.json", "phase2_router_svd.json", "phase1_moe_svd_agg.json", "moe_config.json",
         "vindex-manifest.json")


def signal_death(stderr):
    return any(s in stderr for s in ("Segmentation fault", "signal", "Signal:", "core dumped"))


def full_disk(args):
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs -o size=8k tmpfs '{args.work}'"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"SKIP: cannot mount a tmpfs in a private mount namespace here: {probe.stderr.strip()}")
        return SKIP
    outcomes = {}
    for kib in range(8, 257, 8):
        mnt = os.path.join(args.work, f"tmpfs-{kib}k")
        os.makedirs(mnt)
        out = os.path.join(mnt, "out")
        inner = mpi_runner.mpi_command(args, 2, ["--model", args.fixture, "--out", out, "--phases", "1,2"])
        # The tmpfs exists only in this namespace; the listing after the run is taken inside it too.
        script = (f"mount -t tmpfs -o size={kib}k tmpfs '{mnt}' || exit 90; \"$@\"; rc=$?; "
                  f"echo; echo LISTING; ls -A '{out}' 2>/dev/null; exit $rc")
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + inner,
                           capture_output=True, text=True, timeout=240)
        listing = p.stdout.split("LISTING\n", 1)[1].split() if "LISTING\n" in p.stdout else None
        errors = [l for l in p.stderr.splitlines() if l.startswith("vindex_mpi: error")]
        outcomes[kib] = p.returncode
        label = f"--out on a {kib} KiB tmpfs"
        check(p.returncode in (0, 4), f"{label}: exit {p.returncode}: {p.stderr[-800:]}")
        check(not signal_death(p.stderr), f"{label}: a rank died of a signal:\n{p.stderr[-1500:]}")
        if p.returncode == 4:
            check(len(errors) == 1 and out in errors[0] and "No space left on device" in errors[0],
                  f"{label}: expected one error naming a file in --out and ENOSPC, got {errors}")
            check(listing is not None and not [f for f in listing if f in FINAL or ".partial-" in f],
                  f"{label}: left {listing}")
        elif p.returncode == 0:
            check(listing is not None and "vindex-manifest.json" in listing, f"{label}: succeeded without a manifest: {listing}")
    print("exit code by tmpfs size (KiB):", " ".join(f"{k}:{c}" for k, c in outcomes.items()))
    check(4 in outcomes.values() and 0 in outcomes.values(), "the sizes did not span both a full disk and success")
    return finish("full disk")


def truncated_shard(args):
    model = os.path.join(args.work, "model")
    subprocess.run([sys.executable, args.generator, "--out", model, "--experts", "16", "--moe-layers", "8",
                    "--hidden", "1024", "--inter", "1024", "--projections", "down"], check=True, stdout=subprocess.DEVNULL)
    shard = os.path.join(model, "model.safetensors")
    whole = os.path.join(args.work, "model.safetensors.whole")
    shutil.copy(shard, whole)
    clean = os.path.join(args.work, "clean")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", clean])
    check(code == 0, f"clean run: exit {code}: {err[-1000:]}")

    out = os.path.join(args.work, "truncated")
    cmd = mpi_runner.mpi_command(args, 2, ["--model", model, "--out", out, "--journal-seconds", "0.2", "--threads", "1"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = os.path.join(out, ".vindex-journal")
    deadline = time.monotonic() + 120
    landed = False
    while time.monotonic() < deadline and proc.poll() is None and not landed:
        files = os.listdir(journal) if os.path.isdir(journal) else []
        landed = any(os.path.getsize(os.path.join(journal, f)) > 4096 for f in files)
        time.sleep(0.05)
    check(landed, "no results were journaled before the run ended")
    os.truncate(shard, os.path.getsize(shard) * 3 // 4)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        check(False, "HANG: the run did not end after its shard was truncated")
    errors = [l for l in stderr.splitlines() if l.startswith("vindex_mpi: error")]
    check(proc.returncode == 3, f"truncated shard: exit {proc.returncode}, expected 3:\n{stderr[-1500:]}")
    check(not signal_death(stderr), f"truncated shard: a rank died of a signal:\n{stderr[-1500:]}")
    check(len(errors) == 1 and "model.safetensors" in errors[0] and "tensor '" in errors[0] and "truncated" in errors[0],
          f"truncated shard: expected one message naming the shard, tensor and truncation: {errors}")
    check(os.path.isdir(journal), "truncated shard: the journal was removed")
    left = sorted(os.listdir(out)) if os.path.isdir(out) else []
    check(not [f for f in left if f in FINAL], f"truncated shard: final files left: {left}")

    shutil.copy(whole, shard)  # whole again
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", out, "--resume"])
    check(code == 0 and "vindex_mpi: resuming:" in err, f"resume after the shard is whole again: exit {code}: {err[-1500:]}")
    p = subprocess.run([sys.executable, args.checker, "identical", out, clean], capture_output=True, text=True)
    check(p.returncode == 0, f"resumed outputs differ from a clean run:\n{p.stdout}{p.stderr}")
    return finish("truncated shard")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("full-disk", "truncated-shard"))
    mpi_runner.add_arguments(ap)
    ap.add_argument("--fixture")
    ap.add_argument("--generator")
    ap.add_argument("--checker")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    mpi_runner.fresh_dir(args.work)
    os.makedirs(args.work)
    return full_disk(args) if args.mode == "full-disk" else truncated_shard(args)


if __name__ == "__main__":
    sys.exit(main())
