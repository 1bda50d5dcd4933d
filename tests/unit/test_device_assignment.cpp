// Backend choice and the rank-to-GPU mapping (backend-free decisions; the CUDA runtime only
// supplies the device count).
#include "catch_compat.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/run/device_assignment.hpp"

using namespace vindex;
using vindex_test::contains;

TEST_CASE("the backend request resolves against the build and the visible devices", "[backend]") {
  REQUIRE(resolve_backend(BackendChoice::cpu, true, 8, "") == BackendKind::cpu);
  REQUIRE(resolve_backend(BackendChoice::automatic, true, 8, "") == BackendKind::cuda);
  REQUIRE(resolve_backend(BackendChoice::automatic, true, 0, "") == BackendKind::cpu);
  REQUIRE(resolve_backend(BackendChoice::automatic, true, -1, "no driver") == BackendKind::cpu);
  REQUIRE(resolve_backend(BackendChoice::automatic, false, 8, "") == BackendKind::cpu);
  REQUIRE(resolve_backend(BackendChoice::cuda, true, 2, "") == BackendKind::cuda);
  REQUIRE_THROWS_WITH(resolve_backend(BackendChoice::cuda, true, -1, "cudaGetDeviceCount: no driver"),
                      contains("no CUDA device is visible") && contains("no driver"));
  REQUIRE_THROWS_WITH(resolve_backend(BackendChoice::cuda, true, 0, ""), contains("0 devices"));
  REQUIRE_THROWS_WITH(resolve_backend(BackendChoice::cuda, false, 8, ""), contains("no CUDA backend"));
  REQUIRE_THROWS_AS(parse_backend_choice("tpu"), UsageError);
  REQUIRE(parse_backend_choice("auto") == BackendChoice::automatic);
}

TEST_CASE("one rank per GPU, or round-robin when sharing is asked for", "[backend]") {
  for (int r = 0; r < 8; ++r) REQUIRE(assign_device(r, 8, 8, false) == r);
  REQUIRE(assign_device(1, 2, 8, false) == 1);
  REQUIRE_THROWS_WITH(assign_device(0, 9, 8, false), contains("9 ranks") && contains("--share-gpus"));
  REQUIRE(assign_device(8, 9, 8, true) == 0);
  REQUIRE(assign_device(5, 16, 4, true) == 1);
}
