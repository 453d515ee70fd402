// Quantized formats against hand-computed values (spec §10): dequantization of FP8 128x128, packed FP4
// per-32 and plain rows (incl. partial blocks and row views starting inside a scale block), the
// power-of-two scale rule, the REF FP8/FP4 round trips, the Hadamard transform and the weight quantizers.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/ops_cpu.h"
#include "ops/cpu/quant.h"

namespace dsv4 {
namespace {

WeightRef fp8_ref(const std::vector<uint8_t>& q, const std::vector<uint8_t>& s, int64_t N, int64_t K) {
    WeightRef w;
    w.dtype = DType::f8_e4m3;
    w.data = q.data();
    w.n_rows = N;
    w.n_cols = K;
    w.scale = s.data();
    w.scale_cols = (K + 127) / 128;
    w.block_rows = w.block_cols = 128;
    return w;
}

std::vector<float> row_of(const WeightRef& w, int64_t r) {
    std::vector<float> a(size_t(w.n_cols)), b(size_t(w.n_cols));
    w.row_to_f32(r, a.data());
    cpu::dequant_row(w, r, b.data());
    for (size_t i = 0; i < a.size(); ++i)
        EXPECT_EQ(f32_bits(a[i]), f32_bits(b[i])) << "LUT path differs at col " << i;
    return b;
}

TEST(QuantOps, Fp8BlockDequantHandValues) {
    // 130 x 3: rows 0..127 in scale block 0 (E = 130: x8), rows 128..129 in the partial block 1 (E = 125:
    // /4).
    std::vector<uint8_t> q(130 * 3, 0), s = {130, 125};
    const uint8_t r0[3] = {0x38, 0x3C, 0xB8};    // 1.0, 1.5, -1.0
    const uint8_t r129[3] = {0x01, 0x7E, 0x50};  // 2^-9 (subnormal), 448, 8
    std::copy(r0, r0 + 3, q.begin());
    std::copy(r129, r129 + 3, q.begin() + 129 * 3);
    WeightRef w = fp8_ref(q, s, 130, 3);
    EXPECT_EQ(row_of(w, 0), (std::vector<float>{8.0f, 12.0f, -8.0f}));
    EXPECT_EQ(row_of(w, 129), (std::vector<float>{std::ldexp(1.0f, -11), 112.0f, 2.0f}));
    // A view starting inside a scale block (grouped wo_a, o_lora_rank 64): its row 65 is absolute row 129.
    WeightRef v = w.rows(64, 66);
    EXPECT_EQ(v.scale_row0, 64);
    EXPECT_EQ(row_of(v, 65), (std::vector<float>{std::ldexp(1.0f, -11), 112.0f, 2.0f}));
    EXPECT_EQ(row_of(v, 63), (std::vector<float>{0.0f, 0.0f, 0.0f}));
    WeightRef v2 = v.rows(64, 2);  // views of views keep the offset
    EXPECT_EQ(row_of(v2, 1), (std::vector<float>{std::ldexp(1.0f, -11), 112.0f, 2.0f}));
}

TEST(QuantOps, Fp8ColumnBlocksAndEveryCode) {
    // 1 x 256: columns 0..127 use scale E = 127 (x1), 128..255 E = 128 (x2); every code once per half.
    std::vector<uint8_t> q(256), s = {127, 128};
    for (int i = 0; i < 256; ++i) q[size_t(i)] = uint8_t(i % 128 + (i >= 128 ? 128 : 0));
    WeightRef w = fp8_ref(q, s, 1, 256);
    std::vector<float> got = row_of(w, 0);
    for (int i = 0; i < 256; ++i) {
        const float want = e4m3_to_f32(q[size_t(i)]) * (i >= 128 ? 2.0f : 1.0f);
        if (std::isnan(want))
            EXPECT_TRUE(std::isnan(got[size_t(i)])) << i;
        else
            EXPECT_EQ(got[size_t(i)], want) << i;
    }
}

TEST(QuantOps, Fp4PackedDequantHandValues) {
    // 1 x 64: bytes 0x21 -> (code 1, code 2) = (0.5, 1); 0xF7 -> (6, -6); scales E = 126 (x0.5), 129 (x4).
    std::vector<uint8_t> p(32, 0), s = {126, 129};
    p[0] = 0x21;
    p[1] = 0xF7;
    p[16] = 0x9A;  // column 32: code 10 = -1, column 33: code 9 = -0.5
    WeightRef w;
    w.dtype = DType::fp4_e2m1;
    w.data = p.data();
    w.n_rows = 1;
    w.n_cols = 64;
    w.scale = s.data();
    w.scale_cols = 2;
    w.block_rows = 1;
    w.block_cols = 32;
    std::vector<float> got = row_of(w, 0);
    EXPECT_EQ(got[0], 0.25f);
    EXPECT_EQ(got[1], 0.5f);
    EXPECT_EQ(got[2], 3.0f);
    EXPECT_EQ(got[3], -3.0f);
    EXPECT_EQ(got[4], 0.0f);
    EXPECT_EQ(got[32], -4.0f);
    EXPECT_EQ(got[33], -2.0f);
}

TEST(QuantOps, PlainRowsDequant) {
    const uint16_t bf[3] = {0x3F80, 0xC040, 0x3E00};  // 1, -3, 0.125
    WeightRef w;
    w.dtype = DType::bf16;
    w.data = bf;
    w.n_rows = 1;
    w.n_cols = 3;
    EXPECT_EQ(row_of(w, 0), (std::vector<float>{1.0f, -3.0f, 0.125f}));
    const uint16_t hf[2] = {0x3C00, 0xC500};  // f16 1, -5
    w.dtype = DType::f16;
    w.data = hf;
    w.n_cols = 2;
    EXPECT_EQ(row_of(w, 0), (std::vector<float>{1.0f, -5.0f}));
}

TEST(QuantOps, Pow2ScaleRule) {
    EXPECT_EQ(cpu::pow2_scale_e8m0(448.0f, 448.0f), 127);  // exactly 1: no round-up
    EXPECT_EQ(cpu::pow2_scale_e8m0(449.0f, 448.0f), 128);
    EXPECT_EQ(cpu::pow2_scale_e8m0(224.0f, 448.0f), 126);
    EXPECT_EQ(cpu::pow2_scale_e8m0(100.0f, 448.0f), 125);      // 0.223 -> 2^-2
    EXPECT_EQ(cpu::pow2_scale_e8m0(1e-4f, 448.0f), 127 - 22);  // 2.23e-7 -> 2^-22
    EXPECT_EQ(cpu::pow2_scale_e8m0(6.0f, 6.0f), 127);
    EXPECT_EQ(cpu::pow2_scale_e8m0(5.0f, 6.0f), 127);
    EXPECT_EQ(cpu::pow2_scale_e8m0(12.0f, 6.0f), 128);
}

TEST(QuantOps, Fp8RoundTripHandValues) {
    // amax 100 -> s = 2^-2; x/s = 4, 1.2, -12, 400 -> e4m3 4, 1.25, -12, 384 (400 is a tie: even mantissa)
    std::vector<float> x = {1.0f, 0.3f, -3.0f, 100.0f};
    cpu::fp8_roundtrip(x.data(), 4, 128);
    EXPECT_EQ(x, (std::vector<float>{1.0f, 0.3125f, -3.0f, 96.0f}));
    // blocks of 2: {1, 3}: s = 2^-7, exact; {0.1, 0.2}: s = 2^-11, 204.8 -> 208, 409.6 -> 416
    std::vector<float> y = {1.0f, 3.0f, 0.1f, 0.2f};
    cpu::fp8_roundtrip(y.data(), 4, 2);
    EXPECT_EQ(y, (std::vector<float>{1.0f, 3.0f, 208.0f / 2048.0f, 416.0f / 2048.0f}));
    // amax floor 1e-4: s = 2^-22; 1e-6 / s = 4.19 -> 4
    std::vector<float> z = {1e-6f, 0.0f, -0.0f};
    cpu::fp8_roundtrip(z.data(), 3, 64);
    EXPECT_EQ(z[0], std::ldexp(4.0f, -22));
    EXPECT_EQ(z[1], 0.0f);
    // rows: only the first n of each row
    std::vector<float> r = {0.3f, 100.0f, 7.7f, 0.3f, 100.0f, 7.7f};
    cpu::fp8_roundtrip_rows(r.data(), 2, 3, 2, 64);
    EXPECT_EQ(r, (std::vector<float>{0.3125f, 96.0f, 7.7f, 0.3125f, 96.0f, 7.7f}));
}

TEST(QuantOps, Fp4RoundTripHandValues) {
    // amax 5 -> s = 1: 2.2 -> 2, -0.4 -> -0.5, 5 -> 4 (tie between 4 and 6 goes to the even code)
    std::vector<float> x = {1.0f, 2.2f, -0.4f, 5.0f};
    cpu::fp4_roundtrip(x.data(), 4, 32);
    EXPECT_EQ(x, (std::vector<float>{1.0f, 2.0f, -0.5f, 4.0f}));
    // amax 12 -> s = 2: exact codes 6, 0.5, 1.5
    std::vector<float> y = {12.0f, 1.0f, 3.0f};
    cpu::fp4_roundtrip(y.data(), 3, 32);
    EXPECT_EQ(y, (std::vector<float>{12.0f, 1.0f, 3.0f}));
    std::vector<float> z(32, 0.0f);
    cpu::fp4_roundtrip(z.data(), 32, 32);
    EXPECT_EQ(z, std::vector<float>(32, 0.0f));
}

TEST(QuantOps, HadamardHandValuesAndOrthonormal) {
    std::vector<float> x = {1.0f, 2.0f, 3.0f, 4.0f};
    cpu::hadamard_rows(x.data(), 1, 4);
    EXPECT_EQ(x, (std::vector<float>{5.0f, -1.0f, -2.0f, 0.0f}));
    // d = 128 against the explicit Sylvester matrix, and H·H = I
    std::vector<float> v(128), h(128);
    for (int i = 0; i < 128; ++i) v[size_t(i)] = std::sin(0.37f * float(i)) + 0.1f * float(i % 5);
    h = v;
    cpu::hadamard_rows(h.data(), 1, 128);
    for (int i = 0; i < 128; ++i) {
        double ref = 0.0;
        for (int j = 0; j < 128; ++j) ref += (__builtin_popcount(i & j) & 1 ? -1.0 : 1.0) * v[size_t(j)];
        EXPECT_NEAR(h[size_t(i)], ref / std::sqrt(128.0), 1e-5) << i;
    }
    cpu::hadamard_rows(h.data(), 1, 128);
    for (int i = 0; i < 128; ++i) EXPECT_NEAR(h[size_t(i)], v[size_t(i)], 1e-5);
}

TEST(QuantOps, QuantizeFp8HandValues) {
    // 2 x 2 block, amax 56 -> s = 2^-3 exactly: 56 -> 448 (0x7E), 1 -> 8 (0x50), -0.1 -> -0.8 -> -0.8125
    // (0xB5)
    const float W[4] = {56.0f, 1.0f, -0.1f, 0.0f};
    uint8_t q[4], s[1];
    cpu::quantize_fp8_128(W, 2, 2, q, s);
    EXPECT_EQ(s[0], 124);
    EXPECT_EQ(q[0], 0x7E);
    EXPECT_EQ(q[1], 0x50);
    EXPECT_EQ(q[2], 0xB5);
    EXPECT_EQ(q[3], 0x00);
    // an all-zero block gets scale 1; partial edge blocks have their own scale
    std::vector<float> Z(130 * 129, 0.0f);
    Z[129 * 129 + 128] = 3.0f;  // only element of block (1, 1)
    std::vector<uint8_t> qz(Z.size()), sz(4);
    cpu::quantize_fp8_128(Z.data(), 130, 129, qz.data(), sz.data());
    EXPECT_EQ(sz, (std::vector<uint8_t>{127, 127, 127, 127 - 7}));  // 3/448 -> 2^-7
    EXPECT_EQ(e4m3_to_f32(qz[129 * 129 + 128]) * e8m0_to_f32(sz[3]), 3.0f);
}

TEST(QuantOps, QuantizeFp4HandValues) {
    std::vector<float> W(64, 0.0f);
    W[0] = 12.0f;  // amax 12 -> s = 2: 12 -> 6 (code 7), -1 -> -0.5 (code 9), 2.9 -> 1.5 (code 3)
    W[1] = -1.0f;
    W[2] = 2.9f;
    W[40] = 0.75f;  // block 1: amax 0.75 -> 0.125 -> s = 2^-3: 6 (code 7)
    std::vector<uint8_t> p(32), s(2);
    cpu::quantize_fp4_32(W.data(), 1, 64, p.data(), s.data());
    EXPECT_EQ(s, (std::vector<uint8_t>{128, 124}));
    EXPECT_EQ(p[0], 0x97);
    EXPECT_EQ(p[1] & 15, 3);
    EXPECT_EQ(p[20] & 15, 7);
}

TEST(QuantOps, LinearOnFp8EqualsDequantizedLinear) {
    // cpu::linear over an FP8 WeightRef == the same linear over the dequantized f32 matrix, bit for bit.
    const int64_t N = 200, K = 300, n = 3;
    std::vector<float> W(size_t(N * K)), x(size_t(n * K));
    for (size_t i = 0; i < W.size(); ++i) W[i] = std::sin(0.013f * float(i)) * float(1 + i % 7);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.07f * float(i));
    std::vector<uint8_t> q(W.size()), s(size_t(2 * 3));
    cpu::quantize_fp8_128(W.data(), N, K, q.data(), s.data());
    WeightRef w = fp8_ref(q, s, N, K);
    std::vector<float> Wd(W.size());
    for (int64_t r = 0; r < N; ++r) w.row_to_f32(r, Wd.data() + r * K);
    WeightRef wf;
    wf.dtype = DType::f32;
    wf.data = Wd.data();
    wf.n_rows = N;
    wf.n_cols = K;
    std::vector<float> y1(size_t(n * N)), y2(size_t(n * N));
    cpu::linear(x.data(), n, w, y1.data());
    cpu::linear(x.data(), n, wf, y2.data());
    EXPECT_EQ(y1, y2);
}

}  // namespace
}  // namespace dsv4
