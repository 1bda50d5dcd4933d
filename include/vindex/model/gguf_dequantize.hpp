// Where GGUF tensor blocks become float32 values: ggml's block types, decoded exactly as llama.cpp's
// dequantize_row_* (ggml/src/ggml-quants.c) decodes them, with the same float32 operations in the
// same order (Q4_0 is float(q - 8) * d, Q4_K is (d * sc) * q - (dmin * m), ...), fp16 scales
// widened exactly; the result is bit-for-bit ggml's (and gguf-py's gguf.quants.dequantize, which the
// unit test checks it against). Nothing is rejected here: a NaN or Inf scale decodes to what ggml
// gives (NaN, Inf); the consumer checks the values, as for safetensors weights.
//
// Decoded: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL,
// IQ4_XS, TQ1_0, TQ2_0, MXFP4 and Q1_0; bitnet.cpp's I2_S by dequantize_i2s_row, which takes the
// tensor's scale. Every other type (the IQ1/IQ2/IQ3 grids, NVFP4, Q2_0, the integer types) is an
// InputError naming the tensor and its type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vindex {

// Whether `type` (a ggml type id) is decoded here.
bool gguf_type_dequantizable(std::uint32_t type);

// Raises the InputError (exit 3) that names `file`, `tensor` and its type when the type is not
// decoded here; returns otherwise.
void require_gguf_dequantizable(std::uint32_t type, const std::string& file, const std::string& tensor);

// Decodes `n_elements` consecutive elements of ggml type `type` from `blocks` (n_elements / block
// size whole blocks, as stored) into `out`. `n_elements` must be a multiple of the type's block
// size (an InputError otherwise); an unsupported type is the InputError above. `file` and `tensor`
// only name the tensor in messages.
void dequantize_gguf_row(std::uint32_t type, const std::byte* blocks, std::size_t n_elements, float* out,
                         const std::string& file = {}, const std::string& tensor = {});

// bitnet.cpp's I2_S (ggml type 36 of its fork): `n_elements` values from their 2-bit codes (whole
// blocks of 128 in 32 bytes, as dequantize_row_i2_s reads them) times the tensor's `scale` (the
// float32 that follows the tensor's codes). An I2_S row given to dequantize_gguf_row is an
// InternalError: it has no scale.
void dequantize_i2s_row(const std::byte* codes, std::size_t n_elements, float scale, float* out);

}  // namespace vindex
