// Which kernels the BLAS library runs, and choosing better ones where it fell back to generic code.
// OpenBLAS picks its kernels from the CPU model once, when the library loads; a release older than
// the CPU (Debian 12's 0.3.21 on Emerald Rapids, family 6 model 207) does not recognise it and runs
// its "Prescott" (SSE3) kernels: the spectra were 2.2x slower on the development machine than with
// its SkylakeX kernels (README, "Performance"). Only the environment variable OPENBLAS_CORETYPE,
// read at load time, chooses otherwise, so the fix is a restart of the program with it set.
#pragma once

#include <string>

namespace vindex {

// Before MPI starts: when OpenBLAS runs kernels older than the CPU and the environment does not
// choose any (OPENBLAS_CORETYPE unset), re-executes this program (same pid, same arguments) with
// OPENBLAS_CORETYPE set, once. Returns when no restart is needed or the restart failed.
void restart_with_fitting_blas_kernels(char** argv);

// One line for rank 0 to print, or "": a warning when the kernels are still older than the CPU
// (the user chose them, or the restart failed), a note when vindex_mpi chose them.
std::string blas_kernel_message();

}  // namespace vindex
