// Layout detection on the demo checkpoint (DeepSeek-V3 naming as the hub serves it) and the errors
// for checkpoints that contradict their config.
#include <fstream>
#include <map>

#include "catch_compat.hpp"
#include "test_support.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/model/family.hpp"
#include "vindex/model/layout.hpp"
#include "vindex/model/layout_json.hpp"
#include "vindex/model/dequantize.hpp"
#include "vindex/model/gguf_dequantize.hpp"

using namespace vindex;
using vindex_test::contains;
namespace fs = std::filesystem;

TEST_CASE("the demo checkpoint's MoE layout is found", "[layout]") {
  const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("kimi_k2_tiny"));
  const ModelLayout layout = detect_layout(ckpt);
  REQUIRE(layout.family == Family::deepseek_v3);
  REQUIRE(layout.num_layers == 4);
  REQUIRE(layout.dense_layers() == std::vector<int>{0});
  REQUIRE(layout.moe_layers() == std::vector<int>{1, 2, 3});
  REQUIRE(layout.quantization);
  REQUIRE(layout.quantization->block_rows == 128);

  const LayerLayout& dense = layout.layers[0];
  REQUIRE(dense.dense[Projection::down].rows == 200);
  REQUIRE(dense.dense[Projection::down].cols == 300);
  REQUIRE(dense.dense[Projection::down].scale != nullptr);
  REQUIRE(dense.dense[Projection::gate].present());

  const LayerLayout& moe = layout.layers[2];
  REQUIRE(moe.routed.size() == 8);
  for (const ProjectionSet& expert : moe.routed)
    for (Projection p : kProjections) REQUIRE(expert[p].present());
  REQUIRE(moe.routed[5][Projection::down].weight->info->name == "model.layers.2.mlp.experts.5.down_proj.weight");
  REQUIRE(moe.shared);
  REQUIRE((*moe.shared)[Projection::down].cols == 136);
  REQUIRE(moe.router.present());
  REQUIRE(moe.router.weight->info->shape == std::vector<std::uint64_t>{8, 200});
  REQUIRE(moe.router_bias != nullptr);
  // Attention, norms and embeddings are counted and skipped.
  REQUIRE(layout.ignored_tensors > 0);

  const auto json = moe_config_json(layout, "demo");
  REQUIRE(json["moe_layers"] == nlohmann::ordered_json({1, 2, 3}));
  REQUIRE(json["layers"][1]["expert"]["down_proj"]["shape"] == nlohmann::ordered_json({200, 136}));
  REQUIRE(json["quantization"]["weight_block_size"] == nlohmann::ordered_json({128, 128}));
}

TEST_CASE("an unquantized single-file checkpoint is found with mixed dtypes", "[layout]") {
  const ModelLayout layout = detect_layout(Checkpoint::open(vindex_test::fixture("steep_mixed")));
  REQUIRE_FALSE(layout.quantization);
  REQUIRE(layout.moe_layers() == std::vector<int>{1, 2});
  REQUIRE(layout.layers[2].routed[0][Projection::down].weight->info->dtype == DType::F16);
  REQUIRE(layout.layers[1].shared);
  REQUIRE((*layout.layers[1].shared)[Projection::down].weight->info->dtype == DType::BF16);
}

