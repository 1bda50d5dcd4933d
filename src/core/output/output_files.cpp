// The output directory (checks, lock) and the output set's commit (see output_files.hpp).
#include "vindex/output/output_files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <random>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vindex/base/checksum.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/base/file_descriptor.hpp"
#include "vindex/base/json_file.hpp"
#include "vindex/output/cross_cka_output.hpp"
#include "vindex/output/hdf5_input.hpp"
#include "vindex/run/journal.hpp"

namespace vindex {
namespace fs = std::filesystem;

const std::vector<std::string>& vindex_output_files() {
  static const std::vector<std::string> files{"vindex.h5", "phase1_moe_svd.json", "phase2_router_svd.json",
                                              "phase3_routing_stats.json", "phase1_moe_svd_agg.json",
                                              "moe_config.json", "cross_cka.h5", "cross_cka.json"};
  return files;
}

namespace {

constexpr std::uint64_t kMaxManifestBytes = 1 << 20;

std::string temp_prefix(std::string_view name) { return fmt::format(".{}.partial-", name); }

bool is_output_name(std::string_view name) {
  const auto& all = vindex_output_files();
  return std::find(all.begin(), all.end(), name) != all.end();
}

// A destination is usable when absent or a regular file. A symbolic link is refused: renaming over
// it would not follow it, but whoever placed it there expects something else to happen.
void check_replaceable(const fs::path& path, const std::string& label) {
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (fs::is_symlink(status))
    throw UsageError(fmt::format("{}: {} is a symbolic link; refusing to replace it", label, path.filename().string()));
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw UsageError(fmt::format("{}: {} exists and is not a file", label, path.filename().string()));
}

bool present(const fs::path& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

// Renames and removals are durable only once the directory itself is synced.
void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw IoError(dir.string(), "open", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(dir.string(), "fsync", err);
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) throw IoError(to.string(), "rename", errno);
}

void remove_or_throw(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) throw IoError(path.string(), "cannot remove: " + ec.message());
}

// Creates `path` (which must not exist: O_EXCL, so nothing placed there -- a FIFO, a link -- is
// opened), writes `bytes`, syncs and closes it. On failure the partial file is removed.
void write_new_file(const fs::path& path, std::span<const std::byte> bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw IoError(path.string(), "create", errno);
  const auto fail = [&](const char* call, int err) {
    ::close(fd);
    ::unlink(path.c_str());
    throw IoError(path.string(), call, err);
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("fsync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    throw IoError(path.string(), "close", err);
  }
}

std::string manifest_text(const OutputManifest& m) {
  nlohmann::ordered_json j;
  j["format"] = "vindex-manifest";
  j["format_version"] = 1;
  j["run_id"] = m.run_id;
  j["files"] = nlohmann::ordered_json::array();
  for (const ManifestEntry& f : m.files) j["files"].push_back({{"name", f.name}, {"bytes", f.bytes}, {"sha256", f.sha256}});
  j["removed"] = m.removed;
  return j.dump(2) + "\n";
}

OutputManifest parse_manifest(const fs::path& path) {
  const std::string label = path.string();
  const nlohmann::json j = parse_json_strict(read_text_file(path, kMaxManifestBytes), label);
  const auto bad = [&](const std::string& what) -> OutputManifest { throw InputError(label, "", what); };
  if (!j.is_object() || j.value("format", "") != "vindex-manifest" || !j.contains("format_version") ||
      j["format_version"] != 1)
    return bad("is not a vindex manifest of format version 1");
  OutputManifest m;
  try {
    m.run_id = j.at("run_id").get<std::string>();
    for (const auto& f : j.at("files")) {
      ManifestEntry e{f.at("name").get<std::string>(), f.at("bytes").get<std::uint64_t>(), f.at("sha256").get<std::string>()};
      if (!is_output_name(e.name) || e.sha256.size() != 64) return bad(fmt::format("names an unknown file '{}'", e.name));
      m.files.push_back(std::move(e));
    }
    m.removed = j.at("removed").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    return bad(fmt::format("is malformed: {}", e.what()));
  }
  for (const std::string& name : m.removed)
    if (!is_output_name(name)) return bad(fmt::format("removes an unknown file '{}'", name));
  if (m.run_id.empty() || m.run_id.size() > 64 || m.files.empty()) return bad("has no run id or no files");
  return m;
}

// Size and SHA-256 of a regular file (never following a link), streamed.
std::pair<std::uint64_t, std::string> file_digest(const fs::path& path) {
  const FileDescriptor fd = FileDescriptor::open_read(path, LinkPolicy::refuse);
  Sha256 h;
  std::vector<std::byte> buffer(1 << 20);
  std::uint64_t offset = 0;
  for (;;) {
    const std::uint64_t got = fd.read_some(buffer.data(), buffer.size(), offset);
    if (got == 0) break;
    h.update(std::span(buffer.data(), got));
    offset += got;
  }
  return {offset, h.hex_digest()};
}

bool matches(const fs::path& path, const ManifestEntry& e) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(path, ec))) return false;
  try {
    const auto [bytes, sha] = file_digest(path);
    return bytes == e.bytes && sha == e.sha256;
  } catch (const Error&) {
    return false;
  }
}

