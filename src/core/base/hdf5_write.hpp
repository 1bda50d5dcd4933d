// Internal to the core's HDF5 writers (vindex.h5, cross_cka.h5): attributes and whole datasets,
// every handle owned by an RAII wrapper.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <string>
#include <vector>

#include "hdf5_handle.hpp"

namespace vindex::hdf5 {

inline void write_string_attribute(hid_t object, const char* name, const std::string& value) {
  const Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy", name);
  check(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size", name);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset", name);
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate", name);
  const Handle attr(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                      "H5Acreate2", name);
  const char* data = value.c_str();
  check(H5Awrite(attr.get(), type.get(), &data), "H5Awrite", name);
}

inline void write_int_attribute(hid_t object, const char* name, const std::vector<long long>& values) {
  const hsize_t dims[1] = {values.size()};
  const Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose, "H5Screate_simple", name);
  const Handle attr(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                      "H5Acreate2", name);
  check(H5Awrite(attr.get(), H5T_NATIVE_LLONG, values.data()), "H5Awrite", name);
}

inline void write_double_attribute(hid_t object, const char* name, double value) {
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate", name);
  const Handle attr(H5Acreate2(object, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                      "H5Acreate2", name);
  check(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &value), "H5Awrite", name);
}

template <typename T>
void write_dataset(hid_t group, const char* name, hid_t file_type, hid_t mem_type, const std::vector<T>& data,
                   std::vector<hsize_t> dims) {
  const Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose,
                       "H5Screate_simple", name);
  const Handle set(H5Dcreate2(group, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     H5Dclose, "H5Dcreate2", name);
  check(H5Dwrite(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), "H5Dwrite", name);
}

// A new HDF5 file in memory only (the core driver without backing store: `name` is never created
// on disk, but must be unique among the files this process has open).
inline Handle create_memory_file(const std::string& name) {
  silence_errors();
  const Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate", name);
  check(H5Pset_fapl_core(access.get(), 4 << 20, 0), "H5Pset_fapl_core", name);
  return Handle(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()), H5Fclose, "H5Fcreate", name);
}

// The bytes of a memory file, which is closed.
inline std::vector<std::byte> close_to_image(Handle& file, const std::string& name) {
  check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "H5Fflush", name);
  const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
  if (size <= 0) throw Hdf5Error("H5Fget_file_image", name);
  std::vector<std::byte> image(static_cast<std::size_t>(size));
  if (H5Fget_file_image(file.get(), image.data(), image.size()) != size) throw Hdf5Error("H5Fget_file_image", name);
  file.close();
  return image;
}

}  // namespace vindex::hdf5
