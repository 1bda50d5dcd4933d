#include "vindex/blas_kernels.hpp"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <set>

#include <cblas.h>
#include <fmt/format.h>

namespace vindex {
namespace {

constexpr const char* kRestartMarker = "VINDEX_MPI_BLAS_RESTARTED";

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

}  // namespace

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

void restart_with_fitting_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv(kRestartMarker)) return;
  const std::string better = better_blas_kernels();
  if (better.empty()) return;
  if (::setenv("OPENBLAS_CORETYPE", better.c_str(), 1) != 0 || ::setenv(kRestartMarker, openblas_get_corename(), 1) != 0)
    return;
  // The binary's own path, not /proc/self/exe: the process name (comm, what ps and pkill see) is the
  // basename of the path executed.
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) ::execv(self.c_str(), argv);
  // The restart failed (no /proc, say): go on with the kernels loaded; blas_kernel_message() warns.
  ::unsetenv("OPENBLAS_CORETYPE");
  ::unsetenv(kRestartMarker);
}

std::string blas_kernel_message() {
  const std::string core = openblas_get_corename();
  if (const std::string better = better_blas_kernels(); !better.empty())
    return fmt::format("warning: OpenBLAS ({}) runs its '{}' kernels, older than this CPU's {}; the spectra will be "
                       "several times slower: unset OPENBLAS_CORETYPE, or set it to {} (README, \"Performance\")",
                       openblas_get_config(), core, has_avx512() ? "AVX-512" : "AVX2", better);
  if (const char* fallback = std::getenv(kRestartMarker))
    return fmt::format("note: OpenBLAS did not recognise this CPU and chose its '{}' kernels; vindex_mpi restarted with "
                       "OPENBLAS_CORETYPE={} (set OPENBLAS_CORETYPE yourself to choose)",
                       fallback, core);
  return "";
}

}  // namespace vindex