TEST_CASE("quantization_config: the fp8 layouts read, and the rest refused naming the key", "[layout][quantization]") {
  // Post-quantized fp8 checkpoints (tests/fixtures/postquant): how each one's scale is laid out.
  const auto quant = [](const char* fixture) {
    return *detect_layout(Checkpoint::open(vindex_test::fixture(std::string("postquant/") + fixture))).quantization;
  };
  CHECK(quant("ct_fp8_tensor").scaling == Fp8Scaling::tensor);
  CHECK(quant("ct_fp8_channel").scaling == Fp8Scaling::channel);
  CHECK(quant("ct_fp8_block").scaling == Fp8Scaling::block);
  CHECK(quant("ct_fp8_block").block_rows == 128);
  CHECK(quant("ct_fp8_tensor").scale_suffix == "_scale");
  CHECK(quant("ct_fp8_tensor").product_in_scale_dtype);
  CHECK(quant("fp8_static").scaling == Fp8Scaling::tensor);
  CHECK_FALSE(quant("fp8_static").product_in_scale_dtype);
  CHECK(quant("fbgemm_fp8").scaling == Fp8Scaling::channel);
  CHECK(quant("fbgemm_fp8").scale_suffix == "_scale");
  CHECK(quant("bitnet_packed").method == "bitnet");
  CHECK(quant("gptq_act_order").desc_act);
  CHECK(quant("gptq_act_order").zeros_minus_one);  // checkpoint_format gptq (v1)
  CHECK(quant("gptq_asym").group_size == 64);
  CHECK_FALSE(quant("gptq_asym").sym);
  CHECK_FALSE(quant("gptq_v2").zeros_minus_one);
  CHECK(quant("gptq_v2").group_size == -1);
  CHECK(quant("awq_gemm").format == "gemm");
  for (const char* fixture : {"gptq_act_order", "awq_gemm"}) {
    const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture(std::string("postquant/") + fixture));
    const ModelLayout layout = detect_layout(ckpt);
    const WeightRef& down = layout.layers[1].dense[Projection::down];
    const bool gptq = fixture == std::string("gptq_act_order");
    CHECK(down.encoding == (gptq ? WeightEncoding::gptq : WeightEncoding::awq));
    CHECK((down.rows == 128 && down.cols == 192));  // [out, in]; qweight [24, 128] (GPTQ) or [192, 16] (AWQ)
    CHECK(down.weight->info->name == "model.layers.1.mlp.down_proj.qweight");
    CHECK(down.zeros->info->name == "model.layers.1.mlp.down_proj.qzeros");
    CHECK(down.scale->info->name == "model.layers.1.mlp.down_proj.scales");
    CHECK((down.g_idx != nullptr) == gptq);
    CHECK(layout.ignored_tensors == 2 * (4 + 2) + 3);  // attention qweights and norms of 2 layers; embeddings, norm, lm_head
  }
  {
    const Checkpoint bitnet = Checkpoint::open(vindex_test::fixture("postquant/bitnet_packed"));
    const ModelLayout layout = detect_layout(bitnet);
    const WeightRef& down = layout.layers[1].dense[Projection::down];
    CHECK(down.encoding == WeightEncoding::bitnet_packed);
    CHECK((down.rows == 192 && down.cols == 320));  // stored as [48, 320] of U8
    CHECK(down.scale->info->name == "model.layers.1.mlp.down_proj.weight_scale");
    CHECK(layout.hidden_act == "relu2");  // phase 3 leaves BitNet out of C1 and C3 (not SiLU)
  }

  vindex_test::TempDir tmp;
  const fs::path dir = tmp.path() / "model";
  fs::copy(vindex_test::fixture("postquant/ct_fp8_tensor"), dir, fs::copy_options::recursive);
  auto config = vindex_test::read_json(dir / "config.json");
  auto& q = config["quantization_config"];
  const auto refused = [&](const std::string& key, const std::string& what) {
    std::ofstream(dir / "config.json") << config.dump(2);
    REQUIRE_THROWS_AS(detect_layout(Checkpoint::open(dir)), InputError);
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("config.json") && contains("quantization_config." + key) && contains(what) &&
                            contains("the quantizations read are") && contains("fbgemm_fp8"));
  };
  SECTION("an unknown method") {
    q = {{"quant_method", "hqq"}, {"nbits", 4}};
    refused("quant_method", "is 'hqq'");
  }
  SECTION("GPTQ with 3 bits, without group_size, or in another checkpoint format") {
    q = {{"quant_method", "gptq"}, {"bits", 3}, {"group_size", 128}};
    refused("bits", "is 3");
    q = {{"quant_method", "gptq"}, {"bits", 4}};
    refused("group_size", "is missing");
    q = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 0}};
    refused("group_size", "is 0");
    q = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"checkpoint_format", "marlin"}};
    refused("checkpoint_format", "is marlin");
    q = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"desc_act", "yes"}};
    refused("desc_act", "true or false");
  }
  SECTION("AWQ in GEMV packing, without zero points, or with one group") {
    q = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"version", "gemv"}};
    refused("version", "is gemv");
    q = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"zero_point", false}};
    refused("zero_point", "is false");
    q = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", -1}};
    refused("group_size", "is -1");
  }
  SECTION("no method") {
    q.erase("quant_method");
    refused("quant_method", "is missing");
  }
  SECTION("4-bit integer weights of compressed-tensors") {
    q["format"] = "pack-quantized";
    refused("format", "is pack-quantized");
  }
  SECTION("integer weights in a float-quantized config") {
    q["config_groups"]["group_0"]["weights"]["type"] = "int";
    refused("config_groups.group_0.weights", "are type int");
  }
  SECTION("group strategy") {
    q["config_groups"]["group_0"]["weights"]["strategy"] = "group";
    refused("config_groups.group_0.weights.strategy", "is group");
  }
  SECTION("two groups of two strategies") {
    q["config_groups"]["group_1"] = q["config_groups"]["group_0"];
    q["config_groups"]["group_1"]["weights"]["strategy"] = "channel";
    refused("config_groups", "mix the weight strategies channel, tensor");
  }
  SECTION("BitNet weights quantized online") {
    q = {{"quant_method", "bitnet"}, {"linear_class", "autobitlinear"}, {"quantization_mode", "online"}};
    refused("linear_class", "is autobitlinear");
  }
  SECTION("fp8 in another format") {
    q = {{"quant_method", "fp8"}, {"fmt", "e5m2"}, {"weight_block_size", {128, 128}}};
    refused("fmt", "is e5m2");
  }
  SECTION("scales that do not fit the declared scaling") {
    q = {{"quant_method", "fbgemm_fp8"}};  // per-row scales expected; the file has one per tensor
    std::ofstream(dir / "config.json") << config.dump(2);
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("weight_scale") && contains("does not fit") && contains("channel scaling"));
  }
}

