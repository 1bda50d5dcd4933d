// Reading vindex-capture files (see vindex/phase3/capture_file.hpp and docs/phase3.md).
#include "vindex/phase3/capture_file.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../base/hdf5_handle.hpp"
#include "../base/hdf5_read.hpp"

namespace vindex {
namespace {

using hdf5::check;
using hdf5::Context;
using hdf5::Handle;
using hdf5::Numbers;
using hdf5::dataset_dims;
using hdf5::dims_text;
using hdf5::expect_dims;

constexpr const char* kCaptureFormat = "vindex-capture";
constexpr const char* kCaptureVersion = "1";
constexpr hsize_t kMaxTokens = hsize_t{1} << 32;
constexpr hsize_t kCheckBatch = hsize_t{1} << 20;  // tokens read at once when a whole dataset is checked

std::string layer_path(int layer) { return fmt::format("/layers/layer_{:03d}", layer); }


// Reads rows [r0, r1) of a 2-d dataset of `cols` columns.
template <typename T>
std::vector<T> read_rows(hid_t file, const std::string& path, hid_t mem_type, hsize_t r0, hsize_t r1, hsize_t cols) {
  const Handle set(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", path);
  const Handle space(H5Dget_space(set.get()), H5Sclose, "H5Dget_space", path);
  const hsize_t start[2] = {r0, 0}, count[2] = {r1 - r0, cols};
  check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), "H5Sselect_hyperslab", path);
  const Handle memory(H5Screate_simple(2, count, nullptr), H5Sclose, "H5Screate_simple", path);
  std::vector<T> out((r1 - r0) * cols);
  if (!out.empty()) check(H5Dread(set.get(), mem_type, memory.get(), space.get(), H5P_DEFAULT, out.data()), "H5Dread", path);
  return out;
}

// The stored element type of a dataset: its size and whether it is an unsigned integer.
struct StoredType {
  std::size_t size = 0;
  bool is_unsigned = false;
  int rank = 0;
};

StoredType stored_type(hid_t file, const std::string& path) {
  const Handle set(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", path);
  const Handle type(H5Dget_type(set.get()), H5Tclose, "H5Dget_type", path);
  const Handle space(H5Dget_space(set.get()), H5Sclose, "H5Dget_space", path);
  return {H5Tget_size(type.get()),
          H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE,
          H5Sget_simple_extent_ndims(space.get())};
}

// "[r]" of a 1-d dataset, "[r, c]" of a 2-d one, for element i of rows read from r0 with `cols` columns.
std::string element_text(const StoredType& t, hsize_t r0, std::size_t i, hsize_t cols) {
  return t.rank == 1 ? fmt::format("[{}]", r0 + i) : fmt::format("[{}, {}]", r0 + i / cols, i % cols);
}

// Rows [r0, r1) x the first `cols` columns of an integer dataset (checked when opened), exactly:
// every integer type of at most 8 bytes converts to int64 without loss, except unsigned 64-bit
// values past 2^63 - 1, which HDF5 would clamp and which are refused here.
std::vector<std::int64_t> read_int64_rows(const Context& ctx, hid_t file, const std::string& path, hsize_t r0, hsize_t r1,
                                          hsize_t cols) {
  const StoredType t = stored_type(file, path);
  if (!(t.is_unsigned && t.size == 8)) return read_rows<std::int64_t>(file, path, H5T_NATIVE_INT64, r0, r1, cols);
  const std::vector<std::uint64_t> wide = read_rows<std::uint64_t>(file, path, H5T_NATIVE_UINT64, r0, r1, cols);
  std::vector<std::int64_t> out(wide.size());
  for (std::size_t i = 0; i < wide.size(); ++i) {
    if (wide[i] > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      ctx.fail(path, fmt::format("value {} = {} is past int64's range", element_text(t, r0, i, cols), wide[i]));
    out[i] = static_cast<std::int64_t>(wide[i]);
  }
  return out;
}

// Rows [r0, r1) x the first `cols` columns of a floating-point dataset (checked when opened), as
// float32: a float16 or float32 type converts exactly; a float64 one is read as float64 and
// rounded once to float32, and a finite value past float32's range is refused here (HDF5 would
// make it Inf). NaN and Inf come through for the caller to report.
std::vector<float> read_float32_rows(const Context& ctx, hid_t file, const std::string& path, hsize_t r0, hsize_t r1,
                                     hsize_t cols) {
  const StoredType t = stored_type(file, path);
  if (t.size <= sizeof(float)) return read_rows<float>(file, path, H5T_NATIVE_FLOAT, r0, r1, cols);
  const std::vector<double> wide = read_rows<double>(file, path, H5T_NATIVE_DOUBLE, r0, r1, cols);
  std::vector<float> out(wide.size());
  for (std::size_t i = 0; i < wide.size(); ++i) {
    out[i] = static_cast<float>(wide[i]);
    if (std::isfinite(wide[i]) && !std::isfinite(out[i]))
      ctx.fail(path, fmt::format("value {} = {} is outside float32's range (the format's type; phase 3 reads float32)",
                                 element_text(t, r0, i, cols), wide[i]));
  }
  return out;
}

}  // namespace

struct CaptureFile::Impl {
  Impl(const Context& c, hdf5::CheckedFile opened) : ctx(c), fd(std::move(opened.fd)), file(std::move(opened.file)) {}
  Context ctx;
  FileDescriptor fd;  // the checked file HDF5 opened through /proc/self/fd
  Handle file;
  std::uint64_t hidden = 0;
  std::vector<std::uint64_t> choices;  // per layer: k of selected_experts, 0 when absent
  std::vector<std::uint64_t> experts;  // per layer: routed experts, 0 for a dense layer
};

CaptureFile::CaptureFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CaptureFile::CaptureFile(CaptureFile&&) noexcept = default;
CaptureFile& CaptureFile::operator=(CaptureFile&&) noexcept = default;
CaptureFile::~CaptureFile() = default;

CaptureFile CaptureFile::open(const std::filesystem::path& path, const ModelLayout& layout) {
  hdf5::silence_errors();
  const Context ctx{path.string()};
  auto impl = std::make_unique<Impl>(ctx, hdf5::open_checked(ctx));
  const hid_t file = impl->file.get();
  if (hdf5::read_string_attribute(ctx, file, "format", "/") != kCaptureFormat)
    ctx.fail("/", fmt::format("is not a capture file (attribute 'format' is not '{}')", kCaptureFormat));
  if (const auto v = hdf5::read_string_attribute(ctx, file, "format_version", "/"); v != kCaptureVersion)
    ctx.fail("/", fmt::format("format_version {} is not the {} this build reads", v, kCaptureVersion));
  CaptureInfo info;
  info.path = ctx.file;
  info.model = hdf5::read_string_attribute(ctx, file, "model", "/");
  info.engine = hdf5::read_string_attribute(ctx, file, "engine", "/");

  const std::vector<hsize_t> ids = dataset_dims(ctx, file, "/tokens/token_ids", false, Numbers::integers);
  if (ids.size() != 1 || ids[0] == 0 || ids[0] > kMaxTokens) ctx.fail("/tokens/token_ids", "is not a list of 1 to 2^32 tokens");
  const hsize_t n = ids[0];
  info.n_tokens = n;
  for (const char* name : {"/tokens/prompt_index", "/tokens/position"})
    expect_dims(ctx, name, dataset_dims(ctx, file, name, false, Numbers::integers), {n}, "one per token of /tokens/token_ids");
  {
    // In batches: a crafted file may declare billions of tokens in a few bytes.
    std::int64_t previous = 0;
    for (hsize_t r0 = 0; r0 < n; r0 += kCheckBatch) {
      const std::vector<std::int64_t> prompts =
          read_int64_rows(ctx, file, "/tokens/prompt_index", r0, std::min(n, r0 + kCheckBatch), 1);
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        if (prompts[i] < (r0 + i == 0 ? 0 : previous))
          ctx.fail("/tokens/prompt_index", fmt::format("decreases or is negative at token {}", r0 + i));
        previous = prompts[i];
      }
    }
    info.n_prompts = static_cast<std::uint64_t>(previous) + 1;
  }
  const auto attr = hdf5::read_int_attribute(ctx, file, "num_hidden_layers", "/");
  if (attr.size() != 1 || attr[0] != layout.num_layers)
    ctx.fail("/", fmt::format("num_hidden_layers is {}, the model has {}", attr.empty() ? -1 : attr[0], layout.num_layers));

  const hsize_t H = layout.hidden_size;
  impl->hidden = H;
  for (const LayerLayout& l : layout.layers) {
    const std::string base = layer_path(l.index);
    expect_dims(ctx, base + "/mlp_input", dataset_dims(ctx, file, base + "/mlp_input", false, Numbers::floats), {n, H},
                fmt::format("tokens x the model's hidden size {}", H));
    hsize_t k = 0;
    if (l.kind == LayerKind::moe) {
      const auto E = static_cast<hsize_t>(l.routed.size());
      const auto want_k = static_cast<hsize_t>(layout.experts_per_token);
      const std::string per_token = fmt::format("tokens x the {} experts per token of config.json", want_k);
      if (const auto d = dataset_dims(ctx, file, base + "/router_logits", true, Numbers::floats); !d.empty())
        expect_dims(ctx, base + "/router_logits", d, {n, E}, "tokens x the layer's experts");
      if (const auto d = dataset_dims(ctx, file, base + "/selected_experts", true, Numbers::integers); !d.empty()) {
        expect_dims(ctx, base + "/selected_experts", d, {n, want_k}, per_token);
        k = want_k;
      }
      // Not read (the statistics use the recomputed routing), but part of the format.
      if (const auto d = dataset_dims(ctx, file, base + "/routing_weights", true, Numbers::floats); !d.empty())
        expect_dims(ctx, base + "/routing_weights", d, {n, want_k}, per_token);
    }
    impl->choices.push_back(k);
    impl->experts.push_back(l.kind == LayerKind::moe ? l.routed.size() : 0);
  }
  const std::vector<hsize_t> probs = dataset_dims(ctx, file, "/output/top_probs", false, Numbers::floats);
  if (probs.size() != 2 || probs[0] != n || probs[1] < 8 || probs[1] > 1'000'000)
    ctx.fail("/output/top_probs", fmt::format("has shape {}, expected [{}, P] with P >= 8", dims_text(probs), n));
  // Not read (C2 needs only the probabilities); checked when present.
  if (const auto d = dataset_dims(ctx, file, "/output/top_token_ids", true, Numbers::integers); !d.empty())
    expect_dims(ctx, "/output/top_token_ids", d, probs, "one id per probability of /output/top_probs");
  CaptureFile capture(std::move(impl));
  capture.info_ = std::move(info);
  return capture;
}

std::vector<float> CaptureFile::mlp_input(int layer, std::uint64_t r0, std::uint64_t r1) const {
  const std::string path = layer_path(layer) + "/mlp_input";
  std::vector<float> rows = read_float32_rows(impl_->ctx, impl_->file.get(), path, r0, r1, impl_->hidden);
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (!std::isfinite(rows[i]))
      impl_->ctx.fail(path, fmt::format("value [{}, {}] is {}", r0 + i / impl_->hidden, i % impl_->hidden,
                                        std::isnan(rows[i]) ? "NaN" : "Inf"));
  return rows;
}

std::vector<std::int32_t> CaptureFile::selected_experts(int layer, std::uint64_t r0, std::uint64_t r1) const {
  const hsize_t k = impl_->choices.at(static_cast<std::size_t>(layer));
  if (k == 0) return {};
  const std::string path = layer_path(layer) + "/selected_experts";
  const std::vector<std::int64_t> ids = read_int64_rows(impl_->ctx, impl_->file.get(), path, r0, r1, k);
  const auto experts = static_cast<std::int64_t>(impl_->experts.at(static_cast<std::size_t>(layer)));
  std::vector<std::int32_t> chosen(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= experts)
      impl_->ctx.fail(path, fmt::format("value [{}, {}] = {} is not an expert of the layer's {}", r0 + i / k, i % k, ids[i],
                                        experts));
    chosen[i] = static_cast<std::int32_t>(ids[i]);
  }
  // An engine chooses k different experts per token; a repeated id would count one expert twice
  // in the loads and co-activation and pass for agreement.
  std::vector<std::uint64_t> seen(static_cast<std::size_t>(experts), 0);  // token index + 1 that last chose it
  for (std::size_t row = 0; row < chosen.size() / k; ++row) {
    const auto token = static_cast<std::uint64_t>(r0 + row);
    for (std::size_t j = 0; j < k; ++j) {
      const auto e = static_cast<std::size_t>(chosen[row * k + j]);
      if (seen[e] == token + 1) {
        const std::span<const std::int32_t> experts_of_token(chosen.data() + row * k, k);
        impl_->ctx.fail(path, fmt::format("token {} lists expert {} more than once: [{}]", token, e,
                                          fmt::join(experts_of_token, ", ")));
      }
      seen[e] = token + 1;
    }
  }
  return chosen;
}

std::vector<float> CaptureFile::top8_probs() const {
  // Only the 8 columns C2 needs: P may be large.
  const std::string path = "/output/top_probs";
  std::vector<float> probs = read_float32_rows(impl_->ctx, impl_->file.get(), path, 0, info_.n_tokens, 8);
  for (std::size_t i = 0; i < probs.size(); ++i)
    if (!std::isfinite(probs[i]) || probs[i] < 0 || probs[i] > 1)
      impl_->ctx.fail(path, fmt::format("value [{}, {}] = {} is not a probability", i / 8, i % 8, probs[i]));
  return probs;
}

}  // namespace vindex
