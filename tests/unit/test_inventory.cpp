// Tensor-name patterns of `inspect`, on the naming schemes of the hub's checkpoints. (Counts and
// bytes are checked against an independent header reader in tests/integration/check_inspect.py.)
#include "catch_compat.hpp"
#include "vindex/model/inventory.hpp"

using namespace vindex;

TEST_CASE("tensor name patterns replace layer and expert indices", "[inventory]") {
  CHECK(tensor_name_pattern("model.layers.3.mlp.experts.17.down_proj.weight") ==
        "model.layers.{L}.mlp.experts.{E}.down_proj.weight");
  CHECK(tensor_name_pattern("model.layers.60.mlp.gate.e_score_correction_bias") ==
        "model.layers.{L}.mlp.gate.e_score_correction_bias");
  CHECK(tensor_name_pattern("model.layers.0.block_sparse_moe.experts.7.w2.weight") ==
        "model.layers.{L}.block_sparse_moe.experts.{E}.w2.weight");
  CHECK(tensor_name_pattern("bert.encoder.layer.11.output.dense.weight") == "bert.encoder.layer.{L}.output.dense.weight");
  CHECK(tensor_name_pattern("model.layers.2.mlp.experts.gate_up_proj_blocks") ==
        "model.layers.{L}.mlp.experts.gate_up_proj_blocks");
  CHECK(tensor_name_pattern("blocks.4.ffn.9.weight") == "blocks.{L}.ffn.{N}.weight");
}

TEST_CASE("tensor name patterns keep names without numeric components", "[inventory]") {
  CHECK(tensor_name_pattern("lm_head.weight") == "lm_head.weight");
  CHECK(tensor_name_pattern("model.embed_tokens.weight") == "model.embed_tokens.weight");
  CHECK(tensor_name_pattern("h2.w3") == "h2.w3");  // digits inside a component are part of the name
  CHECK(tensor_name_pattern("") == "");
  CHECK(tensor_name_pattern("a..0") == "a..{L}");
}
