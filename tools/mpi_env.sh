# Sourced by the scripts that start MPI jobs: settings Open MPI needs on a single small machine.
# Running as root (containers, CI) must be allowed explicitly.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# More ranks than cores is fine for the demo and tests (a 2-core laptop or CI runner).
export OMPI_MCA_rmaps_base_oversubscribe=1
