// REF quantize→dequantize simulations (spec §10.4–10.5), power-of-two scales and the Hadamard transform.
// The scale rule copies REF kernel.py fast_round_scale: r = amax · (1/qmax) in fp32, then the exponent of
// r rounded up unless r is an exact power of two. Tested in tests/unit/test_quant_ops.cpp.
#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/status.h"
#include "ops/cpu/quant.h"

namespace dsv4::cpu {

uint8_t pow2_scale_e8m0(float amax, float qmax) {
    const float r = amax * (1.0f / qmax);
    const uint32_t u = f32_bits(r);
    int e = int((u >> 23) & 0xffu);           // biased exponent = UE8M0 byte of 2^floor(log2 r)
    if ((u & 0x7fffffu) != 0 || e == 0) ++e;  // not a power of two (or subnormal): round up
    return uint8_t(std::clamp(e, 0, 254));
}

namespace {

float block_amax(const float* x, int64_t n) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    return amax;
}

}  // namespace

void fp8_roundtrip(float* x, int64_t n, int64_t block) {
    for (int64_t b0 = 0; b0 < n; b0 += block) {
        const int64_t len = std::min(block, n - b0);
        float* xb = x + b0;
        const float s = e8m0_to_f32(pow2_scale_e8m0(std::max(block_amax(xb, len), 1e-4f), 448.0f));
        const float inv = 1.0f / s;  // exact: s is a power of two
        for (int64_t i = 0; i < len; ++i) {
            const float v = std::clamp(xb[i] * inv, -448.0f, 448.0f);
            xb[i] = e4m3_to_f32(f32_to_e4m3(v)) * s;
        }
    }
}

void fp8_roundtrip_rows(float* x, int64_t rows, int64_t ld, int64_t n, int64_t block) {
    for (int64_t r = 0; r < rows; ++r) fp8_roundtrip(x + r * ld, n, block);
}

void fp4_roundtrip(float* x, int64_t n, int64_t block) {
    const float floor_amax = 6.0f * std::ldexp(1.0f, -126);
    for (int64_t b0 = 0; b0 < n; b0 += block) {
        const int64_t len = std::min(block, n - b0);
        float* xb = x + b0;
        const float s = e8m0_to_f32(pow2_scale_e8m0(std::max(block_amax(xb, len), floor_amax), 6.0f));
        const float inv = 1.0f / s;
        for (int64_t i = 0; i < len; ++i) {
            const float v = std::clamp(xb[i] * inv, -6.0f, 6.0f);
            xb[i] = e2m1_to_f32(f32_to_e2m1(v)) * s;
        }
    }
}

void hadamard_rows(float* x, int64_t rows, int64_t d) {
    DSV4_ASSERT(d > 0 && (d & (d - 1)) == 0, "Hadamard size {} is not a power of two", d);
    const float scale = 1.0f / std::sqrt(float(d));
    for (int64_t r = 0; r < rows; ++r) {
        float* v = x + r * d;
        // Sylvester butterflies: after all stages v = H_d v with H_d[i][j] = (−1)^popcount(i & j).
        for (int64_t h = 1; h < d; h *= 2)
            for (int64_t i = 0; i < d; i += 2 * h)
                for (int64_t j = i; j < i + h; ++j) {
                    const float a = v[j], b = v[j + h];
                    v[j] = a + b;
                    v[j + h] = a - b;
                }
        for (int64_t i = 0; i < d; ++i) v[i] *= scale;
    }
}

}  // namespace dsv4::cpu
