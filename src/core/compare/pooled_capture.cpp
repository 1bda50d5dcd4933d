// Reading vindex-pooled-capture files (see vindex/compare/pooled_capture.hpp and docs/cross_cka.md).
#include "vindex/compare/pooled_capture.hpp"

#include <cmath>
#include <span>

#include <fmt/format.h>

#include "../base/hdf5_handle.hpp"
#include "../base/hdf5_read.hpp"
#include "vindex/base/checksum.hpp"
#include "vindex/base/json_file.hpp"

namespace vindex {
namespace {

using hdf5::check;
using hdf5::Context;
using hdf5::Handle;
using hdf5::Numbers;

constexpr const char* kPooledFormat = "vindex-pooled-capture";
constexpr const char* kPooledVersion = "1";
// Bounds read before anything is allocated: an HDF5 dataset can declare any shape and store nothing
// (chunks never written), so the shapes alone must not decide an allocation. One representation of
// one pooling is read at once (P x H doubles, at most 4 GiB).
constexpr std::uint64_t kMaxRepresentations = 4096;
constexpr std::uint64_t kMaxHidden = 1 << 20;
constexpr std::uint64_t kMaxRepresentationValues = std::uint64_t{1} << 29;

std::uint64_t positive_attribute(const Context& ctx, hid_t file, const char* name, std::uint64_t limit) {
  const std::vector<long long> v = hdf5::read_int_attribute(ctx, file, name, "/");
  if (v.size() != 1 || v[0] < 1 || static_cast<std::uint64_t>(v[0]) > limit)
    ctx.fail("/", fmt::format("attribute '{}' must be one integer in [1, {}]", name, limit));
  return static_cast<std::uint64_t>(v[0]);
}

// A name the outputs and the terminal will carry: UTF-8 without control characters.
std::string text_attribute(const Context& ctx, hid_t file, const char* name) {
  std::string value = hdf5::read_string_attribute(ctx, file, name, "/");
  std::size_t bad = 0;
  if (!is_valid_utf8(value, bad)) ctx.fail("/", fmt::format("attribute '{}' is not UTF-8 (byte {})", name, bad));
  for (const char c : value)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      ctx.fail("/", fmt::format("attribute '{}' holds a control character", name));
  return value;
}

std::string hex(const PromptDigest& d) {
  std::string out;
  for (std::uint8_t b : d) out += fmt::format("{:02x}", b);
  return out;
}

}  // namespace

const char* pooling_name(Pooling pooling) { return pooling == Pooling::mean ? "mean" : "last"; }

struct PooledCapture::Impl {
  Context ctx;
  hdf5::CheckedFile opened;
};

PooledCapture::PooledCapture(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PooledCapture::PooledCapture(PooledCapture&&) noexcept = default;
PooledCapture& PooledCapture::operator=(PooledCapture&&) noexcept = default;
PooledCapture::~PooledCapture() = default;

PooledCapture PooledCapture::open(const std::filesystem::path& path) {
  hdf5::silence_errors();
  const Context ctx{path.string()};
  auto impl = std::make_unique<Impl>(Impl{ctx, hdf5::open_checked(ctx)});
  const hid_t file = impl->opened.file.get();
  if (hdf5::read_string_attribute(ctx, file, "format", "/") != kPooledFormat)
    ctx.fail("/", fmt::format("is not a pooled capture (attribute 'format' is not '{}'; write one with "
                              "tools/capture/capture.py --pooled)",
                              kPooledFormat));
  if (const auto v = hdf5::read_string_attribute(ctx, file, "format_version", "/"); v != kPooledVersion)
    ctx.fail("/", fmt::format("format_version {} is not the {} this build reads", v, kPooledVersion));
  PooledCaptureInfo info;
  info.path = ctx.file;
  info.model = text_attribute(ctx, file, "model");
  info.model_type = text_attribute(ctx, file, "model_type");
  info.engine = text_attribute(ctx, file, "engine");
  info.n_prompts = positive_attribute(ctx, file, "n_prompts", kMaxPooledPrompts);
  info.n_representations = positive_attribute(ctx, file, "n_representations", kMaxRepresentations);
  info.hidden_size = positive_attribute(ctx, file, "hidden_size", kMaxHidden);
  const hsize_t P = info.n_prompts, R = info.n_representations, H = info.hidden_size;
  if (P * H > kMaxRepresentationValues)
    ctx.fail("/", fmt::format("{} prompts x hidden size {} is more than the {} values per representation this build "
                              "reads at once",
                              P, H, kMaxRepresentationValues));

  auto expect = [&](const std::string& name, Numbers numbers, const std::vector<hsize_t>& want, const char* why) {
    hdf5::expect_dims(ctx, name, hdf5::dataset_dims(ctx, file, name, false, numbers), want, why);
  };
  expect("/prompts/sha256", Numbers::integers, {P, 32}, "a SHA-256 per prompt");
  {
    const Handle set(H5Dopen2(file, "/prompts/sha256", H5P_DEFAULT), H5Dclose, "H5Dopen2", "/prompts/sha256");
    const Handle type(H5Dget_type(set.get()), H5Tclose, "H5Dget_type", "/prompts/sha256");
    if (H5Tget_size(type.get()) != 1 || H5Tget_sign(type.get()) != H5T_SGN_NONE)
      ctx.fail("/prompts/sha256", "must hold unsigned bytes (uint8), the digests as they are");
  }
  expect("/prompts/n_tokens", Numbers::integers, {P}, "one per prompt");
  for (const Pooling p : kPoolings)
    expect(fmt::format("/pooled/{}", pooling_name(p)), Numbers::floats, {R, P, H},
           "representations x prompts x hidden_size");

  std::vector<std::uint8_t> bytes;
  {
    const Handle prompts(H5Gopen2(file, "/prompts", H5P_DEFAULT), H5Gclose, "H5Gopen2", "/prompts");
    hdf5::read_dataset(ctx, prompts.get(), "/prompts", "sha256", H5T_NATIVE_UINT8, {P, 32}, bytes);
    std::vector<long long> tokens;
    hdf5::read_dataset(ctx, prompts.get(), "/prompts", "n_tokens", H5T_NATIVE_LLONG, {P}, tokens);
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 1) ctx.fail("/prompts/n_tokens", fmt::format("prompt {} has {} tokens", i, tokens[i]));
  }
  PooledCapture out(std::move(impl));
  out.info_ = std::move(info);
  out.digests_.resize(P);
  for (std::size_t i = 0; i < P; ++i)
    for (std::size_t b = 0; b < 32; ++b) out.digests_[i][b] = bytes[i * 32 + b];
  return out;
}

std::vector<double> PooledCapture::representation(Pooling pooling, std::uint64_t r) const {
  const Context& ctx = impl_->ctx;
  const std::string path = fmt::format("/pooled/{}", pooling_name(pooling));
  if (r >= info_.n_representations) throw InternalError(fmt::format("representation {} of {}", r, info_.n_representations));
  const Handle set(H5Dopen2(impl_->opened.file.get(), path.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", path);
  const Handle space(H5Dget_space(set.get()), H5Sclose, "H5Dget_space", path);
  const hsize_t start[3] = {r, 0, 0}, count[3] = {1, info_.n_prompts, info_.hidden_size};
  check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), "H5Sselect_hyperslab", path);
  const Handle memory(H5Screate_simple(3, count, nullptr), H5Sclose, "H5Screate_simple", path);
  std::vector<double> values(info_.n_prompts * info_.hidden_size);
  if (H5Dread(set.get(), H5T_NATIVE_DOUBLE, memory.get(), space.get(), H5P_DEFAULT, values.data()) < 0)
    ctx.fail(path, fmt::format("representation {} cannot be read (a truncated or damaged file)", r));
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      ctx.fail(path, fmt::format("representation {}, prompt {}: value {} is not finite", r, i / info_.hidden_size,
                                 values[i]));
  return values;
}

void require_same_prompts(const PooledCapture& a, const PooledCapture& b) {
  const auto& da = a.prompt_digests();
  const auto& db = b.prompt_digests();
  if (da.size() != db.size())
    throw InputError(b.info().path, "",
                     fmt::format("/prompts/sha256: holds {} prompts, {} holds {}: the captures must be of the same prompts", db.size(),
                                 a.info().path, da.size()));
  for (std::size_t i = 0; i < da.size(); ++i)
    if (da[i] != db[i])
      throw InputError(b.info().path, "",
                       fmt::format("/prompts/sha256: prompt {} has SHA-256 {}, but prompt {} of {} has {}: the captures are not of the "
                                   "same prompts in the same order",
                                   i, hex(db[i]).substr(0, 16), i, a.info().path, hex(da[i]).substr(0, 16)));
}

std::string prompt_set_sha256(const std::vector<PromptDigest>& digests) {
  Sha256 sha;
  for (const PromptDigest& d : digests) sha.update(std::as_bytes(std::span(d)));
  return sha.hex_digest();
}

}  // namespace vindex
