#!/usr/bin/env python3
"""Two hosts for real: vindex_mpi across three "hosts" on this machine, each a network namespace
(and a UTS namespace with its own hostname), joined by veth pairs to a bridge in a fourth, with
addresses from TEST-NET-1 (192.0.2.200/29) that exist only inside these namespaces and no route to
anything else. mpirun runs on the first host and starts Open MPI's daemons on the others through an
rsh agent (netns_rsh_agent.sh) instead of ssh; all MPI traffic goes over TCP on that network
(vader, shared memory, only between ranks of one host).

  1. a one-host run (mpiexec -n 2, no namespace) is the reference;
  2. vxnode1:2,vxnode2:2 -- files identical to the reference; the provenance's `hosts` says which
     ranks ran where with node-local ranks 0,1 on each host, as the ranks themselves saw it;
  3. vxnode1:1,vxnode2:2,vxnode3:1 -- once vxnode2's ranks have journaled results, every process
     in vxnode2's namespace gets SIGKILL: the job must end non-zero within seconds with a message
     naming vxnode2, leave no final file and no process on the other hosts, and keep the journal;
  4. --resume on vxnode1:1,vxnode3:2 completes, its files identical to the reference.

Everything the test makes (namespaces PREFIX-<pid>-*, their veths, /etc/netns/PREFIX-<pid>-*,
the processes inside) is removed at the end, also when a check fails or the test is interrupted
(SIGINT/SIGTERM); after a SIGKILL (a CTest timeout) the next run removes what is left. Where
network namespaces cannot be made (not root, a container without CAP_SYS_ADMIN/CAP_NET_ADMIN, no
`ip` or `unshare`) or the MPI is not Open MPI, it exits 77 (CTest: skipped) and prints why.

  multi_host.py --mpiexec M --np-flag -n --binary B --generator tools/make_large_fixture.py
                --checker tests/integration/check_outputs.py --agent tests/integration/netns_rsh_agent.sh
                --work DIR
"""
import argparse
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py

import mpi_runner
from checks import check, finish

SKIP = 77
PREFIX = "vxmh"            # every namespace of this test: vxmh-<pid of the test>-<host or "switch">
# A slice of TEST-NET-1 (RFC 5737, documentation only): the addresses exist only inside the test's
# namespaces, apart from whatever this machine's own network uses (a sandbox's may use 192.0.2.x).
SUBNET = "192.0.2.200/29"
HOSTS = ("vxnode1", "vxnode2", "vxnode3")
FINAL = ("vindex.h5", "phase1_moe_svd.json", "phase1_moe_svd_agg.json", "moe_config.json")
JOURNAL = ".vindex-journal"
MATRICES = 129             # the fixture: 1 dense + 8 MoE layers x 16 experts
BUDGET_S = 480             # every wait of the test together; CTest's TIMEOUT is above it

deadline = time.monotonic() + BUDGET_S
children = set()  # process groups started here, killed on SIGINT/SIGTERM


def left(limit):
    """Seconds a wait may take: `limit`, or what is left of the whole test's budget."""
    return max(1.0, min(limit, deadline - time.monotonic()))


def ip(*argv, check_rc=True):
    p = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def netns_pids(ns):
    p = ip("netns", "pids", ns, check_rc=False)
    return [int(x) for x in p.stdout.split()] if p.returncode == 0 else []


def remove_namespaces(names):
    """Kills every process inside, deletes the namespace (its veth end goes with it) and its /etc/netns
    directory. Returns what could not be removed."""
    failed = []
    for ns in names:
        for _ in range(50):
            pids = netns_pids(ns)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if os.path.exists(f"/run/netns/{ns}") and ip("netns", "del", ns, check_rc=False).returncode != 0:
            failed.append(ns)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
    try:
        os.rmdir("/etc/netns")  # only when empty: whatever else is there stays
    except OSError:
        pass
    release_run_netns()
    return failed


