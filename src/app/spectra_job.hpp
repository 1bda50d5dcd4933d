// A run of vindex_mpi end to end on every rank, in stages: plan, identify (model fingerprint and
// run id), open the outputs (and read a journal back), phase 3, share what the journal covers
// (and verify it), start the backend and the journal, compute this rank's share of the spectra,
// gather, and (rank 0) reduce and write the outputs.
//
// Failure handling: every stage that can fail on some ranks only is followed by a failure
// agreement (stage_agreement.hpp), and the compute stage carries failures in its progress rounds,
// so a bad tensor found by any rank ends the whole job promptly with that rank's message.
//
// No lost work: each rank journals what it finishes (vindex/run/journal.hpp); with --resume, rank 0
// reads the journals, tells every rank which matrices are done, and only the rest is computed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "resume.hpp"
#include "run_context.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/model/router_bias.hpp"
#include "vindex/output/output_files.hpp"
#include "vindex/phase3/capture_file.hpp"
#include "vindex/phase3/statistics.hpp"
#include "vindex/run/backend.hpp"
#include "vindex/run/journal.hpp"
#include "vindex/run/plan.hpp"
#include "vindex/run/rank_computation.hpp"
#include "vindex/run/run_identity.hpp"

namespace vindex::app {

class SpectraJob {
 public:
  explicit SpectraJob(const RunContext& ctx) : ctx_(ctx), request_(ctx.options.request) {}
  // The process exit code, the same on every rank.
  int run();

 private:
  // Each stage returns the agreed exit code when it failed on any rank.
  std::optional<int> plan();
  int print_plan() const;  // --dry-run
  std::optional<int> identify();
  std::optional<int> open_outputs();
  std::optional<int> start_backend();
  std::optional<int> phase3();
  std::optional<int> share_resumed();
  std::optional<int> compute();
  std::optional<int> gather_and_write();
  // After a failure: closes the journals and removes them where the model itself was found bad.
  int failed(int code, bool input_changed = false);

  const RunContext& ctx_;
  const RunRequest& request_;

  // plan
  std::optional<Checkpoint> checkpoint_;
  ModelLayout layout_;
  std::vector<int> selected_layers_;  // before slicing
  std::vector<int> layers_;           // this run's (slice's)
  std::vector<WorkItem> items_;       // the plan of those layers
  BackendKind backend_kind_ = BackendKind::cpu;
  std::optional<CaptureFile> capture_;  // phase 3's, opened and checked against the layout
  std::filesystem::path out_;           // --out, or the slice's directory
  std::string model_name_;
  // identify
  RunIdentity identity_;
  std::string run_id_;
  // open_outputs (rank 0)
  std::optional<OutputLock> lock_;
  Resumed resumed_;
  std::vector<RouterBias> router_biases_;
  // start_backend, phase3, compute
  std::unique_ptr<SpectrumBackend> backend_;
  std::optional<JournalWriter> journal_;
  std::optional<Phase3Results> phase3_;
  std::vector<std::uint64_t> done_items_;  // every rank: the plan items the journal covers
  std::vector<WorkItem> todo_;
  std::vector<MatrixResult> results_;      // this rank's
};

}  // namespace vindex::app