TEST_CASE("checkpoints that contradict config.json are refused with the tensor named", "[layout][hostile]") {
  vindex_test::TempDir tmp;
  const fs::path dir = tmp.path() / "model";
  fs::copy(vindex_test::fixture("kimi_k2_tiny"), dir, fs::copy_options::recursive);
  auto config = vindex_test::read_json(dir / "config.json");
  const auto rewrite = [&] { std::ofstream(dir / "config.json") << config.dump(2); };

  SECTION("shape that disagrees with config.json") {
    config["moe_intermediate_size"] = 128;
    rewrite();
    REQUIRE_THROWS_AS(detect_layout(Checkpoint::open(dir)), InputError);
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("model-0000") && contains("mlp.experts.") && contains("disagrees with config.json"));
  }
  SECTION("more experts in config than in the files") {
    config["n_routed_experts"] = 9;
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("model.layers.1.mlp.experts.8.down_proj.weight") && contains("is missing"));
  }
  SECTION("experts in a layer config makes dense") {
    config["first_k_dense_replace"] = 2;
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("config.json makes it a dense MLP"));
  }
  SECTION("a block size that does not match the scales") {
    config["quantization_config"]["weight_block_size"] = {64, 64};
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("_scale_inv") && contains("scale shape [3, 2] does not fit") &&
                                                           contains("for 64x64 blocks"));
  }
  SECTION("missing weight_scale_inv") {
    auto index = vindex_test::read_json(dir / "model.safetensors.index.json");
    index["weight_map"].erase("model.layers.3.mlp.experts.2.down_proj.weight_scale_inv");
    std::ofstream(dir / "model.safetensors.index.json") << index.dump();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("model.layers.3.mlp.experts.2.down_proj.weight") && contains("no scale tensor") &&
                            contains("weight_scale_inv"));
  }
  SECTION("unknown architecture lists the known families") {
    config["model_type"] = "mamba";
    config["architectures"] = {"MambaForCausalLM"};
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("unknown architecture") && contains("mamba") && contains("kimi_k2"));
  }
  SECTION("router shape that disagrees with config.json") {
    // Swap the names of layer 2's router weight and bias in their shard's header: a [8] vector
    // then stands where the [8, 200] router belongs.
    const auto index = vindex_test::read_json(dir / "model.safetensors.index.json");
    const std::string shard = index["weight_map"]["model.layers.2.mlp.gate.weight"];
    REQUIRE(index["weight_map"]["model.layers.2.mlp.gate.e_score_correction_bias"] == shard);
    vindex_test::rewrite_header(dir / shard, [](std::string text) {
      const auto swap = [&](const std::string& a, const std::string& b) {
        text.replace(text.find(a), a.size(), b);
      };
      swap("\"model.layers.2.mlp.gate.weight\"", "\"placeholder\"");
      swap("\"model.layers.2.mlp.gate.e_score_correction_bias\"", "\"model.layers.2.mlp.gate.weight\"");
      swap("\"placeholder\"", "\"model.layers.2.mlp.gate.e_score_correction_bias\"");
      return text;
    });
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("tensor 'model.layers.2.mlp.gate.weight'") && contains("router shape [8]"));
  }
  SECTION("zero and absurd sizes are refused, not truncated") {
    config["hidden_size"] = 0;
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("'hidden_size' is 0, expected an integer from 1"));
    config["hidden_size"] = 200;
    config["n_routed_experts"] = 4294967304LL;  // 2^32 + 8
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("'n_routed_experts' is 4294967304"));
    config["n_routed_experts"] = 8;
    config["num_hidden_layers"] = nlohmann::json::array({4});
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("'num_hidden_layers' is a JSON array"));
  }
  SECTION("config.json nested too deeply") {
    std::ofstream(dir / "config.json") << std::string(1000, '[') << std::string(1000, ']');
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("config.json") && contains("nested deeper than 64"));
  }
  SECTION("missing required config key") {
    config.erase("hidden_size");
    rewrite();
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("config.json") && contains("hidden_size"));
  }
}

