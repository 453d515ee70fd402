// WeightRef row dequantization (spec §10.2, §10.3) and row views.
#include "ops/weight.h"

#include "core/status.h"

namespace dsv4 {

void WeightRef::row_to_f32(int64_t r, float* out) const {
    switch (dtype) {
        case DType::f32:
        case DType::bf16:
        case DType::f16: {
            const auto* base = static_cast<const uint8_t*>(data) + dtype_bytes(dtype, r * n_cols);
            convert_to_f32(dtype, base, out, n_cols);
            return;
        }
        case DType::f8_e4m3: {
            const auto* q = static_cast<const uint8_t*>(data) + r * n_cols;
            const uint8_t* srow = scale_row(r);
            for (int64_t c0 = 0; c0 < n_cols; c0 += block_cols) {
                float s = e8m0_to_f32(srow[c0 / block_cols]);
                int64_t c1 = c0 + block_cols < n_cols ? c0 + block_cols : n_cols;
                for (int64_t c = c0; c < c1; ++c) out[c] = e4m3_to_f32(q[c]) * s;
            }
            return;
        }
        case DType::fp4_e2m1: {
            const auto* p = static_cast<const uint8_t*>(data) + r * (n_cols / 2);
            const uint8_t* srow = scale_row(r);
            for (int64_t c0 = 0; c0 < n_cols; c0 += block_cols) {
                float s = e8m0_to_f32(srow[c0 / block_cols]);
                for (int64_t c = c0; c < c0 + block_cols && c < n_cols; ++c) out[c] = fp4_get(p, c) * s;
            }
            return;
        }
        default:
            DSV4_ASSERT(false, "row_to_f32: unsupported weight dtype {}", dtype_name(dtype));
    }
}

WeightRef WeightRef::rows(int64_t r0, int64_t n) const {
    DSV4_ASSERT(r0 >= 0 && r0 + n <= n_rows, "row view [{}, {}) out of [0, {})", r0, r0 + n, n_rows);
    WeightRef v = *this;
    v.n_rows = n;
    v.data = static_cast<const uint8_t*>(data) + dtype_bytes(dtype, r0 * n_cols);
    if (scale) {
        v.scale = scale_row(r0);
        v.scale_row0 = (scale_row0 + r0) % block_rows;
    }
    return v;
}

}  // namespace dsv4