# `ip netns add` makes /run/netns and bind-mounts it onto itself the first time; that mount outlives
# the namespaces. Once no namespace is left in it, it goes (`ip` makes it again when needed; umount
# fails while any namespace is mounted inside, so one made meanwhile by someone else is safe).
RUN_NETNS = "/run/netns"


def is_mount_point(path):
    # os.path.ismount misses a directory bind-mounted onto itself, which is what ip makes.
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def release_run_netns():
    try:
        if os.path.isdir(RUN_NETNS) and not os.listdir(RUN_NETNS):
            if is_mount_point(RUN_NETNS):
                subprocess.run(["umount", RUN_NETNS], capture_output=True, timeout=30)
            if not is_mount_point(RUN_NETNS):
                os.rmdir(RUN_NETNS)
    except OSError:
        pass


def test_pid_of(name):
    """The pid in a name this test gives (PREFIX-<pid>-<host>), or None."""
    m = re.fullmatch(rf"{PREFIX}-(\d+)-[a-z0-9]+", name)
    return int(m[1]) if m else None


def test_alive(pid):
    try:
        return b"multi_host.py" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def remove_stale():
    """Namespaces of earlier runs of this test whose process is gone (killed by a CTest timeout)."""
    names = set()
    for where in ("/run/netns", "/etc/netns"):
        for name in os.listdir(where) if os.path.isdir(where) else []:
            pid = test_pid_of(name)
            if pid is not None and pid != os.getpid() and not test_alive(pid):
                names.add(name)
    if names:
        print(f"removing namespaces left by an earlier run: {' '.join(sorted(names))}")
        remove_namespaces(sorted(names))


