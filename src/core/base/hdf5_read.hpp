// Internal to the core's HDF5 readers (vindex.h5 for merge, capture files for phase 3): bounded,
// checked reads of attributes and datasets. Every problem is an InputError naming the file and the
// HDF5 object; only hard links to data stored in the file itself are followed.
#pragma once

#include <hdf5.h>

#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "hdf5_handle.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/base/file_descriptor.hpp"

namespace vindex::hdf5 {

struct Context {
  std::string file;
  // "FILE: /phase1/layer_001/down_proj/var_at_k: what" (an HDF5 object, not a tensor).
  [[noreturn]] void fail(const std::string& object, const std::string& what) const {
    throw InputError(file, "", object.empty() ? what : object + ": " + what);
  }
};

inline bool has_attribute(hid_t object, const char* name) { return H5Aexists(object, name) > 0; }

// An HDF5 file opened for reading through a descriptor checked first (a regular file: a FIFO or
// a device in its place is refused, never opened by HDF5), by its /proc/self/fd path, so that
// HDF5 opens exactly the file that was checked.
struct CheckedFile {
  FileDescriptor fd;
  Handle file;
};

inline CheckedFile open_checked(const Context& ctx) {
  FileDescriptor fd = FileDescriptor::open_read(ctx.file);
  const std::string path = fd.proc_path();
  if (H5Fis_hdf5(path.c_str()) <= 0) ctx.fail("", "is not an HDF5 file");
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) ctx.fail("", "has an HDF5 signature but HDF5 cannot open it (truncated or damaged)");
  Handle file(id, H5Fclose, "H5Fopen", ctx.file);
  return CheckedFile{std::move(fd), std::move(file)};
}

inline std::string read_string_attribute(const Context& ctx, hid_t object, const char* name, const std::string& where) {
  if (!has_attribute(object, name)) ctx.fail(where, fmt::format("attribute '{}' is missing", name));
  const Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose, "H5Aopen", name);
  {
    const Handle space(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space", name);
    if (H5Sget_simple_extent_npoints(space.get()) != 1)
      ctx.fail(where, fmt::format("attribute '{}' is not a single string", name));
  }
  const Handle file_type(H5Aget_type(attr.get()), H5Tclose, "H5Aget_type", name);
  if (H5Tget_class(file_type.get()) != H5T_STRING || H5Tis_variable_str(file_type.get()) <= 0)
    ctx.fail(where, fmt::format("attribute '{}' is not a variable-length string", name));
  const Handle mem_type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy", name);
  check(H5Tset_size(mem_type.get(), H5T_VARIABLE), "H5Tset_size", name);
  check(H5Tset_cset(mem_type.get(), H5Tget_cset(file_type.get())), "H5Tset_cset", name);  // no ASCII<->UTF-8 conversion
  char* value = nullptr;
  check(H5Aread(attr.get(), mem_type.get(), &value), "H5Aread", name);
  std::string out = value ? value : "";
  H5free_memory(value);
  return out;
}

inline std::vector<long long> read_int_attribute(const Context& ctx, hid_t object, const char* name, const std::string& where) {
  if (!has_attribute(object, name)) ctx.fail(where, fmt::format("attribute '{}' is missing", name));
  const Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose, "H5Aopen", name);
  const Handle space(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space", name);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > 4096) ctx.fail(where, fmt::format("attribute '{}' has {} values", name, n));
  {
    const Handle type(H5Aget_type(attr.get()), H5Tclose, "H5Aget_type", name);
    if (H5Tget_class(type.get()) != H5T_INTEGER) ctx.fail(where, fmt::format("attribute '{}' is not an integer", name));
  }
  std::vector<long long> values(static_cast<std::size_t>(n));
  check(H5Aread(attr.get(), H5T_NATIVE_LLONG, values.data()), "H5Aread", name);
  return values;
}

// Only plain members of this file: a soft or external link, or a dataset stored in other files or
// assembled from them (external storage, virtual datasets), could make a crafted slice read
// anything else on the machine.
inline void require_hard_link(const Context& ctx, hid_t group, const char* name, const std::string& where) {
  H5L_info_t info{};
  if (H5Lexists(group, name, H5P_DEFAULT) <= 0) ctx.fail(where, "is missing");
  check(H5Lget_info(group, name, &info, H5P_DEFAULT), "H5Lget_info", where);
  if (info.type != H5L_TYPE_HARD) ctx.fail(where, "is a soft or external link, not an object of this file");
}

