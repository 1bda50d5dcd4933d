// Writing vindex.h5 with the HDF5 C API; every handle is owned by an RAII wrapper.
#include "vindex/output/hdf5_output.hpp"

#include <hdf5.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "../base/hdf5_handle.hpp"
#include "../base/hdf5_write.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/numerics/random_floor.hpp"

namespace vindex {
namespace {

using hdf5::check;
using H5Handle = hdf5::Handle;
using hdf5::write_dataset;
using hdf5::write_double_attribute;
using hdf5::write_int_attribute;
using hdf5::write_string_attribute;

void write_group(hid_t layer_group, const MatrixGroup& g, const std::vector<int>& ks) {
  const H5Handle group(H5Gcreate2(layer_group, g.name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                       "H5Gcreate2", g.name);
  write_string_attribute(group.get(), "kind", layer_kind_name(g.kind));
  write_string_attribute(group.get(), "role", role_name(g.role));
  write_int_attribute(group.get(), "shape", {static_cast<long long>(g.rows), static_cast<long long>(g.cols)});
  const hsize_t n = g.size();
  write_dataset(group.get(), "singular_values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, g.singular_values, {n, g.sv_count()});
  write_dataset(group.get(), "var_at_k", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, g.var_at_k, {n, ks.size()});
  {
    const H5Handle set(H5Dopen2(group.get(), "var_at_k", H5P_DEFAULT), H5Dclose, "H5Dopen2", "var_at_k");
    write_int_attribute(set.get(), "k", std::vector<long long>(ks.begin(), ks.end()));
  }
  // The random floor of var@k for this shape, one per k (vindex/numerics/random_floor.hpp).
  std::vector<double> floors;
  for (int k : ks) floors.push_back(random_floor_var_at_k(g.rows, g.cols, k));
  write_dataset(group.get(), "random_floor_var_at_k", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, floors, {ks.size()});
  write_dataset(group.get(), "expert_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, g.expert_ids, {n});
  for (std::size_t i = 0; i < kScalarStats.size(); ++i)
    write_dataset(group.get(), kScalarStats[i].name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, g.scalars[i], {n});
  write_dataset(group.get(), "gram_bits", H5T_STD_U8LE, H5T_NATIVE_UINT8, g.gram_bits, {n});
  write_dataset(group.get(), "eigen_bits", H5T_STD_U8LE, H5T_NATIVE_UINT8, g.eigen_bits, {n});
  write_dataset(group.get(), "weight_digest", H5T_STD_U64LE, H5T_NATIVE_UINT64, g.weight_digests, {n});
}

// /phase3: the CKA matrix, and per layer the loads, co-activation and statistics (docs/phase3.md).
void write_phase3(hid_t file, const Phase3Results& p) {
  const H5Handle phase(H5Gcreate2(file, "phase3", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, "H5Gcreate2", "phase3");
  write_string_attribute(phase.get(), "capture", p.capture.path);
  write_int_attribute(phase.get(), "n_tokens", {static_cast<long long>(p.capture.n_tokens)});
  write_int_attribute(phase.get(), "sampled_tokens", {static_cast<long long>(p.sampled_tokens)});
  write_double_attribute(phase.get(), "top8_concentration", p.top8_concentration);
  const hsize_t n = p.cka_layers.size();
  write_dataset(phase.get(), "cka", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, p.cka, {n, n});
  {
    const H5Handle set(H5Dopen2(phase.get(), "cka", H5P_DEFAULT), H5Dclose, "H5Dopen2", "cka");
    write_int_attribute(set.get(), "layers", std::vector<long long>(p.cka_layers.begin(), p.cka_layers.end()));
  }
  std::vector<long long> stage_bounds;
  for (const Stage& s : p.stages) stage_bounds.insert(stage_bounds.end(), {s.first_layer, s.last_layer});
  write_int_attribute(phase.get(), "stages", stage_bounds);  // first and last layer of each stage
  for (const LayerPhase3& l : p.layers) {
    const std::string name = fmt::format("layer_{:03d}", l.layer);
    const H5Handle g(H5Gcreate2(phase.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, "H5Gcreate2", name);
    write_string_attribute(g.get(), "kind", layer_kind_name(l.kind));
    write_double_attribute(g.get(), "activation_sparsity", l.activation_sparsity);
    write_double_attribute(g.get(), "gate_coherence", l.gate_coherence);
    if (l.experts == 0) continue;
    const auto E = static_cast<hsize_t>(l.experts);
    write_dataset(g.get(), "load_counts", H5T_STD_I64LE, H5T_NATIVE_INT64, l.load_counts, {E});
    write_dataset(g.get(), "coactivation", H5T_STD_I64LE, H5T_NATIVE_INT64, l.coactivation, {E, E});
    for (const auto& [attr, value] : {std::pair{"load_entropy", l.load_entropy}, std::pair{"load_cv", l.load_cv},
                                      std::pair{"max_over_mean_load", l.max_over_mean_load},
                                      std::pair{"topk_weight_concentration", l.topk_weight_concentration}})
      write_double_attribute(g.get(), attr, value);
    write_int_attribute(g.get(), "never_chosen", {l.never_chosen});
    write_int_attribute(g.get(), "engine_choices", {l.engine_choices, l.engine_choices_matched});  // compared, matched
  }
}

}  // namespace

std::string hdf5_library_version() {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return fmt::format("{}.{}.{}", major, minor, release);
}

std::vector<std::byte> vindex_h5_image(const VindexTables& tables, const Hdf5RootInfo& root) {
  const std::string file_name = fmt::format("vindex-image-{}.h5", root.run_id);
  H5Handle file = hdf5::create_memory_file(file_name);
  write_string_attribute(file.get(), "format", kVindexFormatName);
  write_string_attribute(file.get(), "format_version", kVindexFormatVersion);
  write_string_attribute(file.get(), "run_id", root.run_id);
  write_string_attribute(file.get(), "model", root.model);
  write_string_attribute(file.get(), "tool", root.tool_version);
  write_int_attribute(file.get(), "k", std::vector<long long>(tables.ks.begin(), tables.ks.end()));
  write_string_attribute(file.get(), "provenance", root.provenance_json);

  // /phase1/layer_LLL/<projection group> and /phase2/layer_LLL/router; a phase's group exists when
  // the run computed that phase.
  for (const bool routers : {false, true}) {
    if (!(routers ? tables.phase2 : tables.phase1)) continue;
    const char* phase_name = routers ? "phase2" : "phase1";
    const H5Handle phase(H5Gcreate2(file.get(), phase_name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                         "H5Gcreate2", phase_name);
    std::optional<H5Handle> layer_group;
    int open_layer = -1;
    for (const MatrixGroup& g : tables.groups) {
      if ((g.role == MatrixRole::router) != routers) continue;
      if (g.layer != open_layer) {
        const std::string name = fmt::format("layer_{:03d}", g.layer);
        layer_group.reset();
        layer_group.emplace(H5Gcreate2(phase.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                            "H5Gcreate2", name);
        write_string_attribute(layer_group->get(), "kind", layer_kind_name(g.kind));
        write_int_attribute(layer_group->get(), "layer", {g.layer});
        open_layer = g.layer;
      }
      write_group(layer_group->get(), g, tables.ks);
      if (!routers) continue;
      const auto bias = std::find_if(tables.router_biases.begin(), tables.router_biases.end(),
                                     [&](const RouterBias& b) { return b.layer == g.layer; });
      if (bias == tables.router_biases.end()) continue;
      const H5Handle router(H5Gopen2(layer_group->get(), g.name.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", g.name);
      write_dataset(router.get(), "bias", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, bias->values, {bias->values.size()});
      const H5Handle set(H5Dopen2(router.get(), "bias", H5P_DEFAULT), H5Dclose, "H5Dopen2", "bias");
      write_string_attribute(set.get(), "tensor", bias->tensor);
    }
  }
  if (tables.phase3) write_phase3(file.get(), *tables.phase3);
  return hdf5::close_to_image(file, file_name);
}

}  // namespace vindex