class Network:
    """The switch and the hosts; up() makes them, down() removes them (idempotent)."""

    def __init__(self, hosts):
        self.tag = f"{PREFIX}-{os.getpid()}"
        self.hosts = hosts
        self.switch = f"{self.tag}-switch"
        self.address = {h: f"192.0.2.{201 + i}" for i, h in enumerate(hosts)}
        self.made = []

    def ns(self, host):
        return f"{self.tag}-{host}"

    def add(self, ns):
        self.made.append(ns)  # before it exists: a failure half-way still removes it
        ip("netns", "add", ns)
        # IPv4 on SUBNET only: no IPv6 (its link-local addresses would send neighbour discovery).
        ip("netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")

    def up(self):
        self.add(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        hosts_file = "127.0.0.1 localhost\n" + "".join(f"{a} {h}\n" for h, a in self.address.items())
        for i, host in enumerate(self.hosts):
            ns, port = self.ns(host), f"port{i + 1}"
            self.add(ns)
            # Both ends are made inside their namespaces: nothing appears in this machine's own.
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", self.switch)
            ip("-n", self.switch, "link", "set", port, "master", "br0")
            ip("-n", self.switch, "link", "set", port, "up")
            ip("-n", ns, "addr", "add", f"{self.address[host]}/29", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")  # Open MPI's daemons need a loopback
            # `ip netns exec` bind-mounts this over /etc/hosts: names resolve without DNS.
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/hosts", "w") as f:
                f.write(hosts_file)

    def down(self):
        failed = remove_namespaces(self.made)
        self.made = failed
        return failed

    def on(self, host, argv):
        """argv run on `host`: in its network namespace and a UTS namespace named after it."""
        return ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "/bin/sh", "-c",
                'hostname "$1" && shift && exec "$@"', "sh", host, *argv]


def namespaces_unavailable(tag):
    """Why this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return "not root: network and UTS namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN"
    for tool in ("ip", "unshare"):
        if not shutil.which(tool):
            return f"`{tool}` not found (Debian/Ubuntu: iproute2, util-linux)"
    probe = f"{tag}-probe"
    try:
        steps = [["ip", "netns", "add", probe],
                 ["ip", "-n", probe, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb"],
                 ["ip", "netns", "exec", probe, "unshare", "--uts", "hostname", "probe"]]
        for argv in steps:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                return f"`{' '.join(argv)}` failed: {p.stderr.strip() or p.returncode}"
    finally:
        remove_namespaces([probe])
    return None


def mpirun(args, net, hosts, vindex_args):
    """mpirun on the first host, ranks on `hosts` ("vxnode1:2,vxnode2:2"), TCP on SUBNET only."""
    return net.on(HOSTS[0], [
        args.mpiexec, "--host", hosts, "--oversubscribe",
        "--mca", "plm_rsh_agent", f"{os.path.abspath(args.agent)} {net.tag}",
        "--mca", "plm_rsh_no_tree_spawn", "1",
        "--mca", "btl", "tcp,vader,self",
        "--mca", "btl_tcp_if_include", SUBNET, "--mca", "oob_tcp_if_include", SUBNET,
        args.binary, *vindex_args])


def die_with_the_test():
    """In the child before exec: SIGKILL when the test dies, however it dies (CTest's timeout)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=die_with_the_test)
    children.add(proc.pid)
    return proc


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(cmd, limit, label):
    """(exit code, stdout, stderr); a hang past the limit is killed and fails the test."""
    proc = start(cmd)
    try:
        out, err = proc.communicate(timeout=left(limit))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        check(False, f"HANG: {label} did not end within {limit} s")
        return None, out, err
    finally:
        children.discard(proc.pid)
    return proc.returncode, out, err


def tail(text, n=2000):
    """The end of an output without the progress line's carriage-return updates."""
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("[phase")]
    return "\n".join(lines)[-n:]


def provenance(out):
    with h5py.File(os.path.join(out, "vindex.h5"), "r") as f:
        text = f.attrs["provenance"]
    p = json.loads(text.decode() if isinstance(text, bytes) else text)
    with open(os.path.join(out, "phase1_moe_svd.json")) as f:
        check(json.load(f)["provenance"] == p, f"{out}: vindex.h5 and phase1_moe_svd.json differ in provenance")
    return p


def expected_hosts(spec):
    """The placement Open MPI's default (by slot) mapping gives `spec`, node-local ranks from 0."""
    hosts, rank = [], 0
    for item in spec.split(","):
        name, slots = item.split(":")
        hosts.append({"name": name, "ranks": [{"rank": rank + i, "node_rank": i} for i in range(int(slots))]})
        rank += int(slots)
    return hosts


def check_hosts(out, spec, label):
    p = provenance(out)
    want = expected_hosts(spec)
    check(p.get("hosts") == want, f"{label}: provenance hosts {json.dumps(p.get('hosts'))}, expected {json.dumps(want)}")
    check(p.get("host_rank0") == HOSTS[0], f"{label}: host_rank0 {p.get('host_rank0')!r}")
    check(p.get("ranks") == sum(len(h["ranks"]) for h in want), f"{label}: ranks {p.get('ranks')}")
    print(f"{label}: hosts {json.dumps(p.get('hosts'))}")


def compare(args, a, b, label):
    p = subprocess.run([sys.executable, args.checker, "identical", a, b], capture_output=True, text=True, timeout=left(120))
    check(p.returncode == 0, f"{label}: outputs differ from the one-host run:\n{p.stdout}{p.stderr}")


def journal_results_bytes(out, rank):
    """Bytes in rank's journal beyond its identity record (a batch of results has landed)."""
    d = os.path.join(out, JOURNAL)
    for f in os.listdir(d) if os.path.isdir(d) else []:
        if f.endswith(f"-rank-{rank:05d}.vjl"):
            data = open(os.path.join(d, f), "rb").read()
            if len(data) >= 24:
                return max(0, len(data) - 24 - int.from_bytes(data[8:16], "little"))
    return 0


def killed_host_run(args, net, model, reference):
    spec, victim = "vxnode1:1,vxnode2:2,vxnode3:1", HOSTS[1]
    victim_ranks = (1, 2)
    out = os.path.join(args.work, "killed")
    proc = start(mpirun(args, net, spec, ["--model", model, "--out", out, "--journal-seconds", "0.2"]))
    try:
        wait_until = time.monotonic() + left(180)
        ready = False
        while time.monotonic() < wait_until and proc.poll() is None:
            if all(journal_results_bytes(out, r) > 0 for r in victim_ranks):
                ready = True
                break
            time.sleep(0.05)
        check(ready, f"{victim}'s ranks never journaled a batch (or the run ended first)")
        if not ready:
            return
        pids = netns_pids(net.ns(victim))
        names = sorted({open(f"/proc/{p}/comm").read().strip() for p in pids if os.path.exists(f"/proc/{p}/comm")})
        check({"orted", os.path.basename(args.binary)[:15]} <= set(names), f"processes on {victim}: {names}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed_at = time.monotonic()
        print(f"killed every process on {victim} ({len(pids)}: {', '.join(names)})")
        try:
            _, stderr = proc.communicate(timeout=left(60))
        except subprocess.TimeoutExpired:
            check(False, f"HANG: the job did not end within 60 s of {victim}'s death")
            return
        ended = time.monotonic() - killed_at
        print(f"the job ended {ended:.1f} s later with exit {proc.returncode}; its messages:\n{tail(stderr)}")
        check(proc.returncode != 0, "the job exited 0 after a host died")
        check(ended < 30, f"the job took {ended:.1f} s to end after {victim} died")
        # Nothing prints host names but error reports: Open MPI's "Remote daemon: ... on node
        # vxnode2" (the launcher lost the host's daemon) or "Peer host: vxnode2" (a rank lost its
        # peer), or vindex_mpi's own. Not enough: "process rank 0 ... on node vxnode1 exited on
        # signal 13 (Broken pipe)", a healthy rank killed by writing to the dead host's socket.
        named = [line.strip() for line in stderr.splitlines() if re.search(rf"\b{victim}\b", line)]
        check(named, f"no message names {victim}:\n{tail(stderr)}")
        left_over = sorted(os.listdir(out))
        check(not any(f in FINAL for f in left_over), f"final files after the kill: {left_over}")
        check(JOURNAL in left_over, f"the journal is gone after the kill: {left_over}")
        # No orphan: nothing of the job survives on the other hosts.
        others = [h for h in HOSTS if h != victim]
        wait_until = time.monotonic() + left(15)
        while time.monotonic() < wait_until and any(netns_pids(net.ns(h)) for h in others):
            time.sleep(0.1)
        check(not any(netns_pids(net.ns(h)) for h in others),
              f"processes left on the other hosts: { {h: netns_pids(net.ns(h)) for h in others} }")
    finally:
        if proc.poll() is None:
            kill_group(proc)
            proc.communicate()
        children.discard(proc.pid)

    # Resume on the two hosts left (vxnode3 now has two ranks).
    spec = "vxnode1:1,vxnode3:2"
    code, _, err = run(mpirun(args, net, spec, ["--model", model, "--out", out, "--resume"]), 240, "the resumed run")
    check(code == 0, f"resume on {spec}: exit {code}: {tail(err)}")
    resumed = [line for line in err.splitlines() if line.startswith("vindex_mpi: resuming:")]
    check(len(resumed) == 1, f"resume: no 'resuming' line:\n{tail(err)}")
    if resumed:
        print(resumed[0])
        done = int(resumed[0].split("resuming: ")[1].split(" of ")[0])
        check(0 < done < MATRICES, f"resume: {done} of {MATRICES} matrices already done; expected some but not all")
    if code == 0:
        compare(args, out, reference, f"resumed on {spec}")
        check_hosts(out, spec, f"resumed on {spec}")
        files = os.listdir(out)
        check(set(FINAL) <= set(files) and JOURNAL not in files, f"after the resume: {sorted(files)}")


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--generator", required=True)
    ap.add_argument("--checker", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    args.work = os.path.abspath(args.work)

    remove_stale()
    if not mpi_runner.is_open_mpi(args.mpiexec):
        print(f"SKIPPED: {args.mpiexec} is not Open MPI; the test drives Open MPI's rsh launcher")
        return SKIP
    net = Network(HOSTS)
    reason = namespaces_unavailable(net.tag)
    if reason:
        print(f"SKIPPED: this machine cannot make network namespaces: {reason}")
        return SKIP

    # Whatever happens from here on, the namespaces go: at exit, and on SIGINT/SIGTERM. CTest's
    # SIGKILL on its timeout cannot be caught: every child dies with the test (die_with_the_test),
    # Open MPI's daemons then lose mpirun and end, and the next run's remove_stale() removes the rest.
    atexit.register(net.down)

    def interrupted(signum, _frame):
        print(f"interrupted ({signal.Signals(signum).name}): removing the namespaces", flush=True)
        for pgid in list(children):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        net.down()
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)

    try:
        mpi_runner.fresh_dir(args.work)
        os.makedirs(args.work)
        started = time.monotonic()
        net.up()
        for host in HOSTS:  # the only way out of a host: the test network
            routes = [r.strip() for r in ip("-n", net.ns(host), "route", "show").stdout.splitlines() if r.strip()]
            check(routes == [f"{SUBNET} dev eth0 proto kernel scope link src {net.address[host]}"],
                  f"{host}: routes other than {SUBNET}: {routes}")
            addresses = ip("-n", net.ns(host), "-o", "addr", "show").stdout
            check(re.findall(r"inet6? (\S+)", addresses) == ["127.0.0.1/8", f"{net.address[host]}/29"],
                  f"{host}: addresses {addresses}")
        code, out, err = run(net.on(HOSTS[1], ["hostname"]), 30, "hostname on vxnode2")
        check(code == 0 and out.strip() == HOSTS[1], f"hostname in {HOSTS[1]}'s namespaces: {out!r} {err!r}")

        # 8 MoE layers x 16 experts of 1024 x 1024 (F16): seconds of work, as kill_and_resume's.
        model = os.path.join(args.work, "model")
        subprocess.run([sys.executable, args.generator, "--out", model, "--experts", "16", "--moe-layers", "8",
                        "--hidden", "1024", "--inter", "1024", "--projections", "down"],
                       check=True, stdout=subprocess.DEVNULL, timeout=left(300))
        reference = os.path.join(args.work, "one_host")
        t = time.monotonic()
        code, _, err = run(mpi_runner.mpi_command(args, 2, ["--model", model, "--out", reference]), 240, "the one-host run")
        check(code == 0, f"one-host run: exit {code}: {tail(err)}")
        print(f"one host, 2 ranks: {time.monotonic() - t:.1f} s")
        if code != 0:
            return finish("multi-host over TCP")

        spec = "vxnode1:2,vxnode2:2"
        out = os.path.join(args.work, "two_hosts")
        t = time.monotonic()
        code, _, err = run(mpirun(args, net, spec, ["--model", model, "--out", out]), 240, "the two-host run")
        check(code == 0, f"{spec}: exit {code}: {tail(err)}")
        print(f"{spec}: {time.monotonic() - t:.1f} s")
        if code == 0:
            compare(args, out, reference, spec)
            check_hosts(out, spec, spec)

        killed_host_run(args, net, model, reference)
        print(f"all runs: {time.monotonic() - started:.1f} s")
    finally:
        failed = net.down()
        check(not failed, f"could not remove namespaces {failed}")
        mounts = open("/proc/self/mountinfo").read()
        check(net.tag not in mounts, f"mounts of {net.tag} remain")
        check(not any(n.startswith(net.tag) for n in (os.listdir(RUN_NETNS) if os.path.isdir(RUN_NETNS) else [])),
              f"namespaces of {net.tag} remain")
        check(not is_mount_point(RUN_NETNS) or os.listdir(RUN_NETNS), f"{RUN_NETNS} is still mounted, and empty")
    return finish("multi-host over TCP")


if __name__ == "__main__":
    sys.exit(main())