// Reads a dataset whose dimensions must equal `expected`, converting to `mem_type`; the sizes are
// checked before anything is allocated.
template <typename T>
void read_dataset(const Context& ctx, hid_t group, const std::string& group_path, const char* name, hid_t mem_type,
                  const std::vector<hsize_t>& expected, std::vector<T>& out) {
  const std::string where = group_path + "/" + name;
  require_hard_link(ctx, group, name, where);
  const Handle set(H5Dopen2(group, name, H5P_DEFAULT), H5Dclose, "H5Dopen2", where);
  {
    const Handle plist(H5Dget_create_plist(set.get()), H5Pclose, "H5Dget_create_plist", where);
    if (H5Pget_external_count(plist.get()) != 0 || H5Pget_layout(plist.get()) == H5D_VIRTUAL)
      ctx.fail(where, "is stored outside this file (external or virtual dataset)");
  }
  const Handle space(H5Dget_space(set.get()), H5Sclose, "H5Dget_space", where);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank != static_cast<int>(expected.size())) ctx.fail(where, fmt::format("expected {} dimension(s)", expected.size()));
  std::vector<hsize_t> dims(expected.size());
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  if (dims != expected) ctx.fail(where, "has a shape that disagrees with the group's matrices");
  hsize_t total = 1;
  for (hsize_t d : dims) total *= d;  // bounded: expected comes from checked sizes
  out.resize(total);
  if (total > 0) check(H5Dread(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread", where);
}

// The length of a 1-d dataset, bounded, read before anything is allocated.
inline hsize_t dataset_length(const Context& ctx, hid_t group, const std::string& group_path, const char* name, hsize_t limit) {
  const std::string where = group_path + "/" + name;
  require_hard_link(ctx, group, name, where);
  const Handle set(H5Dopen2(group, name, H5P_DEFAULT), H5Dclose, "H5Dopen2", where);
  const Handle space(H5Dget_space(set.get()), H5Sclose, "H5Dget_space", where);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) ctx.fail(where, "expected 1 dimension");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  if (n > limit) ctx.fail(where, fmt::format("holds {} entries, more than the {} a layer can have", n, limit));
  return n;
}

// What a dataset of an input file must hold (capture files, docs/phase3.md): ids, indices and positions are integers,
// never rounded from floats; hidden states, logits, weights and probabilities are floating point.
// Either of at most 8 bytes, so that int64 and float64 hold every value.
enum class Numbers { integers, floats };

inline std::string type_text(hid_t type) {
  const std::size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return fmt::format("{}-byte {} integers", size, H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned" : "signed");
    case H5T_FLOAT: return fmt::format("{}-byte floats", size);
    case H5T_STRING: return "strings";
    case H5T_COMPOUND: return "compound records";
    case H5T_ENUM: return "enumerated values";
    default: return "values that are not numbers";
  }
}

// The dimensions of the dataset at `path` (absolute), after checking it is a plain dataset of
// this file holding `want`; empty when `optional` and absent.
inline std::vector<hsize_t> dataset_dims(const Context& ctx, hid_t file, const std::string& path, bool optional, Numbers want) {
  // Every link on the path, the groups' too (/layers, /layers/layer_000), must be a hard link:
  // a soft or external link to a group would otherwise be followed into another file.
  for (std::size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      if (optional) return {};
      ctx.fail(path, "is missing");
    }
    require_hard_link(ctx, file, prefix.c_str(), prefix);
    if (slash == std::string::npos) break;
  }
  const Handle set(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", path);
  {
    const Handle plist(H5Dget_create_plist(set.get()), H5Pclose, "H5Dget_create_plist", path);
    if (H5Pget_external_count(plist.get()) != 0 || H5Pget_layout(plist.get()) == H5D_VIRTUAL)
      ctx.fail(path, "is stored outside this file (external or virtual dataset)");
  }
  {
    const Handle type(H5Dget_type(set.get()), H5Tclose, "H5Dget_type", path);
    const H5T_class_t type_class = H5Tget_class(type.get());
    const bool fits = H5Tget_size(type.get()) <= 8;
    if (want == Numbers::integers && !(type_class == H5T_INTEGER && fits))
      ctx.fail(path, fmt::format("holds {}, expected integers of at most 8 bytes (ids, indices and positions are "
                                 "never rounded from other types)",
                                 type_text(type.get())));
    if (want == Numbers::floats && !(type_class == H5T_FLOAT && fits))
      ctx.fail(path, fmt::format("holds {}, expected floating point of at most 8 bytes", type_text(type.get())));
  }
  const Handle space(H5Dget_space(set.get()), H5Sclose, "H5Dget_space", path);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 1 || rank > 4) ctx.fail(path, fmt::format("has {} dimensions", rank));
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

// "[a, b, c]", for messages.
inline std::string dims_text(const std::vector<hsize_t>& dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

// Fails naming `path` unless the dimensions are `want` (`why` says what they mean).
inline void expect_dims(const Context& ctx, const std::string& path, const std::vector<hsize_t>& got,
                        const std::vector<hsize_t>& want, const std::string& why) {
  if (got != want)
    ctx.fail(path, fmt::format("has shape {}, expected {} ({})", dims_text(got), dims_text(want), why));
}

}  // namespace vindex::hdf5
