// Scalar codecs of core/dtype.h, exhaustively over every code where the type has <= 65536 of them.
// Expected values are computed here independently (spec §10.1 formulas, double arithmetic, _Float16),
// not with the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/dtype.h"

namespace dsv4 {
namespace {

// float8_e4m3fn per the spec table: bias 7, subnormals at e = 0, 0x7f/0xff NaN, no inf.
double e4m3_reference(uint8_t c) {
    int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
    double v = e == 0 ? (m / 8.0) * std::ldexp(1.0, -6) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
    return s ? -v : v;
}
bool e4m3_is_nan(uint8_t c) {
    return (c & 0x7f) == 0x7f;
}

TEST(DType, E4m3DecodeAllCodes) {
    for (int c = 0; c < 256; ++c) {
        float v = e4m3_to_f32(uint8_t(c));
        if (e4m3_is_nan(uint8_t(c))) {
            EXPECT_TRUE(std::isnan(v)) << "code " << c;
            continue;
        }
        EXPECT_EQ(double(v), e4m3_reference(uint8_t(c))) << "code " << c;
        EXPECT_EQ(std::signbit(v), c >= 128) << "code " << c;  // includes -0 at 0x80
    }
    EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
    EXPECT_EQ(e4m3_to_f32(0xfe), -448.0f);
    EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
    EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
}

TEST(DType, E4m3RoundTripAllCodes) {
    for (int c = 0; c < 256; ++c) {
        if (e4m3_is_nan(uint8_t(c))) continue;
        EXPECT_EQ(int(f32_to_e4m3(e4m3_to_f32(uint8_t(c)))), c) << "code " << c;
    }
    EXPECT_EQ(f32_to_e4m3(-0.0f), 0x80);
    EXPECT_EQ(f32_to_e4m3(0.0f), 0x00);
    EXPECT_TRUE(std::isnan(e4m3_to_f32(f32_to_e4m3(std::numeric_limits<float>::quiet_NaN()))));
}

// Midpoints between adjacent codes go to the even code; a hair either side goes to the nearer one.
TEST(DType, E4m3RoundsMidpointsToEven) {
    for (int c = 0; c < 0x7e; ++c) {  // 0x7e = 448 is the largest finite code
        for (int sign : {0, 0x80}) {
            uint8_t lo = uint8_t(c | sign), hi = uint8_t((c + 1) | sign);
            float a = e4m3_to_f32(lo), b = e4m3_to_f32(hi);
            float mid = (a + b) / 2;  // exact: both have <= 4 significant bits
            ASSERT_EQ(double(mid), (double(a) + double(b)) / 2);
            uint8_t even = (c % 2 == 0) ? lo : hi;
            EXPECT_EQ(int(f32_to_e4m3(mid)), int(even)) << "between codes " << c << " and " << c + 1;
            float toward_a = std::nextafter(mid, a), toward_b = std::nextafter(mid, b);
            EXPECT_EQ(int(f32_to_e4m3(toward_a)), int(lo)) << "just below midpoint after code " << c;
            EXPECT_EQ(int(f32_to_e4m3(toward_b)), int(hi)) << "just above midpoint after code " << c;
        }
    }
}

TEST(DType, E4m3Saturates) {
    for (float v : {448.0f, 449.0f, 464.0f, 480.0f, 1.0e6f, std::numeric_limits<float>::max(),
                    std::numeric_limits<float>::infinity()}) {
        EXPECT_EQ(f32_to_e4m3(v), 0x7e) << v;
        EXPECT_EQ(f32_to_e4m3(-v), 0xfe) << -v;
    }
    // Below half the smallest subnormal rounds to (signed) zero; exactly half ties to even (zero).
    EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -10)), 0x00);
    EXPECT_EQ(f32_to_e4m3(-std::ldexp(1.0f, -10)), 0x80);
    EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -11)), 0x00);
    EXPECT_EQ(f32_to_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
    EXPECT_EQ(f32_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(DType, E2m1ValuesMatchSpecTable) {
    const float spec[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    for (int c = 0; c < 16; ++c) {
        EXPECT_EQ(e2m1_to_f32(uint8_t(c)), spec[c]) << "code " << c;
        EXPECT_EQ(std::signbit(e2m1_to_f32(uint8_t(c))), c >= 8) << "code " << c;
        // Formula of §10.1: e = 0 subnormal 0.5*m, else 2^(e-1) * (1 + m/2).
        int e = (c >> 1) & 3, m = c & 1;
        double v = e == 0 ? 0.5 * m : std::ldexp(1.0 + m / 2.0, e - 1);
        EXPECT_EQ(std::fabs(double(e2m1_to_f32(uint8_t(c)))), v) << "code " << c;
        EXPECT_EQ(int(f32_to_e2m1(spec[c])), c) << "code " << c;
        // Every e2m1 value is exact in e4m3 (spec §10.1).
        EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(spec[c])), spec[c]);
    }
    // The upper nibble is ignored.
    EXPECT_EQ(e2m1_to_f32(0xf3), 1.5f);
}

TEST(DType, E2m1RoundsMidpointsToEvenCode) {
    // (value, expected code): midpoints tie to the even code, values past 6 saturate.
    const std::pair<float, int> cases[] = {
        {0.25f, 0}, {0.26f, 1}, {0.75f, 2},  {0.74f, 1},
        {1.25f, 2}, {1.26f, 3}, {1.75f, 4},  {2.5f, 4},
        {2.51f, 5}, {3.5f, 6},  {3.49f, 5},  {5.0f, 6},
        {5.01f, 7}, {7.0f, 7},  {100.0f, 7}, {std::numeric_limits<float>::infinity(), 7},
        {0.1f, 0},
    };
    for (auto [v, code] : cases) {
        EXPECT_EQ(int(f32_to_e2m1(v)), code) << v;
        EXPECT_EQ(int(f32_to_e2m1(-v)), code | 8) << -v;
    }
    EXPECT_EQ(int(f32_to_e2m1(-0.0f)), 8);
}

TEST(DType, Fp4PackedNibbleOrder) {
    const uint8_t packed[2] = {0x71, 0xa2};  // elements: 0.5, 6, 1, -1
    EXPECT_EQ(fp4_get(packed, 0), 0.5f);
    EXPECT_EQ(fp4_get(packed, 1), 6.0f);
    EXPECT_EQ(fp4_get(packed, 2), 1.0f);
    EXPECT_EQ(fp4_get(packed, 3), -1.0f);
    float out[4];
    convert_to_f32(DType::fp4_e2m1, packed, out, 4);
    EXPECT_EQ(out[1], 6.0f);
    EXPECT_EQ(out[3], -1.0f);
}

TEST(DType, E8m0AllCodes) {
    for (int e = 0; e < 255; ++e) {
        EXPECT_EQ(double(e8m0_to_f32(uint8_t(e))), std::ldexp(1.0, e - 127)) << "code " << e;
    }
    EXPECT_TRUE(std::isnan(e8m0_to_f32(255)));
    EXPECT_GT(e8m0_to_f32(0), 0.0f);  // 2^-127 survives as an f32 subnormal, not 0
}

TEST(DType, Bf16AllCodesRoundTrip) {
    for (uint32_t h = 0; h < 65536; ++h) {
        float v = bf16_to_f32(uint16_t(h));
        EXPECT_EQ(f32_bits(v), h << 16);
        if (std::isnan(v)) {
            EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(v))));
            continue;
        }
        ASSERT_EQ(uint32_t(f32_to_bf16(v)), h) << "code " << h;
    }
}

