// The contiguous split of the work list: optimal bottleneck (against exhaustive search), no empty
// rank while another holds two items, and the demo plan in file order.
#include <algorithm>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/natural_order.hpp"
#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/run/plan.hpp"

using namespace vindex;

namespace {

double max_load(const std::vector<double>& costs, const std::vector<std::size_t>& bounds) {
  double worst = 0;
  for (std::size_t p = 0; p + 1 < bounds.size(); ++p)
    worst = std::max(worst, std::accumulate(costs.begin() + static_cast<std::ptrdiff_t>(bounds[p]),
                                            costs.begin() + static_cast<std::ptrdiff_t>(bounds[p + 1]), 0.0));
  return worst;
}

// The best bottleneck over every way of cutting `costs` into `parts` contiguous (possibly empty) ranges.
double brute_force_optimum(const std::vector<double>& costs, int parts) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<std::size_t> bounds{0};
  std::function<void(int)> place = [&](int remaining) {
    if (remaining == 1) {
      bounds.push_back(costs.size());
      best = std::min(best, max_load(costs, bounds));
      bounds.pop_back();
      return;
    }
    for (std::size_t b = bounds.back(); b <= costs.size(); ++b) {
      bounds.push_back(b);
      place(remaining - 1);
      bounds.pop_back();
    }
  };
  place(parts);
  return best;
}

}  // namespace

TEST_CASE("contiguous partition reaches the optimal bottleneck", "[plan]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> cost(0.1, 10.0);
  for (int trial = 0; trial < 300; ++trial) {
    const auto n = static_cast<std::size_t>(rng() % 11);
    const int parts = 1 + static_cast<int>(rng() % 5);
    std::vector<double> costs(n);
    for (double& c : costs) c = (trial % 7 == 0) ? 1.0 : cost(rng);  // some with equal costs
    const auto bounds = partition_contiguous(costs, parts);
    INFO("trial " << trial << ", n = " << n << ", parts = " << parts);
    REQUIRE(bounds.size() == static_cast<std::size_t>(parts) + 1);
    REQUIRE(bounds.front() == 0);
    REQUIRE(bounds.back() == n);
    REQUIRE(std::is_sorted(bounds.begin(), bounds.end()));
    REQUIRE_THAT(max_load(costs, bounds), WithinRel(brute_force_optimum(costs, parts), 1e-9));
    // Nobody idles while another rank holds more than one item.
    bool some_empty = false, some_multiple = false;
    for (int p = 0; p < parts; ++p) {
      const std::size_t size = bounds[static_cast<std::size_t>(p) + 1] - bounds[static_cast<std::size_t>(p)];
      some_empty |= size == 0;
      some_multiple |= size > 1;
    }
    REQUIRE_FALSE((some_empty && some_multiple));
  }
}

TEST_CASE("the split of a Kimi-K2-like list is within one item of perfect", "[plan]") {
  // Layer 0's dense matrix costs ~30 experts; then 60 x 385 equal experts.
  std::vector<double> costs{30.0};
  costs.insert(costs.end(), 60 * 385, 1.0);
  const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
  for (int parts : {1, 2, 8, 16, 64}) {
    const auto bounds = partition_contiguous(costs, parts);
    REQUIRE(max_load(costs, bounds) <= total / parts + 30.0);
  }
}

TEST_CASE("shard files are ordered naturally", "[plan]") {
  REQUIRE(natural_less("model-2-of-61.safetensors", "model-10-of-61.safetensors"));
  REQUIRE_FALSE(natural_less("model-10-of-61.safetensors", "model-2-of-61.safetensors"));
  REQUIRE(natural_less("model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors"));
  REQUIRE(natural_less("a", "b"));
  REQUIRE(natural_less("a", "a1"));
  REQUIRE_FALSE(natural_less("a1", "a1"));
  REQUIRE(natural_less("x-007", "x-8"));
}

TEST_CASE("the demo plan covers every selected matrix once, in file order", "[plan]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const ModelLayout layout = detect_layout(ckpt);
  const std::vector<int> layers{0, 1, 2, 3};
  const auto items = plan_items(layout, ckpt, layers, PlanRequest{});
  REQUIRE(items.size() == 1 + 3 * (8 + 1));
  for (std::size_t i = 1; i < items.size(); ++i) {
    const TensorRecord& a = *items[i - 1].weight.weight;
    const TensorRecord& b = *items[i].weight.weight;
    const auto& fa = ckpt.shards()[a.shard].file_name;
    const auto& fb = ckpt.shards()[b.shard].file_name;
    REQUIRE((natural_less(fa, fb) || (fa == fb && a.info->begin < b.info->begin)));
  }
  std::vector<MatrixKey> keys;
  for (const auto& it : items) keys.push_back(it.key);
  std::sort(keys.begin(), keys.end());
  REQUIRE(std::adjacent_find(keys.begin(), keys.end()) == keys.end());
  REQUIRE(keys.front().layer == 0);
  REQUIRE(keys.front().role == MatrixRole::dense);
  REQUIRE(items[0].bytes == 200 * 300 + 2 * 3 * 4);  // fp8 bytes and a 2 x 3 float32 scale grid
}
