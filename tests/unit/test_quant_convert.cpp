// The official FP4 -> FP8 expert conversion (spec §10.3) is lossless: exhaustively over every FP4 code,
// every block-maximum scale E_max in [0, 254] and every sub-block scale E_sub in [E_max − 14, E_max]
// (the range the format guarantees), the FP8 value times the new block scale equals the FP4 value times
// its own scale exactly. Below 2^−14 · s_max small codes fall under e4m3's subnormal floor (reported).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/quant.h"

namespace dsv4 {
namespace {

TEST(QuantConvert, Fp4ToFp8IsLosslessOverAllCodesAndScales) {
    const int64_t N = 128, K = 128;  // one FP8 block = 128 rows x 4 sub-blocks of 32
    std::vector<uint8_t> packed(size_t(N * K / 2)), s32(size_t(N * K / 32)), q(size_t(N * K)), s128(1);
    int64_t checked = 0;
    for (int e_max = 0; e_max <= 254; ++e_max) {
        for (int64_t r = 0; r < N; ++r) {
            for (int64_t j = 0; j < 4; ++j) {  // sub-block (r, j): every distance 0..14 below e_max
                const int d = int((r * 4 + j) % 15);
                s32[size_t(r * 4 + j)] = uint8_t(std::max(e_max - d, 0));
            }
            for (int64_t c = 0; c < K;
                 c += 2) {  // every code in every sub-block (32 columns: each code twice)
                const uint8_t lo = uint8_t((r + c) % 16), hi = uint8_t((r + c + 1) % 16);
                packed[size_t(r * K / 2 + c / 2)] = uint8_t(lo | (hi << 4));
            }
        }
        s32[0] = uint8_t(e_max);
        const int64_t inexact = cpu::fp4_to_fp8_128(packed.data(), s32.data(), N, K, q.data(), s128.data());
        ASSERT_EQ(inexact, 0) << "e_max " << e_max;
        ASSERT_EQ(int(s128[0]), std::max(e_max - 6, 0));
        for (int64_t r = 0; r < N; ++r)
            for (int64_t c = 0; c < K; ++c) {
                const uint8_t b = packed[size_t(r * K / 2 + c / 2)];
                const double fp4 = std::ldexp(double(e2m1_to_f32((c & 1) ? (b >> 4) : (b & 15))),
                                              int(s32[size_t(r * 4 + c / 32)]) - 127);
                const double fp8 = std::ldexp(double(e4m3_to_f32(q[size_t(r * K + c)])), int(s128[0]) - 127);
                ASSERT_EQ(fp4, fp8) << "e_max " << e_max << " row " << r << " col " << c;
                ++checked;
            }
    }
    EXPECT_EQ(checked, 255 * 128 * 128);
    std::printf(
        "[ lossless ] FP4 -> FP8: %lld elements (16 codes x E_max 0..254 x E_sub E_max-14..E_max), 0 "
        "inexact\n",
        (long long)checked);
}

TEST(QuantConvert, SubScaleBelowTheGuaranteeIsReported) {
    // E_sub = E_max − 15: 0.5 · 2^(E_sub − E_blk) = 2^−10 is below e4m3's 2^−9 floor.
    std::vector<uint8_t> packed(64, 0), s32(4), q(128), s128(1);
    s32 = {200, 185, 200, 200};
    packed[16] = 0x21;  // columns 32, 33: codes 1 (0.5), 2 (1.0) in the low sub-block
    const int64_t inexact = cpu::fp4_to_fp8_128(packed.data(), s32.data(), 1, 128, q.data(), s128.data());
    EXPECT_EQ(inexact, 1);  // 1.0 -> 2^-9 is still exact, 0.5 is not
}

TEST(QuantConvert, LargestCodeFitsUnder448) {
    std::vector<uint8_t> packed(64, 0x77), s32(4, 130), q(128), s128(1);
    EXPECT_EQ(cpu::fp4_to_fp8_128(packed.data(), s32.data(), 1, 128, q.data(), s128.data()), 0);
    EXPECT_EQ(e4m3_to_f32(q[0]), 384.0f);
}

}  // namespace
}  // namespace dsv4
