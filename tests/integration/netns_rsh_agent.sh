#!/bin/sh
# Open MPI's rsh agent for tests/integration/multi_host.py (--mca plm_rsh_agent "THIS PREFIX"):
# where ssh would log into HOST and run COMMAND with a shell, this runs COMMAND with /bin/sh in
# HOST's network namespace PREFIX-HOST and in a new UTS namespace whose hostname is HOST -- one
# "host" per network namespace of this machine. It execs into them, so the daemon it starts is
# mpirun's child, as the ssh client would be, and dies with the host.
#   netns_rsh_agent.sh PREFIX HOST COMMAND...
set -u
prefix=$1
host=$2
shift 2
exec ip netns exec "$prefix-$host" unshare --uts /bin/sh -c 'hostname "$1" && exec /bin/sh -c "$2"' sh "$host" "$*"
