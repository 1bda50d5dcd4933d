// One include for the tests, whether Catch2 v3 (split headers) or v2 (single header) is installed.
#pragma once

#ifdef VINDEX_CATCH2_V3
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
namespace vindex_test {
inline auto contains(const std::string& text) { return Catch::Matchers::ContainsSubstring(text); }
}  // namespace vindex_test
#else
#include <catch2/catch.hpp>
namespace vindex_test {
inline auto contains(const std::string& text) { return Catch::Matchers::Contains(text); }
}  // namespace vindex_test
#endif

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
