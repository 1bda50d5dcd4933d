// The JSON outputs of phase 1: phase1_moe_svd.json (per-layer statistics) and
// phase1_moe_svd_agg.json (the C1-C5 constants: C4 measured, the others pending with what they
// need). Schemas in README, "Output files".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "vindex/output/aggregate.hpp"

namespace vindex {

nlohmann::ordered_json phase1_summary_json(const VindexTables& tables, const std::string& model,
                                           const nlohmann::ordered_json& provenance);

// phase2_router_svd.json: each MoE layer's router spectrum and statistics, its bias when present.
nlohmann::ordered_json phase2_router_json(const VindexTables& tables, const std::string& model,
                                          const nlohmann::ordered_json& provenance);

// phase3_routing_stats.json: per layer the routing and activation statistics, the CKA matrix and
// its stages, each with its definition (tables.phase3 must be set).
nlohmann::ordered_json phase3_routing_json(const VindexTables& tables, const std::string& model,
                                           const nlohmann::ordered_json& provenance);

nlohmann::ordered_json phase1_constants_json(const VindexTables& tables, const std::string& model,
                                             const nlohmann::ordered_json& provenance);

// Phase 3's per-layer table and constants, printed at the end of a run with phase 3.
std::string format_phase3_table(const Phase3Results& results);

// The per-layer table printed at the end of a run.
std::string format_layer_table(const VindexTables& tables);

}  // namespace vindex
