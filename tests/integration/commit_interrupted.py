#!/usr/bin/env python3
"""The output set is committed in one step. Rank 0 is killed in the middle of its commit -- after
the commit record and the first output file are renamed into place, before the rest (strace
delays the third rename call by 60 s: `-e inject=...:delay_enter=...:when=3`) -- in an --overwrite
run over an earlier, complete set. Then:
  - readers refuse the directory: `inspect --outputs` and the report tool exit 3 ("unfinished
    commit"); a fresh run refuses it (exit 2);
  - what a reader that ignores the manifest sees is a mix (a vindex.h5 of the new run beside JSON
    files of the old one, each carrying its own run id), as README "Output files" documents;
  - `--resume` finishes the commit first ("finished the commit of run ..."), and the set verifies
    and equals an uninterrupted run's; with a staged file lost, --overwrite removes the set instead.

  commit_interrupted.py --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny
                        --checker tests/integration/check_outputs.py --report tools/report/vindex_report.py
                        --work DIR
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py

import mpi_runner
from checks import check, finish


def run_id_of(path):
    if path.endswith(".h5"):
        with h5py.File(path, "r") as h5:
            return h5.attrs["run_id"]
    return json.load(open(path))["run_id"]


def interrupted_run(args, out, extra):
    """Starts an --overwrite run whose rank 0 waits 60 s in its third rename, kills it there."""
    strace = ["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=rename,renameat,renameat2",
              "-e", "inject=rename,renameat,renameat2:delay_enter=60000000:when=3"]
    cmd = mpi_runner.mpi_command(args, 2, ["--model", args.fixture, "--out", out, "--overwrite"] + extra)
    at = cmd.index(args.binary)
    cmd = cmd[:at] + strace + cmd[at:]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = os.path.join(out, ".vindex-commit.json")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not os.path.exists(record):
        time.sleep(0.02)
    time.sleep(1.0)  # the second rename (the first output file) is not delayed
    pid = mpi_runner.rank_pids(args.binary, out).get(0)
    check(pid is not None and proc.poll() is None, "rank 0 was not found waiting in its commit")
    if pid:
        # The rank, then strace (its parent, which mpiexec started and would keep waiting out the delay).
        parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        os.kill(pid, signal.SIGKILL)
        os.kill(parent, signal.SIGKILL)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        check(False, "HANG: the job did not end after rank 0 was killed")
    check(proc.returncode != 0, "the killed job exited 0")


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--checker", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    if shutil.which("strace") is None:
        print("strace is not installed (tools/install_deps.sh --tests installs it)")
        return 1
    mpi_runner.fresh_dir(args.work)
    os.makedirs(args.work)
    clean = os.path.join(args.work, "clean")
    code, _, err = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", clean])
    check(code == 0, f"clean run: exit {code}: {err[-1000:]}")

    for variant in ("resume", "lost_temporary"):
        out = os.path.join(args.work, variant)
        # An earlier, complete set (phases 1 and 2) that the interrupted run replaces.
        code, _, err = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", out, "--phases", "1,2"])
        check(code == 0, f"{variant}: first run: exit {code}: {err[-1000:]}")
        old_id = run_id_of(os.path.join(out, "phase1_moe_svd.json"))
        interrupted_run(args, out, [])
        names = sorted(os.listdir(out))
        check(".vindex-commit.json" in names and "vindex-manifest.json" not in names,
              f"{variant}: after the kill: {names}")
        new_id = json.load(open(os.path.join(out, ".vindex-commit.json")))["run_id"]
        # What a reader ignoring the manifest finds: files of two runs, each naming its own.
        check(run_id_of(os.path.join(out, "vindex.h5")) == new_id, f"{variant}: vindex.h5 is not the new run's")
        check(run_id_of(os.path.join(out, "phase1_moe_svd.json")) == old_id,
              f"{variant}: phase1_moe_svd.json is not the old run's (the kill came too late?)")
        # Readers that honour the manifest refuse it.
        p = subprocess.run([args.binary, "inspect", "--outputs", out], capture_output=True, text=True, timeout=60)
        check(p.returncode == 3 and "unfinished commit" in p.stderr, f"{variant}: inspect --outputs: {p.returncode} {p.stderr}")
        p = subprocess.run([sys.executable, args.report, out, "--out", os.path.join(args.work, "report")],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 3 and "unfinished commit" in p.stderr, f"{variant}: report: {p.returncode} {p.stderr}")
        code, _, err = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", out])
        check(code == 2 and "unfinished commit" in err, f"{variant}: a fresh run: exit {code}: {err[-600:]}")

        if variant == "resume":
            code, _, err = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", out, "--resume"])
            check(code == 0 and f"finished the commit of run {new_id}" in err, f"resume: exit {code}: {err[-1500:]}")
            p = subprocess.run([args.binary, "inspect", "--outputs", out], capture_output=True, text=True, timeout=60)
            check(p.returncode == 0, f"resume: inspect --outputs after the resume: {p.returncode} {p.stderr}")
            check(not os.path.exists(os.path.join(out, "phase2_router_svd.json")),
                  "resume: the old run's phase-2 file survived the commit")
            p = subprocess.run([sys.executable, args.checker, "identical", out, clean], capture_output=True, text=True)
            check(p.returncode == 0, f"resume: outputs differ from a clean run:\n{p.stdout}{p.stderr}")
        else:
            os.remove(os.path.join(out, f".moe_config.json.partial-{new_id}"))
            code, _, err = mpi_runner.run(args, 2, ["--model", args.fixture, "--out", out, "--overwrite"])
            check(code == 0 and "removed the output files of run" in err, f"lost temporary: exit {code}: {err[-1500:]}")
            p = subprocess.run([args.binary, "inspect", "--outputs", out], capture_output=True, text=True, timeout=60)
            check(p.returncode == 0, f"lost temporary: inspect --outputs after the rerun: {p.returncode} {p.stderr}")
    return finish("interrupted commit")


if __name__ == "__main__":
    sys.exit(main())
