#!/usr/bin/env python3
"""The Slurm path end to end on a real single-node Slurm (tests/slurm/local_slurm.sh): submits
slurm/submit_array.sh -- an array of 3 slices of the demo checkpoint through sbatch, each task
launching vindex_mpi with srun, then the merge job, which Slurm starts once every slice succeeded
-- waits for both, and checks that every job completed and the merged files equal a single
run's, value for value.

The Slurm is the test's own (tests/slurm/local_slurm.sh): munged, slurmctld and slurmd started for
this run on free ports, with key, socket, state, spool, logs and pid files under the work directory,
and stopped when the test ends, pass or fail. While decoys hold Slurm's default ports (as another
Slurm on the machine would: they accept and never answer), the test checks that the daemons it
talks to are the ones it started, listening on ports of their own, with munge on its own socket;
and after the stop, that none of them -- and no process using its directory -- survives.

  slurm_array_job.py --binary B --repo ROOT --reference OUT --checker check_outputs.py --work DIR
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 300


def fail(message, work=None):
    print(f"FAIL: {message}")
    if work:
        for folder in (work, os.path.join(work, "slurm")):
            for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                if name.endswith(".log"):
                    print(f"--- {name}\n{open(os.path.join(folder, name), errors='replace').read()[-3000:]}")
    sys.exit(1)


DEFAULT_PORTS = (6817, 6818, 6819)  # Slurm's defaults: slurmctld, slurmd, slurmdbd


class Decoy:
    """Holds a port as another Slurm's daemon would: accepts connections and never answers. A client
    sent there instead of to the test's own daemons would hang until the test times out."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(16)
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def hold_default_ports():
    decoys = []
    for port in DEFAULT_PORTS:
        try:
            decoys.append(Decoy(port))
        except OSError:
            print(f"port {port} is already in use (another Slurm?); the test must not need it")
    return decoys


def listening_inodes(port):
    """Inodes of the sockets listening on TCP port PORT (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid):
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def read_pid(slurm_dir, name):
    try:
        return int(open(os.path.join(slurm_dir, f"{name}.pid")).read().strip())
    except (OSError, ValueError):
        return None


def check_own_daemons(slurm_dir):
    """The daemons serving the test are the ones local_slurm.sh started for slurm_dir, on ports and a
    munge socket of their own. Returns {name: pid}."""
    try:
        lines = open(os.path.join(slurm_dir, "slurm.conf")).read().splitlines()
    except OSError as e:
        fail(f"the Slurm serving the test has no configuration in {slurm_dir}: {e}", slurm_dir)
    conf = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    daemons = {}
    for name in ("munged", "slurmctld", "slurmd"):
        pid = read_pid(slurm_dir, name)
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
            cmdline = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")
        except (OSError, TypeError):
            fail(f"{name}: no live process from {slurm_dir}/{name}.pid ({pid})", slurm_dir)
        if comm != name or slurm_dir + "/" not in cmdline:
            fail(f"{name}: pid {pid} is {comm!r} ({cmdline.strip()}), not the {name} started for {slurm_dir}", slurm_dir)
        daemons[name] = pid
    for name, key in (("slurmctld", "SlurmctldPort"), ("slurmd", "SlurmdPort")):
        port = int(conf.get(key, "0"))
        if port == 0 or port in DEFAULT_PORTS:
            fail(f"{key}={conf.get(key)}: not a port of the test's own", slurm_dir)
        listeners = listening_inodes(port)
        if not listeners or not listeners <= socket_inodes(daemons[name]):
            fail(f"port {port} ({key}) is not held by the test's {name} {daemons[name]} alone", slurm_dir)
    socket_path = conf.get("AuthInfo", "").removeprefix("socket=")
    if not socket_path.startswith(slurm_dir + "/"):
        fail(f"AuthInfo={conf.get('AuthInfo')}: munge is not the test's own", slurm_dir)
    print(f"own daemons: munged {daemons['munged']} on {socket_path}, slurmctld {daemons['slurmctld']} on port "
          f"{conf['SlurmctldPort']}, slurmd {daemons['slurmd']} on port {conf['SlurmdPort']}")
    return daemons


def processes_using(path):
    """Processes other than this one whose command line, working directory or an open file names PATH."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            comm = open(f"/proc/{entry}/comm").read().strip()
            names = [open(f"/proc/{entry}/cmdline").read().replace("\0", " "), os.readlink(f"/proc/{entry}/cwd")]
            for fd in os.listdir(f"/proc/{entry}/fd"):
                try:
                    names.append(os.readlink(f"/proc/{entry}/fd/{fd}"))
                except OSError:
                    pass
        except OSError:
            continue
        if any(n == path or path + "/" in n for n in names):
            found.append(f"{entry} {comm}")
    return found


def check_stopped(slurm_dir, daemons, stop_rc):
    """After the stop: every daemon the test started has exited, and nothing uses its directory."""
    survivors = [f"{name} {pid}" for name, pid in daemons.items() if os.path.exists(f"/proc/{pid}")]
    if stop_rc != 0 or survivors:
        fail(f"daemons started by the test survive its end (stop exited {stop_rc}): {survivors}", slurm_dir)
    users = processes_using(slurm_dir)
    if users:
        fail(f"processes still use {slurm_dir} after the stop: {users}", slurm_dir)
    print(f"stopped: {', '.join(f'{n} {p}' for n, p in daemons.items())}; no process uses {slurm_dir}")


def run_jobs(args, slurm_dir):
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
                            capture_output=True, text=True, env=env, cwd=args.work, timeout=60)
    print(submit.stdout + submit.stderr, end="")
    m = re.search(r"array job (\d+) \(3 slices\), merge job (\d+)", submit.stdout)
    if submit.returncode != 0 or not m:
        fail("submission failed", args.work)
    array_id, merge_id = m.group(1), m.group(2)

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", f"{array_id},{merge_id}", "-o", "%i %T %r"], capture_output=True,
                               text=True, env=env, timeout=60).stdout.strip()
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
        info = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, env=env,
                              timeout=60).stdout
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
    slurm_dir = os.path.join(args.work, "slurm")
    script = os.path.join(args.repo, "tests/slurm/local_slurm.sh")
    # A run killed before it could stop its daemons (a CTest timeout) left them running in this
    # directory: stop them before it is deleted.
    if os.path.isdir(slurm_dir):
        subprocess.run(["bash", script, "stop", slurm_dir], capture_output=True)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    # SIGTERM (an interrupted suite) still stops the daemons: sys.exit runs the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAIL: terminated"))
    decoys = hold_default_ports()
    daemons = {}
    try:
        start = subprocess.run(["bash", script, "start", slurm_dir], capture_output=True, text=True, timeout=180)
        print(start.stdout + start.stderr, end="")
        if start.returncode != 0:
            fail("could not start the local Slurm (tools/install_deps.sh --tests installs slurm-wlm and munge; "
                 "root needed)", slurm_dir)
        daemons = check_own_daemons(slurm_dir)
        run_jobs(args, slurm_dir)
    finally:
        stop = subprocess.run(["bash", script, "stop", slurm_dir], capture_output=True, text=True, timeout=120)
        print(stop.stdout + stop.stderr, end="")
        for d in decoys:
            d.close()
    check_stopped(slurm_dir, daemons, stop.returncode)
    print("slurm array job: 3 slices through sbatch, merged by a dependent job, equal to a single run; "
          "the test's own daemons on their own ports, all stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