// The family table: adding a family is one row plus its fixture, so every row must have a fixture
// saved by transformers' own class (tests/fixtures/hf) that detects as that family.
TEST_CASE("every family in the table has a transformers-saved fixture detected as it", "[layout][family]") {
  std::map<Family, std::vector<std::string>> detected;
  for (const auto& entry : fs::directory_iterator(vindex_test::fixture("hf"))) {
    if (!entry.is_directory()) continue;
    const Checkpoint ckpt = Checkpoint::open(entry.path());
    detected[detect_layout(ckpt).family].push_back(entry.path().filename().string());
  }
  for (const FamilyTraits& row : family_table()) {
    INFO("family " << row.label);
    REQUIRE(detected.count(row.family) == 1);
    REQUIRE(traits(row.family).family == row.family);
  }
  REQUIRE(detected.size() == family_table().size());
  // Lookups by model_type (text_config's first) and by architecture; unknown names find nothing.
  REQUIRE(find_family({"kimi_k2"}, {})->family == Family::deepseek_v3);
  REQUIRE(find_family({"", "llama4"}, {})->family == Family::llama4);
  REQUIRE(find_family({"unknown"}, {"MixtralForCausalLM"})->family == Family::mixtral);
  REQUIRE(find_family({"unknown"}, {"UnknownForCausalLM"}) == nullptr);
  REQUIRE(family_name(Family::dense_encoder) == "dense");
  REQUIRE_THAT(known_families(), contains("Qwen3-MoE (model_type qwen3_moe)"));
}

