// Phase 3 across ranks (see phase3_stage.hpp).
#include "phase3_stage.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "../mpi/gather.hpp"
#include "vindex/phase3/capture_file.hpp"
#include "vindex/phase3/routing.hpp"
#include "vindex/run/plan.hpp"

namespace vindex::app {
namespace {

inline constexpr double kAgreementWarning = 0.999;

}  // namespace

std::vector<std::byte> compute_phase3_share(const mpi::Communicator& comm, SpectrumBackend& backend,
                                            const Checkpoint& checkpoint,
                                            const ModelLayout& layout, std::span<const int> layers,
                                            const CaptureFile& capture, int sampled_tokens) {
  std::optional<RoutingRule> rule;
  if (!layout.moe_layers().empty()) rule = routing_rule(layout, checkpoint.config_path().string());
  const std::vector<std::uint64_t> sampled =
      sample_tokens(capture.info().n_tokens, static_cast<std::uint64_t>(sampled_tokens));
  // Contiguous runs of layers, MoE layers weighing more (routing of every token, the experts' weights).
  std::vector<double> costs;
  for (int l : layers) costs.push_back(layout.layers.at(static_cast<std::size_t>(l)).kind == LayerKind::moe ? 4.0 : 1.0);
  const std::vector<std::size_t> bounds = partition_contiguous(costs, comm.size());
  const auto r = static_cast<std::size_t>(comm.rank());
  const Phase3Inputs in{checkpoint, layout, capture, rule, sampled};
  // Rank 0 speaks for the job: the start, then its own layers as they finish (the others' run alongside).
  const auto started = std::chrono::steady_clock::now();
  if (comm.is_root())
    fmt::print(stderr, "vindex_mpi: phase 3: {} layers on {} rank(s) from {} ({} tokens, {} sampled)\n", layers.size(),
               comm.size(), capture.info().path, capture.info().n_tokens, sampled.size());
  std::vector<LayerPhase3> mine;
  for (std::size_t i = bounds[r]; i < bounds[r + 1]; ++i) {
    mine.push_back(backend.phase3_layer(in, layers[i]));
    if (comm.is_root())
      fmt::print(stderr, "[phase 3] layer {} done ({} of rank 0's {}), {:.1f} s\n", layers[i], i - bounds[r] + 1,
                 bounds[r + 1] - bounds[r], std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  std::vector<std::byte> out;
  encode_phase3_layers(mine, out);
  return out;
}

std::optional<Phase3Results> gather_phase3(const mpi::Communicator& comm, const std::vector<std::byte>& share,
                                           const ModelLayout& layout, const CaptureFile& capture,
                                           int sampled_tokens) {
  std::vector<std::vector<std::byte>> buffers = mpi::gather_bytes(comm, share);
  if (!comm.is_root()) return std::nullopt;
  Phase3Results results;
  for (const auto& buffer : buffers) {
    std::vector<LayerPhase3> part = decode_phase3_layers(buffer);
    results.layers.insert(results.layers.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  std::sort(results.layers.begin(), results.layers.end(), [](const LayerPhase3& a, const LayerPhase3& b) { return a.layer < b.layer; });
  results.capture = capture.info();
  results.sampled_tokens = std::min<std::uint64_t>(capture.info().n_tokens, static_cast<std::uint64_t>(sampled_tokens));
  for (const LayerPhase3& l : results.layers) results.cka_layers.push_back(l.layer);
  results.cka = cka_matrix(results.layers);
  results.stages = cka_stages(results.cka, results.cka_layers, layout.num_layers);
  results.top8_concentration =
      top8_concentration(capture.top8_probs(), capture.info().n_tokens, 8);
  for (const LayerPhase3& l : results.layers)
    if (l.engine_choices > 0 &&
        static_cast<double>(l.engine_choices_matched) < kAgreementWarning * static_cast<double>(l.engine_choices))
      fmt::print(stderr,
                 "vindex_mpi: warning: layer {}: the recomputed routing makes {} of the engine's {} choices ({:.4f}, below "
                 "{}); ties, low-precision logits or a capture of another model (docs/phase3.md)\n",
                 l.layer, l.engine_choices_matched, l.engine_choices,
                 static_cast<double>(l.engine_choices_matched) / static_cast<double>(l.engine_choices), kAgreementWarning);
  return results;
}

}  // namespace vindex::app
