// Exhaustive host check of the CUDA rounding codecs (src/ops/cuda/quant_sm90.cuh) against the CPU
// reference (core/dtype.cpp, ops/cpu/quant.cpp): every float32 bit pattern through f32_to_e4m3,
// f32_to_e2m1 and the power-of-two scale rule (qmax 448 and 6), every code through the decoders.
// Build and run (from the repo root, ~2 min on one core):
//   g++ -O2 -std=c++20 -Isrc dev/cuda/quant_codec_check.cpp src/core/dtype.cpp src/ops/cpu/quant.cpp \
//       -lfmt -o /tmp/quant_codec_check && /tmp/quant_codec_check
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/dtype.h"
#include "ops/cpu/quant.h"
#include "ops/cuda/quant_sm90.cuh"

using namespace dsv4;

int main() {
    long long bad = 0;
    auto same = [](float a, float b) {
        return std::memcmp(&a, &b, 4) == 0 || (std::isnan(a) && std::isnan(b));
    };
    for (uint32_t c = 0; c < 256; ++c)
        if (!same(e4m3_to_f32(uint8_t(c)), cuda::q::e4m3_to_f32(c)))
            ++bad, std::printf("e4m3 decode %u\n", c);
    for (uint32_t c = 0; c < 16; ++c)
        if (!same(e2m1_to_f32(uint8_t(c)), cuda::q::e2m1_to_f32(c)))
            ++bad, std::printf("e2m1 decode %u\n", c);
    const float inv448 = 1.0f / 448.0f, inv6 = 1.0f / 6.0f;
    uint32_t u = 0;
    do {
        float f;
        std::memcpy(&f, &u, 4);
        if (f32_to_e4m3(f) != cuda::q::f32_to_e4m3(f)) {
            if (++bad < 10)
                std::printf("e4m3 %08x: cpu %02x gpu %02x\n", u, f32_to_e4m3(f), cuda::q::f32_to_e4m3(f));
        }
        if (f32_to_e2m1(f) != cuda::q::f32_to_e2m1(f)) {
            if (++bad < 10)
                std::printf("e2m1 %08x: cpu %x gpu %x\n", u, f32_to_e2m1(f), cuda::q::f32_to_e2m1(f));
        }
        if (u < 0x7f800000u && u > 0) {  // positive finite amax
            if (cpu::pow2_scale_e8m0(f, 448.0f) != cuda::q::pow2_scale(f, inv448) ||
                cpu::pow2_scale_e8m0(f, 6.0f) != cuda::q::pow2_scale(f, inv6)) {
                if (++bad < 10) std::printf("scale %08x\n", u);
            }
        }
    } while (++u != 0);
    std::printf("%s: %lld mismatches over all 2^32 inputs\n", bad ? "FAIL" : "ok", bad);
    return bad ? 1 : 0;
}
