// What every stage of a run shares: the options, the communicator and how the job reports.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "../mpi/communicator.hpp"
#include "options.hpp"

namespace vindex::app {

struct RunContext {
  const Options& options;
  const mpi::Communicator& comm;
  int threads = 1;  // per rank, resolved from --threads or the cores available
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::string started_utc;
};

// The cores this process may run on (its CPU affinity: the launcher's binding).
int usable_cores();

// Threads per rank when --threads is 0: the cores this process may run on, divided among the
// ranks of the node that may run on the same cores.
int default_threads(int ranks_sharing_cpus);

// Peak resident set size of this process, in MiB.
double peak_rss_mib();

std::string utc_now_iso8601();

// `path` made absolute and normalised (symbolic links resolved where they exist), for provenance.
std::string absolute_path(const std::filesystem::path& path);

// This machine's host name.
std::string host_name();

}  // namespace vindex::app
