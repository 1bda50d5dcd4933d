// `vindex_mpi inspect --model DIR`: what a checkpoint holds and what a run would cost, from the
// headers alone (no weight is read, no MPI is started). Returns the process exit code.
#pragma once

namespace vindex::app {

// argv[0] is "inspect".
int run_inspect(int argc, char** argv);

}  // namespace vindex::app
