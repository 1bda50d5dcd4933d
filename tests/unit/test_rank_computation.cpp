// One rank's computation as a SpectrumSink: a library failure a backend reports for a matrix is
// named with that matrix's file and tensor, once.
#include <functional>
#include <string>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/run/rank_computation.hpp"

using namespace vindex;

namespace {

// A backend that reports one failure through the sink, as the CPU and CUDA backends do.
class FailingBackend final : public SpectrumBackend {
 public:
  explicit FailingBackend(std::function<void(SpectrumSink&)> act) : act_(std::move(act)) {}
  std::string name() const override { return "failing"; }
  std::string description() const override { return "failing"; }
  void compute(std::span<const EncodedMatrix>, SpectrumSink& sink) override { act_(sink); }
  LayerPhase3 phase3_layer(const Phase3Inputs&, int) override { throw LibraryError("failing", "phase3", "not here"); }

 private:
  std::function<void(SpectrumSink&)> act_;
};

std::string run_and_fail(const std::function<void(SpectrumSink&)>& act, const std::vector<WorkItem>& items,
                         const Checkpoint& ckpt, const ModelLayout& layout) {
  FailingBackend backend(act);
  RankComputation work(backend, ckpt, layout, items, std::vector<int>{64});
  work.start();
  work.join();
  REQUIRE(work.failed());
  try {
    std::rethrow_exception(work.error());
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a library failure reported for a matrix names its file and tensor, once", "[rank_computation]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const ModelLayout layout = detect_layout(ckpt);
  const std::vector<WorkItem> items = plan_items(layout, ckpt, std::vector<int>{1}, PlanRequest{});
  REQUIRE(items.size() >= 2);
  const TensorView second = ckpt.view(*items[1].weight.weight);

  // Unnamed, as cuSOLVER's or LAPACK's own error: named here.
  const std::string unnamed = run_and_fail(
      [](SpectrumSink& sink) { sink.fail(1, std::make_exception_ptr(LapackError("LAPACKE_dsyevd_2stage", 135))); },
      items, ckpt, layout);
  CHECK(unnamed.find(second.file() + ": tensor '" + second.name() + "': LAPACK call LAPACKE_dsyevd_2stage failed: info = 135") !=
        std::string::npos);

  // Already named by the backend: not named twice.
  const std::string named = run_and_fail(
      [&](SpectrumSink& sink) {
        sink.fail(1, std::make_exception_ptr(LibraryError(LapackError("LAPACKE_ssyrk", 1), second.file(), second.name())));
      },
      items, ckpt, layout);
  CHECK(count(named, "tensor '") == 1);
  CHECK(named.find(second.name()) != std::string::npos);

  // Other errors pass unchanged (an input error names its own file and tensor).
  const std::string input = run_and_fail(
      [](SpectrumSink& sink) { sink.fail(0, std::make_exception_ptr(InputError("f.safetensors", "t", "bad"))); }, items,
      ckpt, layout);
  CHECK(input == "f.safetensors: tensor 't': bad");

  // A failure outside any matrix (index past the end) is not named.
  const std::string outside = run_and_fail(
      [&](SpectrumSink& sink) { sink.fail(items.size(), std::make_exception_ptr(LapackError("LAPACKE_x", 2))); }, items,
      ckpt, layout);
  CHECK(count(outside, "tensor '") == 0);
}
