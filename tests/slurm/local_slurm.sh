#!/usr/bin/env bash
# A private single-node Slurm for the array-job test: its own munged, slurmctld and slurmd, as root,
# on ports chosen free at start (never Slurm's defaults 6817-6819, never a port already in use),
# with configuration, munge key and socket, state, spool, logs and pid files under DIR. It never
# uses or reuses a daemon it did not start (another suite's Slurm, the system's munged), and `stop`
# ends exactly the daemons of DIR's pid files.
#   local_slurm.sh start DIR   -> prints SLURM_CONF=DIR/slurm.conf once the node is idle; on failure
#                                 stops what it started and exits 1
#   local_slurm.sh stop DIR    -> cancels DIR's jobs, stops its slurmd, slurmctld (and job steps) and
#                                 munged, and waits until they have exited (SIGKILL after 15 s)
# DIR may also come from VINDEX_SLURM_DIR. Debian's Slurm 22.05 works here with proctrack/linuxproc,
# task/none, select/cons_tres and a cgroup.conf of CgroupPlugin=cgroup/v1 + IgnoreSystemd=yes
# (22.05 has no CgroupPlugin=disabled).
set -euo pipefail
action="${1:-}"
dir="${2:-${VINDEX_SLURM_DIR:-}}"
if [ -z "$dir" ] || { [ "$action" != start ] && [ "$action" != stop ]; }; then
  echo "usage: local_slurm.sh start|stop DIR" >&2
  exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
export SLURM_CONF="$dir/slurm.conf"

# The live pid of daemon NAME from DIR's pid file, only if that process is NAME started for DIR
# (its command line names DIR): a stale pid file never makes us signal someone else's process.
ours() {
  local name="$1" pidfile="$dir/$1.pid" pid
  [ -s "$pidfile" ] || return 1
  pid="$(tr -dc 0-9 <"$pidfile")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/" || return 1
  echo "$pid"
}

# Job steps (slurmstepd) of our slurmd: their working directory or an open file lies under DIR.
our_steps() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
    if find "$p/cwd" "$p/fd" -maxdepth 1 -lname "$dir/*" 2>/dev/null | grep -q .; then
      echo "${p#/proc/}"
    fi
  done
}

stop() {
  local pids=() pid name
  if ours slurmctld >/dev/null; then
    scancel --quiet --partition=local 2>/dev/null || true
  fi
  for name in slurmd slurmctld; do
    pid="$(ours "$name")" && pids+=("$pid")
  done
  while read -r pid; do [ -n "$pid" ] && pids+=("$pid"); done < <(our_steps)
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  # munged last: slurmd and slurmctld authenticate their last messages with it.
  for _ in $(seq 1 150); do
    alive=()
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && break
    sleep 0.1
  done
  if [ ${#alive[@]} -gt 0 ]; then
    echo "local_slurm: SIGKILL to ${alive[*]} (still running 15 s after SIGTERM)" >&2
    kill -KILL "${alive[@]}" 2>/dev/null || true
  fi
  if pid="$(ours munged)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      echo "local_slurm: SIGKILL to munged $pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # A killed process is gone once its parent (init) has reaped it; wait for that too.
  for _ in $(seq 1 50); do
    alive=()
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  echo "local_slurm: still running after SIGKILL: ${alive[*]}" >&2
  return 1
}

if [ "$action" = stop ]; then
  stop
  exit $?
fi

for tool in slurmctld slurmd sbatch munged munge python3; do
  command -v "$tool" >/dev/null || { echo "local_slurm: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
  echo "local_slurm: needs root (slurmd runs jobs as their users)" >&2
  exit 1
fi
# A previous run in DIR that was killed before it could stop its daemons: stop them first.
stop >/dev/null 2>&1 || true
trap 'rc=$?; if [ $rc -ne 0 ]; then stop || true; fi' EXIT

# Two free TCP ports outside Slurm's defaults (6817 slurmctld, 6818 slurmd, 6819 slurmdbd) and
# below the kernel's ephemeral range, each bindable now on every address.
read -r ctld_port slurmd_port < <(python3 - <<'PY'
import random, socket
ports = []
while len(ports) < 2:
    port = random.randint(20000, 32000)
    if port in ports or 6817 <= port <= 6819:
        continue
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            continue
    ports.append(port)
print(*ports)
PY
)

host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
rm -rf "$dir/state" "$dir/spool" "$dir/tmp" "$dir/munge"
mkdir -p "$dir/state" "$dir/spool" "$dir/tmp" "$dir/munge"
chmod 700 "$dir/munge"
cat > "$dir/slurm.conf" <<CONF
ClusterName=vindex-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then cgroup=cgroup/v2; else cgroup=cgroup/v1; fi
cat > "$dir/cgroup.conf" <<CONF
CgroupPlugin=$cgroup
IgnoreSystemd=yes
CONF

# munge: a key of its own and a daemon on a socket of its own (--force: munged refuses root and
# group-writable parent directories otherwise); the system's munged, if any, is never used.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed" \
  || { echo "local_slurm: munged failed; see $dir/munged.log" >&2; tail -3 "$dir/munged.log" >&2; exit 1; }
munge --socket="$dir/munge/munge.socket" -n </dev/null >/dev/null \
  || { echo "local_slurm: munged does not answer on $dir/munge/munge.socket" >&2; exit 1; }

slurmctld -f "$SLURM_CONF" || { echo "local_slurm: slurmctld failed; see $dir/slurmctld.log" >&2; tail -3 "$dir/slurmctld.log" >&2; exit 1; }
slurmd -f "$SLURM_CONF" || { echo "local_slurm: slurmd failed; see $dir/slurmd.log" >&2; tail -3 "$dir/slurmd.log" >&2; exit 1; }

for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
  case "$state" in
    idle*|mixed*|allocated*)
      echo "local_slurm: node $host $state, slurmctld port $ctld_port, slurmd port $slurmd_port"
      echo "SLURM_CONF=$SLURM_CONF"
      exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
echo "local_slurm: the node did not come up; logs in $dir" >&2
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