// Step 2 and 3 of a commit (output_files.hpp), from the durable commit record on. Idempotent: a
// commit interrupted anywhere in here is finished by running it again.
void finish_commit(const fs::path& dir, const OutputManifest& m) {
  remove_or_throw(dir / kManifestFileName);
  for (const ManifestEntry& f : m.files) {
    const fs::path temp = dir / staged_name(f.name, m.run_id);
    if (present(temp)) rename_or_throw(temp, dir / f.name);
  }
  for (const std::string& name : m.removed) remove_or_throw(dir / name);
  sync_directory(dir);
  rename_or_throw(dir / kCommitRecordName, dir / kManifestFileName);
  sync_directory(dir);
}

}  // namespace

std::string staged_name(std::string_view name, std::string_view run_id) { return temp_prefix(name) + std::string(run_id); }

std::string new_run_id() {
  std::random_device random;
  const std::uint64_t id = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  return fmt::format("{:016x}", id);
}

std::string recover_interrupted_commit(const fs::path& dir) {
  const fs::path record = dir / kCommitRecordName;
  std::error_code ec;
  const auto status = fs::symlink_status(record, ec);
  if (!fs::exists(status)) return "";
  if (!fs::is_regular_file(status))
    throw UsageError(fmt::format("--out {}: {} is not a regular file; remove it", dir.string(), kCommitRecordName));
  std::optional<OutputManifest> m;
  try {
    m = parse_manifest(record);
  } catch (const InputError&) {
    // Never written in place (it is renamed whole into place), so only outside damage gets here.
  }
  if (m) {
    bool complete = true;
    for (const ManifestEntry& f : m->files) {
      const fs::path temp = dir / staged_name(f.name, m->run_id);
      if (matches(dir / f.name, f)) {
        remove_or_throw(temp);  // renamed before the kill; a leftover of that name must not replace it
      } else {
        complete &= matches(temp, f);
      }
    }
    if (complete) {
      finish_commit(dir, *m);
      return fmt::format("finished the commit of run {}, which was killed while renaming its {} output file(s) into place",
                         m->run_id, m->files.size());
    }
  }
  // The set cannot be completed: leave none rather than a mixed one.
  for (const std::string& name : vindex_output_files()) {
    remove_or_throw(dir / name);
    if (m) remove_or_throw(dir / staged_name(name, m->run_id));
  }
  remove_or_throw(dir / kManifestFileName);
  sync_directory(dir);
  remove_or_throw(record);
  sync_directory(dir);
  return fmt::format("removed the output files of {}: a run was killed while committing them and its set could not be "
                     "completed (a staged file is missing or damaged)",
                     m ? "run " + m->run_id : std::string("an unreadable commit record"));
}

OutputLock prepare_output_directory(const fs::path& dir, OutputMode mode, std::span<const std::string> kept,
                                    std::string* note) {
  std::error_code ec;
  const auto status = fs::symlink_status(dir, ec);
  if (!fs::exists(status)) {
    fs::create_directories(dir, ec);
    if (ec) throw UsageError(fmt::format("--out {}: cannot create directory: {}", dir.string(), ec.message()));
    return OutputLock(dir);
  }
  if (!fs::is_directory(fs::status(dir, ec)))
    throw UsageError(fmt::format("--out {}: exists and is not a directory", dir.string()));
  OutputLock lock(dir);  // before anything in it is cleaned up or replaced
  const std::string label = "--out " + dir.string();
  std::vector<std::string> outputs = vindex_output_files();
  outputs.insert(outputs.end(), {kManifestFileName, kCommitRecordName});
  for (const std::string& out : outputs) check_replaceable(dir / out, label);
  if (mode == OutputMode::fresh && present(dir / kCommitRecordName))  // before its temporaries are touched
    throw UsageError(fmt::format("{}: holds the unfinished commit of a killed run (pass --resume or --overwrite to "
                                 "finish it first)", label));
  if (mode != OutputMode::fresh) {
    const std::string done = recover_interrupted_commit(dir);
    if (note) *note = done;
  }
  // Temporary files of a run that was killed are ours to remove; anything else is the user's.
  bool empty = true;
  bool journal = false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == kJournalDirectory) {
      journal = true;
      continue;
    }
    if (std::find(kept.begin(), kept.end(), name) != kept.end()) continue;
    bool stale = false;
    for (const std::string& out : outputs) stale |= name.starts_with(temp_prefix(out));
    if (stale) {
      std::error_code ignored;  // a leftover we cannot remove only costs disk space
      fs::remove(entry.path(), ignored);
    } else {
      empty = false;
    }
  }
  if (ec) throw IoError(dir.string(), "cannot be read: " + ec.message());
  if (journal && mode == OutputMode::fresh)
    throw UsageError(fmt::format("{}: holds the journal of an unfinished run (pass --resume to finish it, or --overwrite "
                                 "to start over)", label));
  if (!empty && mode == OutputMode::fresh)
    throw UsageError(fmt::format("{}: directory is not empty (pass --overwrite to replace its vindex files)", label));
  if (journal && mode == OutputMode::overwrite) {
    fs::remove_all(dir / kJournalDirectory, ec);
    if (ec) throw IoError((dir / kJournalDirectory).string(), "cannot remove the old journal: " + ec.message());
  }
  return lock;
}

