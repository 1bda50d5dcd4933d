// The Marchenko-Pastur var@k of a random matrix (see random_floor.hpp).
//
// With x = (a + b)/2 - (b - a)/2 cos(theta), theta in [0, pi], the law's density times dx is
// ((b - a)/2)^2 sin^2(theta) / (2 pi c x) dtheta and its first moment times dx is
// ((b - a)/2)^2 sin^2(theta) / (2 pi c) dtheta, whose integral from theta0 to pi is closed:
// ((b - a)^2 / 4) / (2 pi c) * (pi/2 - theta0/2 + sin(2 theta0)/4). The mass above theta0 is
// integrated numerically (Simpson's rule; the integrand is smooth, and finite at x = 0 when c = 1),
// and theta0 found where that mass is k / min(rows, cols).
#include "vindex/numerics/random_floor.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "vindex/base/errors.hpp"

namespace vindex {
namespace {

constexpr int kIntervals = 1 << 14;  // Simpson intervals over [0, pi]

}  // namespace

double random_floor_var_at_k(std::uint64_t rows, std::uint64_t cols, int k) {
  VINDEX_ASSERT(rows >= 1 && cols >= 1 && k >= 1);
  const double n = static_cast<double>(std::min(rows, cols));
  const double m = static_cast<double>(std::max(rows, cols));
  if (static_cast<double>(k) >= n) return 1.0;
  const double c = n / m;
  const double a = (1 - std::sqrt(c)) * (1 - std::sqrt(c));
  const double b = (1 + std::sqrt(c)) * (1 + std::sqrt(c));
  const double half = (b - a) / 2;
  const double pi = std::numbers::pi;
  // Density in theta; sin^2(theta) / x is finite at theta = 0 even when a = 0 (c = 1).
  const auto density = [&](double theta) {
    const double x = (a + b) / 2 - half * std::cos(theta);
    if (x <= 0) return half * half / (2 * pi * c) * (4 / b);  // theta = 0 with a = 0: sin^2/x -> 4/b
    return half * half * std::sin(theta) * std::sin(theta) / (2 * pi * c * x);
  };
  // tail[i]: the mass above theta_i = i h, by Simpson's rule on pairs of intervals, from pi down.
  const double h = pi / kIntervals;
  std::vector<double> tail(kIntervals + 1, 0.0);
  for (int i = kIntervals; i >= 2; i -= 2) {
    const double t = (i - 2) * h;
    tail[static_cast<std::size_t>(i - 2)] =
        tail[static_cast<std::size_t>(i)] + h / 3 * (density(t) + 4 * density(t + h) + density(t + 2 * h));
  }
  const double target = static_cast<double>(k) / n;
  // The last even grid point whose tail still holds more than the target, then linear in between.
  int lo = 0;
  while (lo + 2 <= kIntervals && tail[static_cast<std::size_t>(lo + 2)] > target) lo += 2;
  const double t_lo = tail[static_cast<std::size_t>(lo)], t_hi = tail[static_cast<std::size_t>(lo + 2)];
  const double theta0 = (lo + 2 * (t_lo - target) / (t_lo - t_hi)) * h;
  return (b - a) * (b - a) / 4 / (2 * pi * c) * (pi / 2 - theta0 / 2 + std::sin(2 * theta0) / 4);
}

}  // namespace vindex
