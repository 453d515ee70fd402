// Element types of checkpoints and activations, and the scalar codecs between them and f32.
// Bit layouts: dsv4-architecture.md §10.1. Tested exhaustively over all codes in tests/unit/test_dtype.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace dsv4 {

// fp4_e2m1 is stored packed two per byte (low nibble = even element); the released checkpoints
// label such tensors I8, so the loader decides from context (spec §10.3).
enum class DType : uint8_t {
    f32,
    f16,
    bf16,
    f8_e4m3,
    f8_e8m0,
    fp4_e2m1,
    i64,
    i32,
    i16,
    i8,
    u8,
    boolean,
    count
};

const char* dtype_name(DType t);                                  // "bf16", "f8_e4m3", ...
std::optional<DType> dtype_from_safetensors(std::string_view s);  // "BF16", "F8_E4M3", "F8_E8M0", "I8", ...
const char* dtype_safetensors_name(DType t);                      // inverse of the above ("I8" for fp4_e2m1)
// Bytes for n elements (fp4: n must be even; two per byte).
int64_t dtype_bytes(DType t, int64_t n);

inline float f32_from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

inline float bf16_to_f32(uint16_t h) {
    return f32_from_bits(uint32_t(h) << 16);
}
// Round to nearest even; NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}
inline float round_bf16(float f) {
    return bf16_to_f32(f32_to_bf16(f));
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to inf

float e4m3_to_f32(uint8_t v);  // float8_e4m3fn: no inf, 0x7f/0xff NaN
uint8_t f32_to_e4m3(float f);  // round to nearest even, saturating to ±448; NaN -> 0x7f

// UE8M0: 2^(E-127), E = 255 is NaN.
inline float e8m0_to_f32(uint8_t e) {
    if (e == 255) return f32_from_bits(0x7fc00000u);
    if (e == 0) return f32_from_bits(0x00400000u);  // 2^-127 is a float32 subnormal
    return f32_from_bits(uint32_t(e) << 23);
}

extern const float kE2m1Values[16];  // code -> value (spec §10.1 table)
inline float e2m1_to_f32(uint8_t code) {
    return kE2m1Values[code & 15];
}
uint8_t f32_to_e2m1(float f);  // round to nearest, ties to even code; saturates to ±6

// Element i of a packed fp4 buffer.
inline float fp4_get(const uint8_t* packed, int64_t i) {
    uint8_t b = packed[i >> 1];
    return e2m1_to_f32((i & 1) ? (b >> 4) : (b & 15));
}

// Converts n elements of type t at src to f32 (not for fp4/e8m0-scaled weights; use the weight views).
void convert_to_f32(DType t, const void* src, float* dst, int64_t n);

}  // namespace dsv4