OutputLock::OutputLock(const fs::path& dir) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(dir.string(), "open", errno);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw UsageError(fmt::format("--out {}: another vindex_mpi run is using this directory (it holds its lock); wait "
                                   "for it to end, or choose another --out",
                                   dir.string()));
    // ENOLCK, EINVAL...: this file system cannot lock; go on without.
  }
}

OutputLock::OutputLock(OutputLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

OutputSet::OutputSet(fs::path dir, std::string run_id) : dir_(std::move(dir)), run_id_(std::move(run_id)) {}

OutputSet::~OutputSet() {
  if (committed_) return;
  std::error_code ec;
  for (const File& f : files_) fs::remove(dir_ / staged_name(f.name, run_id_), ec);
  fs::remove(dir_ / staged_name(kCommitRecordName, run_id_), ec);
}

void OutputSet::add(const std::string& name, std::span<const std::byte> bytes) {
  VINDEX_ASSERT(!committed_ && is_output_name(name));
  const fs::path temp = dir_ / staged_name(name, run_id_);
  std::error_code ec;
  fs::remove(temp, ec);  // a leftover of this very run id cannot exist, but a stale name is not an error
  write_new_file(temp, bytes);
  files_.push_back({name, bytes.size(), sha256_hex(bytes)});
}

void OutputSet::commit() {
  VINDEX_ASSERT(!committed_ && !files_.empty());
  OutputManifest m;
  m.run_id = run_id_;
  for (const File& f : files_) m.files.push_back({f.name, f.bytes, f.sha256});
  for (const std::string& name : vindex_output_files())
    if (std::none_of(files_.begin(), files_.end(), [&](const File& f) { return f.name == name; }) && present(dir_ / name))
      m.removed.push_back(name);
  const std::string label = "--out " + dir_.string();
  for (const File& f : files_) check_replaceable(dir_ / f.name, label);
  check_replaceable(dir_ / kManifestFileName, label);
  // 1. The commit record, whole and durable before any output is touched.
  const fs::path record_temp = dir_ / staged_name(kCommitRecordName, run_id_);
  const std::string record = manifest_text(m);
  write_new_file(record_temp, std::as_bytes(std::span(record.data(), record.size())));
  rename_or_throw(record_temp, dir_ / kCommitRecordName);
  sync_directory(dir_);
  committed_ = true;  // from here on the commit goes forward, now or in the next run
  // 2 and 3.
  finish_commit(dir_, m);
}

std::vector<fs::path> OutputSet::paths() const {
  std::vector<fs::path> out;
  for (const File& f : files_) out.push_back(dir_ / f.name);
  return out;
}

OutputManifest verify_output_set(const fs::path& dir) {
  const fs::path manifest = dir / kManifestFileName;
  if (!present(manifest)) {
    if (present(dir / kCommitRecordName))
      throw InputError(dir.string(), "",
                       fmt::format("holds an unfinished commit ({}): a run was killed while writing its outputs; a run "
                                   "with --resume (or --overwrite) into this directory finishes or removes it",
                                   kCommitRecordName));
    throw InputError(dir.string(), "",
                     fmt::format("has no {}: it is not a complete vindex output set (a run that did not finish, or "
                                 "one written by a vindex_mpi without manifests)",
                                 kManifestFileName));
  }
  const OutputManifest m = parse_manifest(manifest);
  for (const ManifestEntry& f : m.files) {
    const fs::path path = dir / f.name;
    const auto [bytes, sha] = file_digest(path);
    if (bytes != f.bytes || sha != f.sha256)
      throw InputError(path.string(), "",
                       fmt::format("does not match the manifest ({} bytes, SHA-256 {}; the manifest says {} bytes, {}): "
                                   "it was changed or replaced after run {} wrote it",
                                   bytes, sha.substr(0, 16), f.bytes, f.sha256.substr(0, 16), m.run_id));
    std::string run_id;
    if (f.name == "vindex.h5") {
      run_id = read_vindex_run_id(path);
    } else if (f.name == "cross_cka.h5") {
      run_id = read_output_run_id(path, kCrossCkaFormatName, kCrossCkaFormatVersion);
    } else {
      const nlohmann::json j = parse_json_strict(read_text_file(path, f.bytes), path.string());
      run_id = j.is_object() && j.contains("run_id") && j["run_id"].is_string() ? j["run_id"].get<std::string>() : "";
    }
    if (run_id != m.run_id)
      throw InputError(path.string(), "",
                       fmt::format("carries run id '{}', but the manifest's run is {}: the set is mixed", run_id, m.run_id));
  }
  for (const std::string& name : vindex_output_files())
    if (present(dir / name) && std::none_of(m.files.begin(), m.files.end(), [&](const ManifestEntry& f) { return f.name == name; }))
      throw InputError((dir / name).string(), "",
                       fmt::format("is not in the manifest of run {} (left by another run?)", m.run_id));
  return m;
}

}  // namespace vindex
