// WeightRef: one linear weight as the checkpoint stores it, seen by every backend's linear op.
// Logical shape is [n_rows (out), n_cols (in)], y = W x. Formats (spec §10):
//   f32 / bf16 / f16          plain row-major
//   f8_e4m3 + e8m0 scale      scale [ceil(n_rows/128), ceil(n_cols/128)] (block_rows = block_cols = 128)
//   fp4_e2m1 (packed) + e8m0  data [n_rows, n_cols/2], scale [n_rows, n_cols/32] (block_rows 1, block_cols
//   32)
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsv4 {

struct WeightRef {
    DType dtype = DType::f32;
    const void* data = nullptr;
    int64_t n_rows = 0;
    int64_t n_cols = 0;
    const uint8_t* scale = nullptr;  // e8m0 block scales, or nullptr
    int64_t scale_cols = 0;          // scale row stride (elements)
    int block_rows = 0;              // rows per scale block
    int block_cols = 0;              // cols per scale block
    // Row 0 of this view sits at row scale_row0 of the scale block that `scale` points at. Non-zero only
    // for a row view that starts inside a block (grouped wo_a with o_lora_rank 64 in 128-row FP8 blocks).
    int64_t scale_row0 = 0;

    bool valid() const { return data != nullptr; }
    int64_t numel() const { return n_rows * n_cols; }
    // Row r of the weight (n_cols values) dequantized to f32.
    void row_to_f32(int64_t r, float* out) const;
    // Scale row (block of rows) of row r of this view.
    const uint8_t* scale_row(int64_t r) const { return scale + ((scale_row0 + r) / block_rows) * scale_cols; }
    // A view of rows [r0, r0 + n); for scaled formats it may start inside a scale block.
    WeightRef rows(int64_t r0, int64_t n) const;
};

}  // namespace dsv4
