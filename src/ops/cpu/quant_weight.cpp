// Weight quantizers producing the released checkpoint formats (spec §10.2–10.3) and the official lossless
// FP4 -> FP8 expert conversion (spec §10.3, REF convert.py --expert-dtype fp8). Scales are the smallest
// power of two that keeps the block's amax inside the format's range, so nothing saturates.
#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/status.h"
#include "ops/cpu/quant.h"

namespace dsv4::cpu {

namespace {
constexpr uint8_t kScaleOne = 127;  // UE8M0 2^0, used for all-zero blocks
int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}
}  // namespace

void quantize_fp8_128(const float* W, int64_t N, int64_t K, uint8_t* q, uint8_t* scale) {
    const int64_t nbr = ceil_div(N, 128), nbc = ceil_div(K, 128);
    for (int64_t bi = 0; bi < nbr; ++bi) {
        const int64_t r0 = bi * 128, r1 = std::min(N, r0 + 128);
        for (int64_t bj = 0; bj < nbc; ++bj) {
            const int64_t c0 = bj * 128, c1 = std::min(K, c0 + 128);
            float amax = 0.0f;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(W[r * K + c]));
            const uint8_t e = amax > 0.0f ? pow2_scale_e8m0(amax, 448.0f) : kScaleOne;
            scale[bi * nbc + bj] = e;
            const float inv = 1.0f / e8m0_to_f32(e);
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) q[r * K + c] = f32_to_e4m3(W[r * K + c] * inv);
        }
    }
}

void quantize_fp4_32(const float* W, int64_t N, int64_t K, uint8_t* packed, uint8_t* scale) {
    DSV4_ASSERT(K % 32 == 0, "FP4 weights need K % 32 == 0, got K = {}", K);
    for (int64_t r = 0; r < N; ++r) {
        const float* w = W + r * K;
        uint8_t* p = packed + r * (K / 2);
        for (int64_t b = 0; b < K / 32; ++b) {
            float amax = 0.0f;
            for (int64_t c = b * 32; c < b * 32 + 32; ++c) amax = std::max(amax, std::fabs(w[c]));
            const uint8_t e = amax > 0.0f ? pow2_scale_e8m0(amax, 6.0f) : kScaleOne;
            scale[r * (K / 32) + b] = e;
            const float inv = 1.0f / e8m0_to_f32(e);
            for (int64_t c = b * 32; c < b * 32 + 32; c += 2) {
                const uint8_t lo = f32_to_e2m1(w[c] * inv), hi = f32_to_e2m1(w[c + 1] * inv);
                p[c / 2] = uint8_t(lo | (hi << 4));
            }
        }
    }
}

int64_t fp4_to_fp8_128(const uint8_t* packed, const uint8_t* scale32, int64_t N, int64_t K, uint8_t* q,
                       uint8_t* scale128) {
    DSV4_ASSERT(K % 32 == 0, "FP4 weights need K % 32 == 0, got K = {}", K);
    const int64_t nbr = ceil_div(N, 128), nbc = ceil_div(K, 128), ks = K / 32;
    int64_t inexact = 0;
    for (int64_t bi = 0; bi < nbr; ++bi) {
        const int64_t r0 = bi * 128, r1 = std::min(N, r0 + 128);
        for (int64_t bj = 0; bj < nbc; ++bj) {
            const int64_t c0 = bj * 128, c1 = std::min(K, c0 + 128);
            int e_max = 0;  // largest of the block's 128 x 4 per-32 scales
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; c += 32) e_max = std::max<int>(e_max, scale32[r * ks + c / 32]);
            // s_max / 2^6: the largest code (6) times 2^6 = 384 stays under e4m3's 448. Floor at UE8M0 0.
            const int e_blk = std::max(e_max - 6, 0);
            scale128[bi * nbc + bj] = uint8_t(e_blk);
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) {
                    const uint8_t b = packed[r * (K / 2) + c / 2];
                    const float v = kE2m1Values[(c & 1) ? (b >> 4) : (b & 15)];
                    const float x = std::ldexp(v, int(scale32[r * ks + c / 32]) - e_blk);
                    const uint8_t code = f32_to_e4m3(x);
                    q[r * K + c] = code;
                    if (e4m3_to_f32(code) != x) ++inexact;
                }
        }
    }
    return inexact;
}

}  // namespace dsv4::cpu