// Independent reference: the nearer of the two bf16 neighbours (compared in double), ties to even.
uint16_t bf16_reference(float f) {
    uint32_t u = f32_bits(f);
    uint16_t lo = uint16_t(u >> 16);  // truncation toward zero in magnitude
    if ((u & 0xffffu) == 0) return lo;
    uint16_t hi = uint16_t(lo + 1);
    double dlo = std::fabs(double(f) - double(bf16_to_f32(lo)));
    double dhi = std::isinf(bf16_to_f32(hi))
                     ? std::ldexp(1.0, 128) - std::fabs(double(f))  // next step is 2^128
                     : std::fabs(double(f) - double(bf16_to_f32(hi)));
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}

TEST(DType, Bf16RoundToNearestEven) {
    std::mt19937 rng(1234);
    int n_checked = 0;
    for (int i = 0; i < 200000; ++i) {
        uint32_t u = rng();
        if ((u & 0x7f800000u) == 0x7f800000u) continue;  // inf/NaN inputs checked separately
        // Every fourth sample is forced onto an exact tie (low half = 0x8000).
        if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;
        float f = f32_from_bits(u);
        ASSERT_EQ(f32_to_bf16(f), bf16_reference(f)) << std::hex << "bits 0x" << u;
        ++n_checked;
    }
    EXPECT_GT(n_checked, 150000);
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
    EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
    EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds past the top to inf
    EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    EXPECT_TRUE(
        std::isnan(bf16_to_f32(f32_to_bf16(f32_from_bits(0x7f800001u)))));  // signalling NaN stays NaN
}

