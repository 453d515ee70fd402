// Row dequantization of FP8 (128x128 UE8M0) and packed FP4 (per-32 UE8M0) weights through lookup tables:
// one load and one multiply per element instead of the bit decoding of e4m3_to_f32 (spec §10.2–10.3).
// Values are bit-identical to WeightRef::row_to_f32 (same product of the same two floats).
#include <array>

#include "core/dtype.h"
#include "ops/cpu/quant.h"

namespace dsv4::cpu {

namespace {

const std::array<float, 256>& e4m3_table() {
    static const std::array<float, 256> t = [] {
        std::array<float, 256> a{};
        for (int i = 0; i < 256; ++i) a[size_t(i)] = e4m3_to_f32(uint8_t(i));
        return a;
    }();
    return t;
}

}  // namespace

void dequant_row(const WeightRef& w, int64_t r, float* out) {
    const int64_t K = w.n_cols;
    if (w.dtype == DType::f8_e4m3) {
        const float* lut = e4m3_table().data();
        const auto* q = static_cast<const uint8_t*>(w.data) + r * K;
        const uint8_t* srow = w.scale_row(r);
        for (int64_t c0 = 0; c0 < K; c0 += w.block_cols) {
            const float s = e8m0_to_f32(srow[c0 / w.block_cols]);
            const int64_t c1 = c0 + w.block_cols < K ? c0 + w.block_cols : K;
            for (int64_t c = c0; c < c1; ++c) out[c] = lut[q[c]] * s;
        }
        return;
    }
    if (w.dtype == DType::fp4_e2m1 && w.block_cols % 2 == 0) {
        const auto* p = static_cast<const uint8_t*>(w.data) + r * (K / 2);
        const uint8_t* srow = w.scale_row(r);
        for (int64_t c0 = 0; c0 < K; c0 += w.block_cols) {
            const float s = e8m0_to_f32(srow[c0 / w.block_cols]);
            const int64_t c1 = c0 + w.block_cols < K ? c0 + w.block_cols : K;
            for (int64_t c = c0; c < c1; c += 2) {  // low nibble = even element (spec §10.3)
                const uint8_t b = p[c / 2];
                out[c] = kE2m1Values[b & 15] * s;
                if (c + 1 < c1) out[c + 1] = kE2m1Values[b >> 4] * s;
            }
        }
        return;
    }
    w.row_to_f32(r, out);
}

}  // namespace dsv4::cpu
