#!/usr/bin/env python3
"""The Slurm path end to end on a real single-node Slurm (tests/slurm/local_slurm.sh): submits
slurm/submit_array.sh -- an array of 3 slices of the demo checkpoint through sbatch, each task
launching vindex_mpi with srun, then the merge job, which Slurm starts once every slice succeeded
-- waits for both, and checks that every job completed and the merged files equal a single
run's, value for value.

  slurm_array_job.py --binary B --repo ROOT --reference OUT --checker check_outputs.py --work DIR
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

TIMEOUT = 300


def fail(message, work=None):
    print(f"FAIL: {message}")
    if work:
        for name in sorted(os.listdir(work)):
            if name.endswith(".log"):
                print(f"--- {name}\n{open(os.path.join(work, name), errors='replace').read()[-3000:]}")
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--checker", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    args.repo = os.path.abspath(args.repo)
    args.work = os.path.abspath(args.work)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    slurm_dir = os.environ.get("VINDEX_SLURM_DIR", "/tmp/vindex-slurm")
    start = subprocess.run(["bash", os.path.join(args.repo, "tests/slurm/local_slurm.sh"), "start"],
                           capture_output=True, text=True, env={**os.environ, "VINDEX_SLURM_DIR": slurm_dir})
    print(start.stdout + start.stderr, end="")
    if start.returncode != 0:
        fail("could not start the local Slurm (tools/install_deps.sh --tests installs slurm-wlm and munge; root needed)")
    env = {**os.environ, "SLURM_CONF": os.path.join(slurm_dir, "slurm.conf"), "VINDEX_MPI": os.path.abspath(args.binary),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

    out = os.path.join(args.work, "job-out")
    job = os.path.join(args.work, "demo.toml")
    with open(job, "w") as f:
        f.write(f'model = "{os.path.join(args.repo, "tests/fixtures/kimi_k2_tiny")}"\n'
                f'out = "{out}"\nk = "64"\nphases = "1,2"\nprogress-seconds = 1\n')
    submit = subprocess.run(["bash", os.path.join(args.repo, "slurm/submit_array.sh"), job, "3",
                             "--ntasks-per-node=1", "--cpus-per-task=1", "--time=00:10:00",
                             f"--output={args.work}/slice-%A_%a.log"],
                            capture_output=True, text=True, env=env, cwd=args.work)
    print(submit.stdout + submit.stderr, end="")
    m = re.search(r"array job (\d+) \(3 slices\), merge job (\d+)", submit.stdout)
    if submit.returncode != 0 or not m:
        fail("submission failed", args.work)
    array_id, merge_id = m.group(1), m.group(2)

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", f"{array_id},{merge_id}", "-o", "%i %T %r"], capture_output=True,
                               text=True, env=env).stdout.strip()
        if not queue:
            break
        if "DependencyNeverSatisfied" in queue:
            fail(f"a slice failed, the merge can never start:\n{queue}", args.work)
        time.sleep(1)
    else:
        fail(f"jobs still queued after {TIMEOUT} s", args.work)

    # Every array task and the merge completed with exit 0 (scontrol keeps finished jobs a while).
    states = []
    for job_id in [f"{array_id}_{i}" for i in range(3)] + [merge_id]:
        info = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, env=env).stdout
        state = re.search(r"JobState=(\S+)", info)
        code = re.search(r"ExitCode=(\S+)", info)
        states.append((job_id, state.group(1) if state else "?", code.group(1) if code else "?"))
    print("jobs: " + ", ".join(f"{j} {s} {c}" for j, s, c in states))
    if any(s != "COMPLETED" or c != "0:0" for _, s, c in states):
        fail(f"not every job completed: {states}", args.work)

    check = subprocess.run([sys.executable, args.checker, "identical", out, args.reference], capture_output=True, text=True)
    if check.returncode != 0:
        fail(f"merged files differ from a single run:\n{check.stdout}{check.stderr}", args.work)
    slices = sorted(os.listdir(os.path.join(out, "slices")))
    if slices != ["000-of-003", "001-of-003", "002-of-003"]:
        fail(f"slice directories: {slices}", args.work)
    print("slurm array job: 3 slices through sbatch, merged by a dependent job, equal to a single run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