// IEEE binary16 by formula, independent of the code under test.
double f16_reference(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

TEST(DType, F16AllCodes) {
    for (uint32_t h = 0; h < 65536; ++h) {
        float v = f16_to_f32(uint16_t(h));
        int e = (h >> 10) & 31;
        if (e == 31) {
            if (h & 1023) {
                EXPECT_TRUE(std::isnan(v)) << h;
                EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(v))));
            } else {
                EXPECT_TRUE(std::isinf(v)) << h;
                EXPECT_EQ(uint32_t(f32_to_f16(v)), h);
            }
            continue;
        }
        ASSERT_EQ(double(v), f16_reference(uint16_t(h))) << "code " << h;
        ASSERT_EQ(std::signbit(v), h >= 0x8000) << "code " << h;
        ASSERT_EQ(uint32_t(f32_to_f16(v)), h) << "code " << h;
    }
}

TEST(DType, F16RoundToNearestEven) {
    // Midpoints between adjacent finite codes (exact in f32) go to the even code.
    for (uint32_t h = 0; h < 0x7bff; ++h) {
        float a = f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h + 1));
        float mid = (a + b) / 2;
        ASSERT_EQ(uint32_t(f32_to_f16(mid)), (h % 2 == 0) ? h : h + 1)
            << "between codes " << h << ", " << h + 1;
        ASSERT_EQ(uint32_t(f32_to_f16(std::nextafter(mid, a))), h);
        ASSERT_EQ(uint32_t(f32_to_f16(std::nextafter(mid, b))), h + 1);
    }
    EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
    EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie between 65504 and 2^16 -> even -> inf
    EXPECT_EQ(f32_to_f16(-1.0e9f), 0xfc00);
    EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
#if defined(__FLT16_MAX__)
    // The compiler's own conversion is a second, independent reference.
    std::mt19937 rng(99);
    for (int i = 0; i < 200000; ++i) {
        float f = f32_from_bits(rng());
        if (std::isnan(f)) continue;
        _Float16 r = _Float16(f);
        uint16_t bits;
        std::memcpy(&bits, &r, 2);
        ASSERT_EQ(f32_to_f16(f), bits) << f;
    }
#endif
}

TEST(DType, SafetensorsNames) {
    EXPECT_EQ(dtype_from_safetensors("BF16"), DType::bf16);
    EXPECT_EQ(dtype_from_safetensors("F8_E4M3"), DType::f8_e4m3);
    EXPECT_EQ(dtype_from_safetensors("F8_E8M0"), DType::f8_e8m0);
    EXPECT_EQ(dtype_from_safetensors("I8"), DType::i8);  // fp4 is decided by the weight table, not here
    EXPECT_EQ(dtype_from_safetensors("bf16"), std::nullopt);
    EXPECT_EQ(dtype_from_safetensors("F4"), std::nullopt);
    for (int i = 0; i < int(DType::count); ++i) {
        DType t = DType(i);
        if (t == DType::fp4_e2m1) {
            EXPECT_STREQ(dtype_safetensors_name(t), "I8");
            continue;
        }
        EXPECT_EQ(dtype_from_safetensors(dtype_safetensors_name(t)), t) << dtype_name(t);
    }
    EXPECT_EQ(dtype_bytes(DType::bf16, 3), 6);
    EXPECT_EQ(dtype_bytes(DType::fp4_e2m1, 64), 32);
    EXPECT_EQ(dtype_bytes(DType::i64, 2), 16);
}

TEST(DType, ConvertToF32) {
    const uint16_t bf[3] = {0x3f80, 0xc000, 0x0000};
    float out[3];
    convert_to_f32(DType::bf16, bf, out, 3);
    EXPECT_EQ(out[0], 1.0f);
    EXPECT_EQ(out[1], -2.0f);
    const int8_t i8[3] = {-128, 0, 127};
    convert_to_f32(DType::i8, i8, out, 3);
    EXPECT_EQ(out[0], -128.0f);
    EXPECT_EQ(out[2], 127.0f);
    const uint8_t u8[2] = {0, 255};
    convert_to_f32(DType::u8, u8, out, 2);
    EXPECT_EQ(out[1], 255.0f);
}

}  // namespace
}  // namespace dsv4
