"""Running vindex_mpi under mpiexec for the integration tests (shared by the test scripts)."""
import os
import shutil
import subprocess
import sys


def add_arguments(parser):
    parser.add_argument("--mpiexec", required=True)
    parser.add_argument("--np-flag", default="-n")
    parser.add_argument("--binary", required=True)


def mpi_command(args, np, vindex_args):
    """The command line that runs `np` ranks of the binary; Open MPI also needs --oversubscribe on
    machines with fewer cores than ranks (the environment variable is not honoured everywhere)."""
    cmd = [args.mpiexec, args.np_flag, str(np)]
    if is_open_mpi(args.mpiexec):
        cmd.append("--oversubscribe")
    return cmd + [args.binary] + list(vindex_args)


_open_mpi = {}


def is_open_mpi(mpiexec):
    if mpiexec not in _open_mpi:
        try:
            out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        _open_mpi[mpiexec] = "Open MPI" in out or "OpenRTE" in out
    return _open_mpi[mpiexec]


def run(args, np, vindex_args, timeout=240, env=None):
    """Runs and returns (exit code, stdout, stderr); a run past `timeout` (a hang) fails the test.
    `env`: the launcher's environment (default: this process's)."""
    return run_with(args, np, vindex_args, [], timeout, env)


def run_with(args, np, vindex_args, launcher_args, timeout=240, env=None):
    """run() with extra options for the launcher (e.g. --bind-to core), placed before the binary."""
    cmd = mpi_command(args, np, vindex_args)
    at = cmd.index(args.binary)
    cmd = cmd[:at] + list(launcher_args) + cmd[at:]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        sys.exit(f"HANG: no exit within {timeout} s: {' '.join(cmd)}")
    return p.returncode, p.stdout, p.stderr


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


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
