// Scalar codecs between the checkpoint element types and f32 (spec §10.1).
#include "core/dtype.h"

#include <cmath>

#include "core/status.h"

namespace dsv4 {

namespace {
struct DTypeInfo {
    const char* name;
    const char* st_name;
    int bits;
};
constexpr DTypeInfo kInfo[] = {
    {"f32", "F32", 32},        {"f16", "F16", 16},    {"bf16", "BF16", 16}, {"f8_e4m3", "F8_E4M3", 8},
    {"f8_e8m0", "F8_E8M0", 8}, {"fp4_e2m1", "I8", 4}, {"i64", "I64", 64},   {"i32", "I32", 32},
    {"i16", "I16", 16},        {"i8", "I8", 8},       {"u8", "U8", 8},      {"bool", "BOOL", 8},
};
static_assert(std::size(kInfo) == size_t(DType::count), "name every dtype");
}  // namespace

const float kE2m1Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                               -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// The range checks keep a corrupt enum value (and g++'s -Warray-bounds on DType::count) from indexing past
// kInfo.
const char* dtype_name(DType t) {
    return size_t(t) < std::size(kInfo) ? kInfo[size_t(t)].name : "invalid";
}
const char* dtype_safetensors_name(DType t) {
    return size_t(t) < std::size(kInfo) ? kInfo[size_t(t)].st_name : "invalid";
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
    if (s == "F8_E8M0FNU") return DType::f8_e8m0;  // alias seen in some writers
    if (s == "F8_E4M3FN") return DType::f8_e4m3;
    for (int i = 0; i < int(DType::count); ++i) {
        if (DType(i) == DType::fp4_e2m1) continue;  // "I8" means i8 on disk
        if (s == kInfo[i].st_name) return DType(i);
    }
    return std::nullopt;
}

int64_t dtype_bytes(DType t, int64_t n) {
    return t == DType::fp4_e2m1 ? (n + 1) / 2 : n * kInfo[int(t)].bits / 8;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        float v = std::ldexp(float(man), -24);
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (man << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    float a = std::fabs(f);
    if (std::isnan(f)) return uint16_t(sign | 0x7e00u);
    if (a >= 65520.0f) return uint16_t(sign | 0x7c00u);
    if (a < 6.103515625e-05f) {  // subnormal: units of 2^-24, nearbyint is round-half-even
        return uint16_t(sign | uint16_t(std::nearbyint(a * 16777216.0f)));
    }
    uint32_t au = u & 0x7fffffffu;
    uint32_t exp = (au >> 23) - 112;
    uint32_t man = au & 0x7fffffu;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return uint16_t(sign | h);
}

float e4m3_to_f32(uint8_t v) {
    uint32_t s = v >> 7, e = (v >> 3) & 15, m = v & 7;
    if (e == 15 && m == 7) return f32_from_bits(0x7fc00000u);
    float r = e == 0 ? std::ldexp(float(m), -9) : std::ldexp(1.0f + float(m) / 8.0f, int(e) - 7);
    return s ? -r : r;
}

uint8_t f32_to_e4m3(float f) {
    if (std::isnan(f)) return 0x7f;
    uint8_t sign = std::signbit(f) ? 0x80 : 0;
    float a = std::fabs(f);
    if (a >= 448.0f) return uint8_t(sign | 0x7e);
    // Find the binade: normal values have exponent e in [-6, 8]; below 2^-6 the step is 2^-9.
    int e;
    std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
    int exp = e - 1;    // a in [2^exp, 2^(exp+1))
    if (exp < -6) exp = -6;
    float step = std::ldexp(1.0f, exp - 3);
    float q = std::nearbyint(a / step);  // round half to even (default rounding mode)
    float r = q * step;
    if (r >= 448.0f) return uint8_t(sign | 0x7e);
    if (r == 0.0f) return sign;
    int re;
    std::frexp(r, &re);
    int rexp = re - 1;
    if (rexp < -6) return uint8_t(sign | uint8_t(r / std::ldexp(1.0f, -9)));  // subnormal
    uint32_t mant = uint32_t(std::ldexp(r, -rexp) * 8.0f) - 8;
    return uint8_t(sign | uint8_t((rexp + 7) << 3) | uint8_t(mant));
}

uint8_t f32_to_e2m1(float f) {
    uint8_t sign = std::signbit(f) ? 8 : 0;
    float a = std::fabs(f);
    if (std::isnan(f)) return 7;
    // Magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6; midpoints tie to the even code.
    static const float mids[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
    uint8_t code = 0;
    while (code < 7 && a > mids[code]) ++code;
    if (code < 7 && a == mids[code] && (code & 1)) ++code;  // tie: round to even code
    return uint8_t(sign | code);
}

namespace {
// Element i of a buffer that may be misaligned (safetensors packs tensors back to back).
template <typename T>
inline T load_at(const void* src, int64_t i) {
    T v;
    std::memcpy(&v, static_cast<const uint8_t*>(src) + i * int64_t(sizeof(T)), sizeof(T));
    return v;
}
}  // namespace

void convert_to_f32(DType t, const void* src, float* dst, int64_t n) {
    switch (t) {
        case DType::f32:
            std::memcpy(dst, src, size_t(n) * 4);
            return;
        case DType::bf16: {
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_at<uint16_t>(src, i));
            return;
        }
        case DType::f16: {
            for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_at<uint16_t>(src, i));
            return;
        }
        case DType::f8_e4m3: {
            auto* s = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = e4m3_to_f32(s[i]);
            return;
        }
        case DType::f8_e8m0: {
            auto* s = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = e8m0_to_f32(s[i]);
            return;
        }
        case DType::fp4_e2m1: {
            auto* s = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = fp4_get(s, i);
            return;
        }
        case DType::i64: {
            for (int64_t i = 0; i < n; ++i) dst[i] = float(load_at<int64_t>(src, i));
            return;
        }
        case DType::i32: {
            for (int64_t i = 0; i < n; ++i) dst[i] = float(load_at<int32_t>(src, i));
            return;
        }
        case DType::i16: {
            for (int64_t i = 0; i < n; ++i) dst[i] = float(load_at<int16_t>(src, i));
            return;
        }
        case DType::i8: {
            auto* s = static_cast<const int8_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
            return;
        }
        case DType::u8:
        case DType::boolean: {
            auto* s = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
            return;
        }
        default:
            DSV4_ASSERT(false, "convert_to_f32: unsupported dtype {}", dtype_name(t));
    }
}

}  // namespace dsv4
