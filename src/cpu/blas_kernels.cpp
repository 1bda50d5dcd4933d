// The BLAS kernel check and the restart that fixes a fallback (blas_kernels.hpp).
#include "blas_kernels.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <set>

#if defined(__linux__)
#include <sys/auxv.h>
#endif

#include <cblas.h>
#include <fmt/format.h>

#include "blas_lapack.hpp"

namespace vindex {
namespace {

constexpr const char* kRestartMarker = "VINDEX_MPI_BLAS_RESTARTED";

// x86 only: __builtin_cpu_supports does not know these names elsewhere (aarch64 builds).
bool has_avx512() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

#if defined(__x86_64__)
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

// The path to execute again, or nullptr where a restart would not run this same program under this same name.
// It is the path the process was started through (the kernel's AT_EXECFN; relative paths stay valid: nothing has
// changed directory yet), not /proc/self/exe's target: the process name (comm, what ps, pkill and Slurm see) is
// the basename of the path executed, which for a symbolic link is the link's name. Only while that path still
// names the running file (same device and inode as /proc/self/exe): not once a redeploy has replaced or deleted
// the binary (its /proc/self/exe then reads "... (deleted)"), and not when the program was started through the
// dynamic loader (`ld.so ./vindex_mpi ...`: /proc/self/exe is the loader, AT_BASE is 0, and executing the loader
// with the program's arguments would make it read them as its own).
const char* restart_path() {
#if defined(__linux__)
  if (::getauxval(AT_BASE) == 0) return nullptr;
  const auto* path = reinterpret_cast<const char*>(::getauxval(AT_EXECFN));
  struct stat running{};
  struct stat named{};
  if (path == nullptr || ::stat("/proc/self/exe", &running) != 0 || ::stat(path, &named) != 0) return nullptr;
  if (running.st_dev != named.st_dev || running.st_ino != named.st_ino) return nullptr;
  return path;
#else
  return nullptr;
#endif
}

// The kernel family to ask for ("SkylakeX", "Haswell"), or "" when the kernels fit this CPU or
// nothing better is known.
std::string better_blas_kernels() {
#if defined(__x86_64__)
  const std::string core = lower(openblas_get_corename());
  // OpenBLAS's kernel families for AVX-512, and those for AVX2 or better (names as its
  // openblas_get_corename() reports them; newer releases add more).
  static const std::set<std::string> avx512{"skylakex", "cooperlake", "sapphirerapids"};
  static const std::set<std::string> avx2{"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
  if (has_avx512() && !avx512.count(core)) return "SkylakeX";
  if (has_avx2() && !avx2.count(core)) return "Haswell";
#endif
  return "";
}

}  // namespace

void cpu::use_one_blas_thread() {
  thread_local bool set = false;
  if (set) return;
  openblas_set_num_threads(1);
  set = true;
}

void restart_with_fitting_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv(kRestartMarker)) return;
  const std::string better = better_blas_kernels();
  if (better.empty()) return;
  if (::setenv("OPENBLAS_CORETYPE", better.c_str(), 1) != 0 || ::setenv(kRestartMarker, openblas_get_corename(), 1) != 0)
    return;
  if (const char* self = restart_path()) ::execv(self, argv);
  // No restart (no /proc, the binary replaced, started through ld.so): go on with the kernels loaded;
  // blas_kernel_message() warns.
  ::unsetenv("OPENBLAS_CORETYPE");
  ::unsetenv(kRestartMarker);
}

std::string blas_kernel_message() {
  const std::string core = openblas_get_corename();
  if (const std::string better = better_blas_kernels(); !better.empty())
    return fmt::format("warning: OpenBLAS ({}) runs its '{}' kernels, older than this CPU's {}; the spectra will be "
                       "slower (2.2x with 'Prescott'): {} (README, \"Performance\")",
                       openblas_get_config(), core, has_avx512() ? "AVX-512" : "AVX2",
                       std::getenv("OPENBLAS_CORETYPE")
                           ? fmt::format("unset OPENBLAS_CORETYPE, or set it to {}", better)
                           : fmt::format("vindex_mpi could not restart itself with others; set OPENBLAS_CORETYPE={}",
                                         better));
  if (const char* fallback = std::getenv(kRestartMarker))
    return fmt::format("note: OpenBLAS did not recognise this CPU and chose its '{}' kernels; vindex_mpi restarted with "
                       "OPENBLAS_CORETYPE={} (set OPENBLAS_CORETYPE yourself to choose)",
                       fallback, core);
  return "";
}

}  // namespace vindex