// GGUF checkpoints (tests/fixtures/gguf_models, tools/fixtures/make_gguf_model_fixtures.py):
// general.architecture picks the row, the <arch>.* keys its config, llama.cpp's names the tensors.
TEST_CASE("a GGUF checkpoint's layout: metadata as config, blk.N.ffn_* tensors, fused experts as strided slices",
          "[layout][gguf]") {
  REQUIRE(find_gguf_family("qwen3moe")->family == Family::qwen3_moe);
  REQUIRE(find_gguf_family("deepseek2")->family == Family::deepseek_v3);
  REQUIRE(find_gguf_family("llama")->family == Family::dense_decoder);
  REQUIRE(find_gguf_family("llama", true)->family == Family::mixtral);  // llama.cpp's Mixtral: "llama" with experts
  REQUIRE(find_gguf_family("qwen3", true)->family == Family::dense_decoder);  // no MoE row lists it: the dense one
  REQUIRE(find_gguf_family("Qwen3MoeForCausalLM") == nullptr);

  SECTION("llama, dense, opened as the .gguf file") {
    const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("gguf_models/llama_dense/model.gguf"));
    REQUIRE(ckpt.is_gguf());
    const ModelLayout layout = detect_layout(ckpt);
    REQUIRE(layout.family == Family::dense_decoder);
    REQUIRE(layout.num_layers == 2);
    REQUIRE(layout.hidden_size == 256);
    REQUIRE(layout.intermediate_size == 96);
    const WeightRef& gate = layout.layers[0].dense[Projection::gate];  // Q4_K, GGUF dims [256, 96]
    REQUIRE(gate.weight->info->name == "blk.0.ffn_gate.weight");
    REQUIRE(gate.weight->info->shape == std::vector<std::uint64_t>{96, 256});
    REQUIRE((gate.rows == 96 && gate.cols == 256));
    REQUIRE(gate.encoding == WeightEncoding::gguf_blocks);
    REQUIRE(gate.stored_bytes() == 96 * 256 / 256 * 144);
    const WeightRef& down = layout.layers[0].dense[Projection::down];  // F16: read as a plain F16 matrix
    REQUIRE((down.rows == 256 && down.cols == 96));
    REQUIRE(down.encoding == WeightEncoding::plain);
    REQUIRE(layout.ignored_tensors == 3);  // token_embd and the two attn_norm
  }
  SECTION("qwen3moe, opened as the directory that holds it") {
    const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("gguf_models/qwen3_moe"));
    const ModelLayout layout = detect_layout(ckpt);
    REQUIRE(layout.family == Family::qwen3_moe);
    REQUIRE(layout.moe_layers() == std::vector<int>{0, 1});
    REQUIRE(layout.n_routed_experts == 4);
    REQUIRE(layout.experts_per_token == 2);
    REQUIRE(layout.moe_intermediate_size == 64);
    const LayerLayout& l0 = layout.layers[0];
    REQUIRE(l0.routed.size() == 4);
    for (std::uint64_t e = 0; e < 4; ++e) {
      const WeightRef& gate = l0.routed[e][Projection::gate];  // [4, 64, 256] Q4_K: rows e*64.. of 256
      REQUIRE(gate.weight->info->name == "blk.0.ffn_gate_exps.weight");
      REQUIRE((gate.rows == 64 && gate.cols == 256 && gate.encoding == WeightEncoding::gguf_blocks));
      REQUIRE((gate.slice.offset == e * 64 * 256 && gate.slice.row_stride == 256 && !gate.slice.transposed));
      const WeightRef& down = l0.routed[e][Projection::down];  // [4, 256, 64] F16
      REQUIRE((down.rows == 256 && down.cols == 64 && down.slice.offset == e * 256 * 64));
    }
    REQUIRE(l0.router.weight->info->name == "blk.0.ffn_gate_inp.weight");
    REQUIRE((l0.router.rows == 4 && l0.router.cols == 256));

    // One expert of the fused Q4_K tensor reads its own blocks only, and decodes to ggml's values.
    const EncodedMatrix m = [&] {
      EncodedMatrix e;
      e.weight = ckpt.view(*l0.routed[2][Projection::gate].weight);
      e.encoding = WeightEncoding::gguf_blocks;
      e.rows = 64;
      e.cols = 256;
      e.slice = l0.routed[2][Projection::gate].slice;
      return e;
    }();
    REQUIRE(m.weight_span() == std::pair<std::uint64_t, std::uint64_t>{2 * 64 * 144, 3 * 64 * 144});
    REQUIRE_FALSE(m.is_whole_tensor());
    const MatrixDecoder decoder(m);
    std::vector<float> row(256), want(256);
    decoder.decode(5, 6, 0, 256, row.data(), 256);
    const std::vector<std::byte> all = m.weight.read_all();
    dequantize_gguf_row(12, all.data() + (2 * 64 + 5) * 144, 256, want.data());  // 12: Q4_K
    REQUIRE(row == want);
  }
  SECTION("deepseek2: a leading dense layer, shared experts, exp_probs_b") {
    const Checkpoint ckpt = Checkpoint::open(vindex_test::fixture("gguf_models/deepseek_v3"));  // outlives the layout
    const ModelLayout layout = detect_layout(ckpt);
    REQUIRE(layout.family == Family::deepseek_v3);
    REQUIRE(layout.dense_layers() == std::vector<int>{0});
    REQUIRE(layout.moe_layers() == std::vector<int>{1, 2});
    REQUIRE(layout.n_shared_experts == 1);
    REQUIRE(layout.layers[1].shared);
    REQUIRE((*layout.layers[1].shared)[Projection::down].weight->info->name == "blk.1.ffn_down_shexp.weight");
    REQUIRE(layout.layers[1].router_bias->info->name == "blk.1.exp_probs_b.bias");
    REQUIRE(layout.routing["scoring_func"] == "sigmoid");
    REQUIRE(layout.routing["norm_topk_prob"] == true);
  }
}

