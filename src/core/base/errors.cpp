// Message formatting for the typed errors declared in vindex/base/errors.hpp.
#include "vindex/base/errors.hpp"

#include <cstring>

#include <fmt/format.h>

namespace vindex {
namespace {

std::string input_message(const std::string& file, const std::string& tensor, const std::string& what) {
  if (!file.empty() && !tensor.empty()) return fmt::format("{}: tensor '{}': {}", file, tensor, what);
  if (!file.empty()) return fmt::format("{}: {}", file, what);
  if (!tensor.empty()) return fmt::format("tensor '{}': {}", tensor, what);
  return what;
}

std::string where_text(const SourceLocation& where) {
  const char* file = where.file_name();
  // Keep the path from src/ or include/ on, so messages do not depend on the build machine.
  for (const char* marker : {"/src/", "/include/"}) {
    if (const char* p = std::strstr(file, marker)) {
      file = p + 1;
      break;
    }
  }
  return fmt::format("{}:{}", file, where.line());
}

}  // namespace

InputError::InputError(std::string file, std::string tensor, const std::string& what)
    : Error(ExitCode::bad_input, input_message(file, tensor, what)), file_(std::move(file)), tensor_(std::move(tensor)) {}

IoError::IoError(const std::string& path, const std::string& call, int errno_value)
    : Error(ExitCode::internal, fmt::format("{}: {} failed: {}", path, call, std::strerror(errno_value))) {}

IoError::IoError(const std::string& path, const std::string& what)
    : Error(ExitCode::internal, fmt::format("{}: {}", path, what)) {}

LibraryError::LibraryError(const std::string& library, const std::string& call, const std::string& detail,
                           SourceLocation where)
    : Error(ExitCode::internal, fmt::format("{} call {} failed: {} (at {})", library, call, detail, where_text(where))) {}

LibraryError::LibraryError(const LibraryError& cause, const std::string& file, const std::string& tensor)
    : Error(ExitCode::internal, input_message(file, tensor, cause.what())), names_tensor_(true) {}

PluginError::PluginError(const std::string& plugin, const std::string& path, const std::string& what)
    : LibraryError(Composed{}, fmt::format("{} at {}: {}", plugin, path, what)) {}

LapackError::LapackError(const std::string& call, long info, SourceLocation where)
    : LibraryError("LAPACK", call, fmt::format("info = {}", info), where) {}

Hdf5Error::Hdf5Error(const std::string& call, const std::string& object, SourceLocation where)
    : LibraryError("HDF5", call, fmt::format("on '{}'", object), where) {}

MpiError::MpiError(const std::string& call, int mpi_code, SourceLocation where)
    : LibraryError("MPI", call, fmt::format("error code {}", mpi_code), where) {}

InternalError::InternalError(const std::string& what, SourceLocation where)
    : Error(ExitCode::internal, fmt::format("internal error: {} (at {})", what, where_text(where))) {}

}  // namespace vindex
