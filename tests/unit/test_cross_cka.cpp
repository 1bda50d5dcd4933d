// Cross-model CKA's pieces: the U-centring's defining properties, the tables from Grams (best matches,
// matched depth) and the Grams' encoding between ranks. The numbers themselves are checked against
// the float64 numpy reference in tests/integration/check_cross_cka.py.
#include <cmath>
#include <random>

#include "catch_compat.hpp"
#include "vindex/compare/cross_cka.hpp"
#include "vindex/phase3/statistics.hpp"

using namespace vindex;

namespace {

std::vector<double> gram_of(const std::vector<double>& x, std::size_t n, std::size_t h) {
  std::vector<double> k(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t c = 0; c < h; ++c) k[i * n + j] += x[i * h + c] * x[j * h + c];
  return k;
}

}  // namespace

TEST_CASE("U-centring: zero diagonal, a symmetric a1^T + 1a^T annihilated, feature shifts ignored", "[cross_cka]") {
  const std::size_t n = 9, h = 5;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  // A kernel a_i + a_j (off the diagonal) U-centres to zero: shifting linear features by c adds
  // x_i.c + x_j.c + |c|^2, which is of that form.
  std::vector<double> offsets(n * n);
  std::vector<double> a(n);
  for (auto& v : a) v = normal(rng);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) offsets[i * n + j] = a[i] + a[j] + 0.5;
  u_center_gram(offsets, n);
  for (double v : offsets) REQUIRE(std::abs(v) < 1e-12);
  // The linear kernel of shifted features U-centres to the same matrix as the unshifted one.
  std::vector<double> x(n * h), shifted(n * h);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = normal(rng);
    shifted[i] = x[i] + 10.0 * static_cast<double>(i % h + 1);
  }
  std::vector<double> kx = gram_of(x, n, h), ks = gram_of(shifted, n, h);
  u_center_gram(kx, n);
  u_center_gram(ks, n);
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(kx[i * n + i] == 0.0);
    for (std::size_t j = 0; j < n; ++j) REQUIRE(std::abs(kx[i * n + j] - ks[i * n + j]) < 1e-9);
  }
  REQUIRE(gram_alignment(kx, ks) == Approx(1.0).epsilon(1e-12));
}

TEST_CASE("cross-CKA tables: matrix, best matches, matched depth; the Grams' encoding", "[cross_cka]") {
  const std::size_t n = 6, h = 4;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  std::array<PooledCaptureInfo, 2> infos;
  infos[0].n_representations = 3;
  infos[1].n_representations = 5;
  infos[0].n_prompts = infos[1].n_prompts = n;
  std::vector<RepresentationGrams> grams;
  for (int m = 0; m < 2; ++m)
    for (int r = 0; r < static_cast<int>(infos[static_cast<std::size_t>(m)].n_representations); ++r) {
      RepresentationGrams g;
      g.model = m;
      g.index = r;
      for (std::size_t t = 0; t < kCkaTables; ++t) {
        std::vector<double> x(n * h);
        for (auto& v : x) v = normal(rng);
        center_columns(x, n, h);
        std::vector<double> plain;
        estimator_grams(gram_of(x, n, h), n, plain, g.grams[t]);
        if (t % 2 == 1) g.grams[t] = plain;
      }
      grams.push_back(std::move(g));
    }
  // Gathered in any order, the same tables.
  std::vector<std::byte> bytes;
  encode_grams(grams, bytes);
  std::vector<RepresentationGrams> decoded = decode_grams(bytes);
  std::reverse(decoded.begin(), decoded.end());
  const CrossCkaResults r = cross_cka(infos, decoded, CkaEstimator::debiased, "x");
  const CrossCkaResults same = cross_cka(infos, grams, CkaEstimator::debiased, "x");
  for (std::size_t t = 0; t < kCkaTables; ++t) REQUIRE(r.tables[t].matrix == same.tables[t].matrix);
  REQUIRE(r.models[1].depth == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  const CkaTable& t = r.tables[table_index(Pooling::last, CkaEstimator::plain)];
  REQUIRE(t.matrix.size() == 15);
  for (std::size_t i = 0; i < 3; ++i) {
    double best = -2;
    for (std::size_t j = 0; j < 5; ++j) best = std::max(best, t.matrix[i * 5 + j]);
    REQUIRE(t.best_a[i].cka == best);
    REQUIRE(t.matrix[i * 5 + static_cast<std::size_t>(t.best_a[i].match)] == best);
  }
  // a's depths 0, 0.5, 1 meet b's layers 0, 2, 4.
  REQUIRE(t.matched.size() == 3);
  REQUIRE(t.matched[1].layer_b == 2);
  REQUIRE(t.matched[2].layer_b == 4);
  REQUIRE(t.matched[1].cka == t.matrix[1 * 5 + 2]);
  // Exact halves round up, also where floating point would land below them: 17 x 42 / 28 = 25.5.
  {
    std::array<PooledCaptureInfo, 2> wide;
    wide[0].n_representations = 29;
    wide[1].n_representations = 43;
    wide[0].n_prompts = wide[1].n_prompts = 4;
    std::vector<RepresentationGrams> small;
    for (int m = 0; m < 2; ++m)
      for (int i = 0; i < static_cast<int>(wide[static_cast<std::size_t>(m)].n_representations); ++i) {
        RepresentationGrams g;
        g.model = m;
        g.index = i;
        for (auto& gram : g.grams) gram.assign(16, 0.25);
        small.push_back(std::move(g));
      }
    const CrossCkaResults w = cross_cka(wide, small, CkaEstimator::debiased, "x");
    REQUIRE(w.tables[0].matched[17].layer_b == 26);
    REQUIRE(w.tables[0].matched[28].layer_b == 42);
  }
  // A representation missing or given twice is an internal error, never a silent gap.
  std::vector<RepresentationGrams> missing(grams.begin() + 1, grams.end());
  REQUIRE_THROWS(cross_cka(infos, missing, CkaEstimator::debiased, "x"));
  std::vector<RepresentationGrams> twice = grams;
  twice.push_back(grams[0]);
  REQUIRE_THROWS(cross_cka(infos, twice, CkaEstimator::debiased, "x"));
}
