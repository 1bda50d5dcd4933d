// Typed errors of vindex_mpi. Each carries what the user needs to act on it (the model file and
// tensor involved, or the failing library call) and maps to the process exit code.
#pragma once

#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif
#include <stdexcept>
#include <string>

namespace vindex {

// Where an error was raised. std::source_location where the standard library provides it; clang
// before 15 with libstdc++ (the fuzz build) lacks it, and gets the same from the compiler builtins.
#if defined(__cpp_lib_source_location)
using SourceLocation = std::source_location;
#else
class SourceLocation {
 public:
  static constexpr SourceLocation current(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) noexcept {
    SourceLocation where;
    where.file_ = file;
    where.line_ = line;
    return where;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr unsigned line() const noexcept { return line_; }

 private:
  const char* file_ = "";
  unsigned line_ = 0;
};
#endif

// Exit codes are part of the CLI contract (README, "Exit codes").
enum class ExitCode : int {
  ok = 0,
  usage = 2,      // bad command-line arguments or output directory
  bad_input = 3,  // the model files are malformed or inconsistent
  internal = 4,   // I/O, library or MPI failure; a bug
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

// Bad command-line arguments, or an output directory that cannot be used.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ExitCode::usage, message) {}
};

// Input that is wrong: a malformed safetensors/JSON file, a tensor whose shape, dtype or values
// (NaN, Inf) are unusable. `file` and `tensor` may be empty when they do not apply.
class InputError : public Error {
 public:
  InputError(std::string file, std::string tensor, const std::string& what);
  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }

 private:
  std::string file_;
  std::string tensor_;
};

// A malformed file (bytes that do not follow the format), as opposed to well-formed but unusable.
class FormatError : public InputError {
 public:
  using InputError::InputError;
};

// A model file that changed while the run read it (a shard truncated or replaced under it): the
// input is unusable now, but what was computed before is not wrong, so a run keeps its journal
// for --resume once the file is whole again.
class InputChangedError : public InputError {
 public:
  using InputError::InputError;
};

// Operating-system failures (open, mmap, write, rename), with the path and errno text.
class IoError : public Error {
 public:
  IoError(const std::string& path, const std::string& call, int errno_value);
  IoError(const std::string& path, const std::string& what);
};

// A failing library call (LAPACK, HDF5, MPI, CUDA...): names the call and where it was made.
class LibraryError : public Error {
 public:
  LibraryError(const std::string& library, const std::string& call, const std::string& detail,
               SourceLocation where = SourceLocation::current());
  // The same failure, named with the model file and tensor that was being computed (BLAS, LAPACK
  // and cuSOLVER know nothing of tensors): "FILE: tensor 'NAME': <cause's message>".
  LibraryError(const LibraryError& cause, const std::string& file, const std::string& tensor);
  // Whether the message names the tensor (the second constructor).
  bool names_tensor() const noexcept { return names_tensor_; }

 protected:
  // A subclass's own, complete message.
  struct Composed {};
  LibraryError(Composed, const std::string& message) : Error(ExitCode::internal, message) {}

 private:
  bool names_tensor_ = false;
};

// A plugin that loads but must not be used by this executable: built to another plugin ABI, or
// lacking its entry points (vindex/run/cuda_plugin_abi.hpp). "PLUGIN at PATH: <what>".
class PluginError : public LibraryError {
 public:
  PluginError(const std::string& plugin, const std::string& path, const std::string& what);
};

class LapackError : public LibraryError {
 public:
  LapackError(const std::string& call, long info, SourceLocation where = SourceLocation::current());
};

class Hdf5Error : public LibraryError {
 public:
  Hdf5Error(const std::string& call, const std::string& object,
            SourceLocation where = SourceLocation::current());
};

class MpiError : public LibraryError {
 public:
  MpiError(const std::string& call, int mpi_code, SourceLocation where = SourceLocation::current());
};

// A failure in the middle of an exchange between ranks (e.g. rank 0 cannot hold what the others
// are sending): the ranks cannot agree on it in order, so the job is aborted, as for MpiError.
class CollectiveError : public Error {
 public:
  explicit CollectiveError(const std::string& what) : Error(ExitCode::internal, what) {}
};

// A broken internal invariant: always a bug.
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& what, SourceLocation where = SourceLocation::current());
};

#define VINDEX_ASSERT(cond)                                          \
  do {                                                               \
    if (!(cond)) throw ::vindex::InternalError("assertion failed: " #cond); \
  } while (0)

}  // namespace vindex
