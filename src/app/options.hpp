// The command line of vindex_mpi, parsed and checked (README, "Command line").
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <utility>
#include <string>
#include <vector>

#include "vindex/model/layout.hpp"
#include "vindex/run/run_request.hpp"

namespace vindex::app {

struct Options {
  std::filesystem::path model;
  std::filesystem::path out;
  RunRequest request;          // phases, projections, k values, precision, backend, layers, slice
  std::filesystem::path activations;  // phase 3: the capture file (docs/phase3.md)
  bool share_gpus = false;     // allow more ranks than GPUs on a node
  int host_helpers = -1;       // CUDA: host threads solving eigenvalues; -1: the rank's threads - 1
  bool dry_run = false;
  bool overwrite = false;
  bool resume = false;         // finish the run journaled in --out
  bool verify_all = false;     // with --resume: re-read and re-hash every matrix reused from the journal
  double journal_seconds = 30; // seconds between a rank's journal batches
  int threads = 0;             // 0: cores available to this rank
  std::string name;            // model name written to the outputs; empty: from config/directory
  double progress_seconds = 30;  // interval of progress lines when stderr is not a terminal
  std::string command_line;
};

// What parsing decided: run with options, or print text (help) and exit with code 0.
struct ParseResult {
  std::optional<Options> options;
  std::string help_text;
};

// Throws UsageError (exit 2) with one line for bad arguments.
ParseResult parse_command_line(int argc, char** argv);

// "0,1,15-20" -> {0, 1, 15, ..., 20}. Syntax errors are UsageErrors naming the option.
std::set<int> parse_layer_list(const std::string& text);
// "64,128" -> {64, 128}: positive, deduplicated, ascending.
std::vector<int> parse_k_list(const std::string& text);
// "down,gate" or "down_proj,gate_proj" -> {gate, down}: deduplicated, in gate, up, down order.
std::vector<Projection> parse_projection_list(const std::string& text);
// "1,2,3" -> {1, 2, 3}.
std::vector<int> parse_phase_list(const std::string& text);
// "2/8" -> {2, 8} with 0 <= I < N.
std::pair<int, int> parse_slice(const std::string& text);

}  // namespace vindex::app
