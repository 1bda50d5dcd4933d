// What a checkpoint holds, without reading any weight: tensor names grouped into patterns
// ("model.layers.{L}.mlp.experts.{E}.down_proj.weight"), their dtypes and bytes, and the bytes of
// each kind of MoE matrix the layout found. Backs `vindex_mpi inspect`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "vindex/format/checkpoint.hpp"
#include "vindex/model/layout.hpp"

namespace vindex {

// The name with its numeric components replaced: the first by {L} (the layer), one that follows
// "experts" by {E}, any other by {N}. "model.layers.3.mlp.experts.17.down_proj.weight" ->
// "model.layers.{L}.mlp.experts.{E}.down_proj.weight".
std::string tensor_name_pattern(std::string_view name);

struct TensorPattern {
  std::string pattern;
  std::size_t count = 0;
  std::uint64_t bytes = 0;
  std::map<std::string, std::size_t> dtypes;  // dtype name -> tensors
  std::vector<std::uint64_t> first_shape;     // shape of the first tensor (index order)
  bool uniform_shape = true;                  // every tensor has first_shape
};

// Every tensor of the checkpoint, grouped by pattern, patterns in natural order.
std::vector<TensorPattern> summarize_tensor_names(const Checkpoint& checkpoint);

// Stored bytes (weights and their block scales) of each kind of matrix the layout found.
struct MatrixBytes {
  std::string group;  // "routed down_proj", "shared gate_proj", "dense up_proj", "router", ...
  std::size_t matrices = 0;
  std::uint64_t bytes = 0;
};
std::vector<MatrixBytes> matrix_bytes(const ModelLayout& layout);

}  // namespace vindex
