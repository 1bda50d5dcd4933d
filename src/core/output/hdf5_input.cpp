// Reading vindex.h5 (schema in hdf5_output.hpp) with the HDF5 C API.
#include "vindex/output/hdf5_input.hpp"

#include <hdf5.h>

#include <array>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "../base/hdf5_handle.hpp"
#include "../base/hdf5_read.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/output/hdf5_output.hpp"

namespace vindex {
namespace {

using hdf5::check;
using hdf5::Handle;
using hdf5::Context;
using hdf5::dataset_length;
using hdf5::read_dataset;
using hdf5::read_int_attribute;
using hdf5::read_string_attribute;
using hdf5::require_hard_link;

// "down_proj" / "shared_gate_proj" -> projection ("router": down, unused); nullopt for an unknown name.
std::optional<Projection> projection_of(std::string_view name) {
  if (name == "router") return Projection::down;
  if (name.starts_with("shared_")) name.remove_prefix(7);
  for (Projection p : kProjections)
    if (name == projection_name(p)) return p;
  return std::nullopt;
}

std::optional<MatrixRole> role_of(std::string_view name) {
  if (name == "dense") return MatrixRole::dense;
  if (name == "routed") return MatrixRole::routed;
  if (name == "shared") return MatrixRole::shared;
  if (name == "router") return MatrixRole::router;
  return std::nullopt;
}

void read_group(const Context& ctx, hid_t layer_group, int layer, const std::string& name, const std::string& layer_path,
                std::size_t k_count, bool in_phase2, std::vector<MatrixResult>& out) {
  const std::string where = layer_path + "/" + name;
  require_hard_link(ctx, layer_group, name.c_str(), where);
  const Handle group(H5Gopen2(layer_group, name.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", where);
  const auto projection = projection_of(name);
  const auto role = role_of(read_string_attribute(ctx, group.get(), "role", where));
  if (!projection || !role || (name.starts_with("shared_") != (*role == MatrixRole::shared)) ||
      ((name == "router") != (*role == MatrixRole::router)) || ((*role == MatrixRole::router) != in_phase2))
    ctx.fail(where, "is not a known matrix group");
  const auto shape = read_int_attribute(ctx, group.get(), "shape", where);
  constexpr long long kMaxSide = 1 << 20;  // far beyond any model; keeps n x min(rows, cols) bounded
  if (shape.size() != 2 || shape[0] <= 0 || shape[1] <= 0 || shape[0] > kMaxSide || shape[1] > kMaxSide)
    ctx.fail(where, "attribute 'shape' is not a plausible [rows, cols]");
  const auto rows = static_cast<std::uint64_t>(shape[0]), cols = static_cast<std::uint64_t>(shape[1]);

  std::vector<std::int32_t> ids;
  std::vector<float> sv;
  std::vector<double> var;
  std::array<std::vector<double>, kScalarStats.size()> scalars;
  std::vector<std::uint8_t> gram_bits, eigen_bits;
  std::vector<std::uint64_t> digests;
  const hsize_t n = dataset_length(ctx, group.get(), where, "expert_ids", hsize_t{1} << 20);
  const hsize_t svn = std::min(rows, cols);
  if (n * svn > (hsize_t{1} << 34)) ctx.fail(where, "holds more singular values than any model has");
  read_dataset(ctx, group.get(), where, "expert_ids", H5T_NATIVE_INT32, {n}, ids);
  read_dataset(ctx, group.get(), where, "singular_values", H5T_NATIVE_FLOAT, {n, svn}, sv);
  read_dataset(ctx, group.get(), where, "var_at_k", H5T_NATIVE_DOUBLE, {n, k_count}, var);
  for (std::size_t s = 0; s < kScalarStats.size(); ++s)
    read_dataset(ctx, group.get(), where, kScalarStats[s].name, H5T_NATIVE_DOUBLE, {n}, scalars[s]);
  read_dataset(ctx, group.get(), where, "weight_digest", H5T_NATIVE_UINT64, {n}, digests);
  for (auto& [field, values] : {std::pair{"gram_bits", &gram_bits}, std::pair{"eigen_bits", &eigen_bits}}) {
    read_dataset(ctx, group.get(), where, field, H5T_NATIVE_UINT8, {n}, *values);
    for (std::uint8_t b : *values)
      if (b != 32 && b != 64) ctx.fail(where + "/" + field, fmt::format("value {} is not 32 or 64", b));
  }

  for (hsize_t i = 0; i < n; ++i) {
    MatrixResult r;
    r.key = {layer, *role, *projection, ids[i]};
    r.rows = rows;
    r.cols = cols;
    r.gram_bits = static_cast<FloatBits>(gram_bits[i]);
    r.eigen_bits = static_cast<FloatBits>(eigen_bits[i]);
    r.weight_digest = digests[i];
    r.singular_values.assign(sv.begin() + static_cast<std::ptrdiff_t>(i * svn), sv.begin() + static_cast<std::ptrdiff_t>((i + 1) * svn));
    r.stats.var_at_k.assign(var.begin() + static_cast<std::ptrdiff_t>(i * k_count),
                            var.begin() + static_cast<std::ptrdiff_t>((i + 1) * k_count));
    for (std::size_t s = 0; s < kScalarStats.size(); ++s) r.stats.*kScalarStats[s].member = scalars[s][i];
    out.push_back(std::move(r));
  }
}

std::vector<std::string> child_names(hid_t group, const std::string& where) {
  H5G_info_t info{};
  check(H5Gget_info(group, &info), "H5Gget_info", where);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) throw Hdf5Error("H5Lget_name_by_idx", where);
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

void check_format(const Context& ctx, hid_t file, const char* format = kVindexFormatName,
                  const char* version = kVindexFormatVersion) {
  if (read_string_attribute(ctx, file, "format", "/") != format) ctx.fail("/", fmt::format("is not a {} file", format));
  if (const auto v = read_string_attribute(ctx, file, "format_version", "/"); v != version)
    ctx.fail("/", fmt::format("format_version {} is not the {} this build reads", v, version));
}

}  // namespace

std::string read_output_run_id(const std::filesystem::path& path, const char* format, const char* version) {
  hdf5::silence_errors();
  const Context ctx{path.string()};
  const hdf5::CheckedFile opened = hdf5::open_checked(ctx);
  check_format(ctx, opened.file.get(), format, version);
  return read_string_attribute(ctx, opened.file.get(), "run_id", "/");
}

std::string read_vindex_run_id(const std::filesystem::path& path) {
  return read_output_run_id(path, kVindexFormatName, kVindexFormatVersion);
}

VindexFileContents read_vindex_h5(const std::filesystem::path& path) {
  hdf5::silence_errors();
  const Context ctx{path.string()};
  const hdf5::CheckedFile opened = hdf5::open_checked(ctx);
  const Handle& file = opened.file;
  VindexFileContents contents;
  check_format(ctx, file.get());
  contents.run_id = read_string_attribute(ctx, file.get(), "run_id", "/");
  contents.model = read_string_attribute(ctx, file.get(), "model", "/");
  contents.tool = read_string_attribute(ctx, file.get(), "tool", "/");
  contents.provenance_json = read_string_attribute(ctx, file.get(), "provenance", "/");
  for (long long k : read_int_attribute(ctx, file.get(), "k", "/")) {
    if (k < 1 || k > (1 << 30)) ctx.fail("/", fmt::format("k value {} out of range", k));
    contents.ks.push_back(static_cast<int>(k));
  }
  // Each phase's group is there when the run computed it; at least one must be.
  bool any_phase = false;
  for (const bool phase2 : {false, true}) {
    const char* phase_name = phase2 ? "phase2" : "phase1";
    const std::string phase_path = std::string("/") + phase_name;
    if (H5Lexists(file.get(), phase_name, H5P_DEFAULT) <= 0) continue;
    any_phase = true;
    require_hard_link(ctx, file.get(), phase_name, phase_path);
    const Handle phase(H5Gopen2(file.get(), phase_name, H5P_DEFAULT), H5Gclose, "H5Gopen2", phase_path);
    for (const std::string& layer_name : child_names(phase.get(), phase_path)) {
      const std::string layer_path = phase_path + "/" + layer_name;
      if (!layer_name.starts_with("layer_") || layer_name.size() == 6) ctx.fail(layer_path, "is not a layer_LLL group");
      int layer = -1;
      const auto [end, ec] = std::from_chars(layer_name.data() + 6, layer_name.data() + layer_name.size(), layer);
      if (ec != std::errc() || end != layer_name.data() + layer_name.size() || layer < 0)
        ctx.fail(layer_path, "is not a layer_LLL group");
      require_hard_link(ctx, phase.get(), layer_name.c_str(), layer_path);
      const Handle layer_group(H5Gopen2(phase.get(), layer_name.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", layer_path);
      for (const std::string& group_name : child_names(layer_group.get(), layer_path))
        read_group(ctx, layer_group.get(), layer, group_name, layer_path, contents.ks.size(), phase2, contents.results);
    }
  }
  if (!any_phase) ctx.fail("/", "has neither a /phase1 nor a /phase2 group");
  return contents;
}

}  // namespace vindex
