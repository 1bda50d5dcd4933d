#!/usr/bin/env python3
"""No lost work: a run under mpiexec -n 2 whose rank 1 is killed (SIGKILL) mid-way must end
within seconds with a non-zero exit and a message naming the rank, leave nothing under a final
file name, and keep its journal; `--resume` (with 3 ranks) must then compute only what is missing
and produce files equal, value for value, to an uninterrupted run's. Also: a journal of other
options is refused, --resume and --overwrite together are refused, --overwrite discards a journal,
and --resume on an empty directory starts afresh.

  kill_and_resume.py --mpiexec M --np-flag -n --binary B --generator tools/make_large_fixture.py
                     --checker tests/integration/check_outputs.py --work DIR
"""
import argparse
import os
import signal
import subprocess
import sys
import time

import mpi_runner
from checks import check, finish

FINAL = ("vindex.h5", "phase1_moe_svd.json", "phase1_moe_svd_agg.json", "moe_config.json")
JOURNAL = ".vindex-journal"


def rank_pids(binary, out_dir):
    """{rank: pid} of the running vindex_mpi processes writing into out_dir."""
    pids = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if not cmdline or os.path.basename(cmdline[0].decode(errors="replace")) != os.path.basename(binary):
            continue
        if out_dir.encode() not in cmdline:
            continue
        for var in environ:
            for name in (b"OMPI_COMM_WORLD_RANK=", b"PMI_RANK=", b"PMIX_RANK="):
                if var.startswith(name):
                    pids[int(var[len(name):])] = int(pid)
    return pids


def journal_results_bytes(out_dir, rank):
    """Bytes in rank's journal file beyond its identity record (a results batch has landed)."""
    d = os.path.join(out_dir, JOURNAL)
    if not os.path.isdir(d):
        return 0
    for f in os.listdir(d):
        if f.endswith(f"-rank-{rank:05d}.vjl"):
            data = open(os.path.join(d, f), "rb").read()
            if len(data) >= 24:
                first = 24 + int.from_bytes(data[8:16], "little")
                return max(0, len(data) - first)
    return 0


