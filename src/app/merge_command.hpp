// `vindex_mpi merge`: the slices of a Slurm array job joined into one run's output files.
// Returns the process exit code; needs no MPI.
#pragma once

namespace vindex::app {

// argv[0] is "merge".
int run_merge(int argc, char** argv);

}  // namespace vindex::app
