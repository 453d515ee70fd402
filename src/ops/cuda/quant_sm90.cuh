// Scalar codecs of the REF roundings (spec §10.4-10.5) for the CUDA kernels of quant_sm90.cu, written
// with integer bit operations so that they compile as host code too: dev/cuda/quant_codec_check.cpp runs
// them against core/dtype.cpp and ops/cpu/quant.cpp on every float32 input (bit-identical).
// Nothing here depends on the rounding mode, FTZ or FMA contraction: the only float operations are
// exact ones (multiplications by powers of two, rintf of values < 16).
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define DSV4_QHD __host__ __device__ __forceinline__
#else
#include <cmath>
#define DSV4_QHD inline
#endif

namespace dsv4::cuda::q {

DSV4_QHD uint32_t bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
#endif
}
DSV4_QHD float from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
}

// UE8M0 byte of 2^ceil(log2(amax · inv_qmax)) clamped to [0, 254] (cpu::pow2_scale_e8m0 with
// inv_qmax = 1.0f / qmax computed by the caller exactly as the CPU does).
DSV4_QHD uint32_t pow2_scale(float amax, float inv_qmax) {
    const uint32_t u = bits(amax * inv_qmax);
    int e = int((u >> 23) & 0xffu);
    if ((u & 0x7fffffu) != 0 || e == 0) ++e;
    return uint32_t(e < 0 ? 0 : (e > 254 ? 254 : e));
}
DSV4_QHD float e8m0_value(uint32_t e) {  // core/dtype.h e8m0_to_f32
    if (e == 255) return from_bits(0x7fc00000u);
    if (e == 0) return from_bits(0x00400000u);
    return from_bits(e << 23);
}

// f32 -> e4m3fn as core/dtype.cpp f32_to_e4m3: round to nearest even, saturating to ±448, NaN -> 0x7f.
DSV4_QHD uint32_t f32_to_e4m3(float f) {
    const uint32_t u = bits(f), a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fu;
    const uint32_t sign = (u >> 31) << 7;
    if (a >= 0x43e00000u) return sign | 0x7eu;  // |f| >= 448 (and inf)
    if (a < 0x3c800000u) {                      // |f| < 2^-6: steps of 2^-9; code 8 is 2^-6 itself
        const float q = rintf(from_bits(a) * 512.0f);
        return sign | uint32_t(q);
    }
    const uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u);  // round the 23-bit mantissa to 3 bits, ties even
    if (r >= 0x43e00000u) return sign | 0x7eu;
    return sign | (((r >> 23) - 120u) << 3) | ((r >> 20) & 7u);
}
DSV4_QHD float e4m3_to_f32(uint32_t v) {  // core/dtype.cpp e4m3_to_f32
    const uint32_t e = (v >> 3) & 15u, m = v & 7u;
    if (e == 15u && m == 7u) return from_bits(0x7fc00000u);
    const float r = e == 0 ? float(m) * 0.001953125f : from_bits(((e + 120u) << 23) | (m << 20));
    return (v & 0x80u) ? -r : r;
}

// f32 -> e2m1 as core/dtype.cpp f32_to_e2m1: nearest, ties to the even code, saturating to ±6; NaN -> 7.
DSV4_QHD uint32_t f32_to_e2m1(float f) {
    const uint32_t u = bits(f), ab = u & 0x7fffffffu;
    if (ab > 0x7f800000u) return 7u;
    const float a = from_bits(ab);
    uint32_t code = uint32_t(a > 0.25f) + uint32_t(a > 0.75f) + uint32_t(a > 1.25f) + uint32_t(a > 1.75f) +
                    uint32_t(a > 2.5f) + uint32_t(a > 3.5f) + uint32_t(a > 5.0f);
    if (a == 0.75f || a == 1.75f || a == 3.5f) ++code;  // the midpoints below an even code
    return ((u >> 31) << 3) | code;
}
DSV4_QHD float e2m1_to_f32(uint32_t code) {
    const uint32_t mag = code & 7u;
    const float v = mag < 2 ? 0.5f * float(mag) : from_bits((((mag >> 1) + 126u) << 23) | ((mag & 1u) << 22));
    return (code & 8u) ? -v : v;
}

// One element of the REF simulations: v = clamp(x·inv, ±qmax) through the format and back, times s.
DSV4_QHD float fp8_round(float x, float inv, float s) {
    float v = x * inv;
    v = v < -448.0f ? -448.0f : (448.0f < v ? 448.0f : v);
    return e4m3_to_f32(f32_to_e4m3(v)) * s;
}
DSV4_QHD float fp4_round(float x, float inv, float s) {
    float v = x * inv;
    v = v < -6.0f ? -6.0f : (6.0f < v ? 6.0f : v);
    return e2m1_to_f32(f32_to_e2m1(v)) * s;
}

}  // namespace dsv4::cuda::q
