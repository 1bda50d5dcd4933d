// Rank 0's reduction: results are checked against the plan and grouped per layer; C4.
#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/output/aggregate.hpp"

using namespace vindex;

namespace {

struct Demo {
  Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  ModelLayout layout = detect_layout(ckpt);
  std::vector<WorkItem> items = plan_items(layout, ckpt, std::vector<int>{0, 1, 2, 3}, PlanRequest{});
};

// A result whose var@64 is `v` (eigenvalues chosen so the statistics are easy to predict).
MatrixResult result_for(const WorkItem& item, double v) {
  MatrixSpectrum s;
  const std::size_t n = std::min(item.weight.rows, item.weight.cols);
  s.eigenvalues.assign(n, 0.0);
  s.eigenvalues[0] = v;
  s.eigenvalues[n - 1] = 0.0;
  s.frobenius_sq = 1.0;
  return make_matrix_result(item, s, std::vector<int>{64});
}

}  // namespace

TEST_CASE("results are grouped per layer in expert order and C4 is the median of layer medians", "[aggregate]") {
  Demo d;
  std::vector<MatrixResult> results;
  for (auto it = d.items.rbegin(); it != d.items.rend(); ++it)  // any arrival order
    results.push_back(result_for(*it, 0.01 * it->key.layer + 0.001 * std::max(it->key.expert, 0)));
  const VindexTables t = assemble_tables(std::move(results), d.items, d.layout, std::vector<int>{64});
  REQUIRE(t.groups.size() == 1 + 3 * 2);
  REQUIRE(t.groups[0].name == "down_proj");
  REQUIRE(t.groups[0].kind == LayerKind::dense);
  REQUIRE(t.groups[0].expert_ids == std::vector<std::int32_t>{-1});
  REQUIRE(t.groups[1].expert_ids == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  REQUIRE(t.groups[2].name == "shared_down_proj");
  // Layer L's routed experts have var@64 = 0.01 L + 0.001 e, e = 0..7: median 0.01 L + 0.0035.
  const auto c4 = layer_temperature(t);
  REQUIRE(c4);
  REQUIRE_THAT(c4->value, WithinAbs(0.02 + 0.0035, 1e-15));
  REQUIRE_THAT(c4->min, WithinAbs(0.01 + 0.0035, 1e-15));
  REQUIRE(c4->layers == std::vector<int>{1, 2, 3});
}

TEST_CASE("a missing or duplicated result is an internal error", "[aggregate]") {
  Demo d;
  std::vector<MatrixResult> results;
  for (const WorkItem& it : d.items) results.push_back(result_for(it, 0.5));
  SECTION("missing") {
    results.pop_back();
    REQUIRE_THROWS_AS(assemble_tables(std::move(results), d.items, d.layout, std::vector<int>{64}), InternalError);
  }
  SECTION("duplicated") {
    results.back() = results.front();
    REQUIRE_THROWS_AS(assemble_tables(std::move(results), d.items, d.layout, std::vector<int>{64}), InternalError);
  }
}

TEST_CASE("C4 is pending without MoE layers or without k = 64", "[aggregate]") {
  Demo d;
  const std::vector<WorkItem> dense_only(d.items.begin(), d.items.begin() + 1);
  std::vector<MatrixResult> results{result_for(dense_only[0], 0.5)};
  REQUIRE_FALSE(layer_temperature(assemble_tables(results, dense_only, d.layout, std::vector<int>{64})));
}
