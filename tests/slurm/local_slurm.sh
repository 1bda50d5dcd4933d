#!/usr/bin/env bash
# Starts (or reuses) a single-node Slurm on this machine for the array-job test: munged, slurmctld
# and slurmd as root, configuration and state under $VINDEX_SLURM_DIR (default /tmp/vindex-slurm).
#   source tests/slurm/local_slurm.sh start   -> exports SLURM_CONF; waits until the node is idle
#   tests/slurm/local_slurm.sh stop
# Debian's Slurm 22.05 works here with proctrack/linuxproc, task/none, select/cons_tres and a
# cgroup.conf of CgroupPlugin=cgroup/v1 + IgnoreSystemd=yes (22.05 has no CgroupPlugin=disabled).
set -euo pipefail
dir="${VINDEX_SLURM_DIR:-/tmp/vindex-slurm}"
action="${1:-start}"

stop() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
}

if [ "$action" = stop ]; then
  stop
  exit 0
fi

for tool in slurmctld slurmd sbatch munged; do
  command -v "$tool" >/dev/null || { echo "local_slurm: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
mkdir -p "$dir/state" "$dir/spool"
cat > "$dir/slurm.conf" <<CONF
ClusterName=vindex-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then cgroup=cgroup/v2; else cgroup=cgroup/v1; fi
cat > "$dir/cgroup.conf" <<CONF
CgroupPlugin=$cgroup
IgnoreSystemd=yes
CONF
export SLURM_CONF="$dir/slurm.conf"

# munge: a key, and the daemon (--force: it refuses a world-writable /tmp otherwise).
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n </dev/null >/dev/null 2>&1; then
  if id munge >/dev/null 2>&1; then
    su -s /bin/sh munge -c "/usr/sbin/munged --force" 2>/dev/null || /usr/sbin/munged --force
  else
    /usr/sbin/munged --force
  fi
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$dir/slurmctld.pid" || slurmctld -f "$SLURM_CONF" || { echo "local_slurm: slurmctld failed; see $dir/slurmctld.log" >&2; exit 1; }
running "$dir/slurmd.pid" || slurmd -f "$SLURM_CONF" || { echo "local_slurm: slurmd failed; see $dir/slurmd.log" >&2; tail -3 "$dir/slurmd.log" >&2; exit 1; }

for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
  case "$state" in
    idle*|mixed*|allocated*) echo "local_slurm: node $host $state (SLURM_CONF=$SLURM_CONF)"; return 0 2>/dev/null || exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
echo "local_slurm: the node did not come up; logs in $dir" >&2
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
