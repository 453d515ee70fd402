// Checkpoint conversion to and from the released V4 layout (spec §3.1, §10): `dsv4 quantize` turns a
// bf16/f32 checkpoint in either naming into FP8 e4m3 128x128 linears + FP4 e2m1 per-32 routed experts
// (UE8M0 scales, sharded with model.safetensors.index.json, config.json with quantization_config), and
// dequantize_checkpoint writes the exact f32 values of a quantized one back (tests compare the two).
// Tested in tests/model/test_quantized_model.cpp and tests/unit/test_quant_*.cpp.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace dsv4 {

// How the released checkpoint stores a tensor, decided by its released name (spec §10.6).
enum class TensorClass {
    fp8_linear,     // attention wq_a/wq_b/wkv/wo_a/wo_b, indexer wq_b, shared experts, mtp e_proj/h_proj
    routed_expert,  // ffn.experts.E.w1/w2/w3: FP4 (or FP8 after the official conversion)
    keep_f32,       // hc_* fn/base/scale, attn_sink, compressor ape, router bias
    index_i64,      // ffn.gate.tid2eid
    bf16,           // everything else: embed, head, norms, compressors, indexer weights_proj, router gate
};
TensorClass released_tensor_class(const std::string& released_name);

struct QuantizeOptions {
    std::string experts = "fp4";          // "fp4" (as released) or "fp8" (REF convert.py --expert-dtype fp8)
    int64_t shard_bytes = 4'000'000'000;  // upper bound per shard (one tensor larger than this gets its own)
    bool verbose = false;
};

struct QuantizeReport {
    int64_t n_tensors = 0;  // tensors written, scales included
    int64_t n_shards = 0;
    int64_t bytes = 0;               // tensor bytes written (index total_size)
    int64_t fp4_to_fp8_inexact = 0;  // elements the FP4 -> FP8 conversion could not keep exactly
};

// in_dir: any checkpoint the weight table loads (released or HF names; f32/bf16/f16; already FP8/FP4
// tensors are kept as they are). out_dir is created; existing files there are overwritten.
Result<QuantizeReport> quantize_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                           const QuantizeOptions& opts = {});

// Writes every FP8 / packed-FP4 weight of in_dir as its exact f32 values (no .scale tensors), every other
// tensor unchanged, one model.safetensors, and config.json without quantization_config.
Status dequantize_checkpoint(const std::string& in_dir, const std::string& out_dir);

}  // namespace dsv4