TEST_CASE("a GGUF weight with a bitnet .scale companion is refused, naming it", "[layout][gguf]") {
  // llama.cpp's bitnet graph multiplies blk.N.ffn_down.scale in; measuring without it would be wrong.
  const Checkpoint ok = Checkpoint::open(vindex_test::fixture("gguf_models/bitnet"));
  REQUIRE(detect_layout(ok).family == Family::dense_decoder);
  const Checkpoint scaled = Checkpoint::open(vindex_test::fixture("gguf_models/bitnet_with_scale"));
  REQUIRE_THROWS_WITH(detect_layout(scaled), contains("blk.0.ffn_down.scale") && contains("per-tensor scale of blk.0.ffn_down.weight"));
}

TEST_CASE("GGUF checkpoints that contradict their metadata are clear errors", "[layout][gguf][hostile]") {
  const vindex_test::TempDir tmp;
  const fs::path dir = tmp.path();
  const fs::path source = vindex_test::fixture("gguf_models/llama_dense/model.gguf");
  std::string bytes;
  {
    std::ifstream in(source, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto write = [&](const std::string& content) {
    std::ofstream(dir / "model.gguf", std::ios::binary | std::ios::trunc) << content;
  };
  const auto replace = [&](std::string s, const std::string& from, const std::string& to) {
    REQUIRE(from.size() == to.size());
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  SECTION("an unknown architecture names general.architecture and the known ones") {
    write(replace(replace(bytes, std::string("\x05\0\0\0\0\0\0\0llama", 13), std::string("\x05\0\0\0\0\0\0\0llamb", 13)),
                  "llama.", "llamb."));
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)),
                        contains("general.architecture") && contains("'llamb'") && contains("qwen3moe"));
  }
  SECTION("a missing key is named by its GGUF key") {
    write(replace(bytes, "llama.embedding_length", "llama.embedding_lengtx"));
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("'llama.embedding_length'"));
  }
  SECTION("a missing down projection is named as llama.cpp names it") {
    write(replace(bytes, "blk.1.ffn_down.weight", "blk.1.ffn_dawn.weight"));
    REQUIRE_THROWS_WITH(detect_layout(Checkpoint::open(dir)), contains("blk.1.ffn_down.weight") && contains("missing"));
  }
  SECTION("two .gguf files in a directory: the one to read must be named") {
    write(bytes);
    std::ofstream(dir / "other.gguf", std::ios::binary) << bytes;
    REQUIRE_THROWS_WITH(Checkpoint::open(dir), contains("2 .gguf files"));
  }
}

TEST_CASE("a GGUF model in splits opens as one from any split or its directory; a split alone does not",
          "[layout][gguf][checkpoint]") {
  const fs::path split = vindex_test::fixture("gguf_models/llama_dense_split");
  for (const fs::path& where : {split, split / "model-00003-of-00003.gguf"}) {
    const Checkpoint ckpt = Checkpoint::open(where);
    REQUIRE(ckpt.shards().size() == 3);
    REQUIRE(ckpt.shards()[0].file_name == "model-00001-of-00003.gguf");
    REQUIRE(ckpt.config_path().filename() == "model-00001-of-00003.gguf");
    const ModelLayout layout = detect_layout(ckpt);
    REQUIRE(layout.num_layers == 2);
    for (const LayerLayout& l : layout.layers)
      for (Projection p : kProjections) REQUIRE(l.dense[p].present());
  }
  const vindex_test::TempDir tmp;
  fs::copy_file(split / "model-00001-of-00003.gguf", tmp.path() / "model-00001-of-00003.gguf");
  fs::copy_file(split / "model-00002-of-00003.gguf", tmp.path() / "model-00002-of-00003.gguf");
  REQUIRE_THROWS_WITH(Checkpoint::open(tmp.path() / "model-00001-of-00003.gguf"),
                      contains("model-00003-of-00003.gguf") && contains("missing"));
  REQUIRE_THROWS_WITH(Checkpoint::open(tmp.path()), contains("split"));
  fs::copy_file(split / "model-00002-of-00003.gguf", tmp.path() / "alone.gguf");
  fs::remove(tmp.path() / "model-00001-of-00003.gguf");
  fs::remove(tmp.path() / "model-00002-of-00003.gguf");
  REQUIRE_THROWS_WITH(Checkpoint::open(tmp.path() / "alone.gguf"), contains("is split 2 of 3"));
}
