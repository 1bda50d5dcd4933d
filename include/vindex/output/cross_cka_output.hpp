// The outputs of `vindex_mpi cka` (docs/cross_cka.md): cross_cka.json, cross_cka.h5 (the same
// numbers, HDF5) and the terminal summary.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vindex/compare/cross_cka.hpp"

namespace vindex {

inline constexpr const char* kCrossCkaFormatName = "vindex-cross-cka";
inline constexpr const char* kCrossCkaFormatVersion = "1";

// cross_cka.json's content (the caller puts the run id first).
nlohmann::ordered_json cross_cka_json(const CrossCkaResults& results, const nlohmann::ordered_json& provenance);

// The bytes of cross_cka.h5: root attributes format, format_version, run_id, tool, provenance,
// default_estimator, prompt_set_sha256, prompts; /models/{a,b} (attributes model, model_type, engine,
// capture, hidden_size; dataset depth); /<pooling>/<estimator>/{matrix [R_a, R_b], best_match_a,
// best_match_b, matched_layer_b}.
std::vector<std::byte> cross_cka_h5_image(const CrossCkaResults& results, const std::string& run_id,
                                          const std::string& tool, const std::string& provenance_json);

// CKA at matched normalised depth (the default estimator, both poolings), for the terminal.
std::string format_cross_cka_table(const CrossCkaResults& results);

}  // namespace vindex
