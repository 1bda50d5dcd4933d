# Sourced by the scripts that run Python tools: sets VINDEX_PYTHON to the first interpreter that has
# h5py, numpy and matplotlib (a pyenv or venv python on PATH often lacks them while the
# distribution's /usr/bin/python3 has them).
VINDEX_PYTHON=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import h5py, numpy, matplotlib" 2>/dev/null; then
    VINDEX_PYTHON="$(command -v "$candidate")"
    break
  fi
done
if [ -z "$VINDEX_PYTHON" ]; then
  echo "no Python 3 with h5py, numpy and matplotlib (apt-get install python3-h5py python3-matplotlib)" >&2
  return 1 2>/dev/null || exit 1
fi
export VINDEX_PYTHON