def compare(checker, a, b, label):
    p = subprocess.run([sys.executable, checker, "identical", a, b], capture_output=True, text=True)
    check(p.returncode == 0, f"{label}: outputs differ from the uninterrupted run:\n{p.stdout}{p.stderr}")


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--generator", required=True)
    ap.add_argument("--checker", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    mpi_runner.fresh_dir(args.work)
    os.makedirs(args.work)

    # 8 MoE layers x 16 experts of 1024 x 1024 (F16): about 10 s of work for two ranks.
    model = os.path.join(args.work, "model")
    subprocess.run([sys.executable, args.generator, "--out", model, "--experts", "16", "--moe-layers", "8",
                    "--hidden", "1024", "--inter", "1024", "--projections", "down"], check=True, stdout=subprocess.DEVNULL)
    clean = os.path.join(args.work, "clean")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", clean])
    check(code == 0, f"clean run: exit {code}: {err[-2000:]}")

    # The killed run.
    out = os.path.join(args.work, "killed")
    cmd = mpi_runner.mpi_command(args, 2, ["--model", model, "--out", out, "--journal-seconds", "0.2"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    victim = None
    while time.monotonic() < deadline and proc.poll() is None:
        pids = rank_pids(args.binary, out)
        if 1 in pids and journal_results_bytes(out, 1) > 0:
            victim = pids[1]
            break
        time.sleep(0.05)
    check(victim is not None, "rank 1 never journaled a batch (or the run ended first)")
    if victim is not None:
        # While it runs, a second run into the same directory is refused: the first holds its lock.
        code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", out, "--resume"])
        check(code == 2 and "another vindex_mpi run is using this directory" in err,
              f"a concurrent run into the same --out: exit {code}: {err[-800:]}")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            check(False, "HANG: the job did not end within 60 s of rank 1's death")
        ended = time.monotonic() - killed_at
        print(f"killed rank 1 (pid {victim}); the job ended {ended:.1f} s later with exit {proc.returncode}")
        check(proc.returncode != 0, "the killed job exited 0")
        check(ended < 15, f"the job took {ended:.1f} s to end after rank 1 died")
        check("rank 1" in stderr, f"no message names rank 1:\n{stderr[-2000:]}")
        left = sorted(os.listdir(out))
        check(not any(f in FINAL for f in left), f"final files after the kill: {left}")
        check(JOURNAL in left, f"the journal is gone after the kill: {left}")
    else:
        proc.kill()
        proc.communicate()

    # A journal of other options is refused (and left alone).
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", out, "--resume", "--k", "32"])
    check(code == 2 and "different run" in err and "k:" in err, f"other options: exit {code}: {err[-1000:]}")
    # Neither a fresh run nor a contradictory one touches it.
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", out])
    check(code == 2 and "--resume" in err, f"fresh run into a journaled directory: exit {code}: {err[-1000:]}")
    code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", out, "--resume", "--overwrite"])
    check(code == 2 and "contradict" in err, f"--resume --overwrite: exit {code}: {err[-1000:]}")

    # Resume with three ranks: only the rest is computed; the files equal the clean run's.
    code, stdout, err = mpi_runner.run(args, 3, ["--model", model, "--out", out, "--resume"])
    check(code == 0, f"resume: exit {code}: {err[-2000:]}")
    resumed = [line for line in err.splitlines() if line.startswith("vindex_mpi: resuming:")]
    check(len(resumed) == 1, f"resume: no 'resuming' line:\n{err[-2000:]}")
    if resumed:
        done = int(resumed[0].split("resuming: ")[1].split(" of ")[0])
        print(resumed[0])
        check(0 < done < 129, f"resume: {done} of 129 matrices already done; expected some but not all")
    compare(args.checker, out, clean, "resumed")
    check(sorted(os.listdir(out)) == sorted(FINAL), f"after the resume: {sorted(os.listdir(out))}")

    # Rank 0 cannot write its outputs at the very end (a directory appears where vindex.h5 goes):
    # the job fails, the complete journal stays, and --resume computes nothing.
    blocked = os.path.join(args.work, "blocked")
    cmd = mpi_runner.mpi_command(args, 2, ["--model", model, "--out", blocked, "--layers", "0-3"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not os.path.isdir(os.path.join(blocked, JOURNAL)):
        time.sleep(0.02)
    os.makedirs(os.path.join(blocked, "vindex.h5"), exist_ok=True)
    _, stderr = proc.communicate(timeout=240)
    check(proc.returncode == 2 and "vindex.h5 exists and is not a file" in stderr,
          f"blocked output: exit {proc.returncode}: {stderr[-1000:]}")
    check(sorted(os.listdir(blocked)) == [JOURNAL, "vindex.h5"], f"blocked output left {sorted(os.listdir(blocked))}")
    os.rmdir(os.path.join(blocked, "vindex.h5"))
    code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", blocked, "--layers", "0-3", "--resume"])
    check(code == 0 and "resuming: 49 of 49 matrices already done" in err and "0 to compute" in err,
          f"resume of a finished computation: exit {code}: {err[-1000:]}")

    # --overwrite discards an old journal; --resume on an empty directory starts afresh.
    os.makedirs(os.path.join(out, JOURNAL))
    open(os.path.join(out, JOURNAL, "run-0-rank-00000.vjl"), "wb").write(b"not a journal")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", out, "--overwrite", "--layers", "0-2"])
    check(code == 0 and JOURNAL not in os.listdir(out), f"--overwrite over a journal: exit {code}: {err[-1000:]}")
    fresh = os.path.join(args.work, "fresh_resume")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", fresh, "--resume"])
    check(code == 0 and "resuming: 0 of 129" in err, f"--resume into an empty directory: exit {code}: {err[-1000:]}")
    compare(args.checker, fresh, clean, "--resume from nothing")

    return finish("kill and resume")


if __name__ == "__main__":
    sys.exit(main())
