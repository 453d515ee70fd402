// Quantized-format kernels of the CPU reference (spec §10): fast row dequantization of FP8/FP4 weights
// (256-entry e4m3 and 16-entry e2m1 tables), the REF quantize→dequantize simulations (FP8 activations
// block 128, FP8 KV nope dims block 64, FP4 indexer q/k block 32), the Sylvester Hadamard transform, and
// the weight quantizers used by `dsv4 quantize`. Tested against hand-computed values in
// tests/unit/test_quant_ops.cpp; the lossless FP4→FP8 conversion exhaustively in test_quant_convert.cpp.
#pragma once

#include <cstdint>

#include "ops/weight.h"

namespace dsv4::cpu {

// ---- scales -----------------------------------------------------------------------------------------
// UE8M0 byte of the power-of-two scale 2^ceil(log2(amax / qmax)) (REF fast_round_scale), so that
// amax / scale <= qmax never saturates. amax must be > 0 and finite; the result is clamped to [0, 254].
uint8_t pow2_scale_e8m0(float amax, float qmax);

// ---- weight rows --------------------------------------------------------------------------------------
// Row r of any WeightRef as f32: the same values as WeightRef::row_to_f32, with table lookups for the
// FP8/FP4 formats (the hot loop of cpu::linear on quantized weights).
void dequant_row(const WeightRef& w, int64_t r, float* out);

// ---- REF simulations (in place; spec §10.4, §10.5) ----------------------------------------------------
// Each contiguous block of `block` values of x[0, n) (the last may be partial):
// s = 2^ceil(log2(max(amax, 1e-4) / 448)), x ← e4m3_RNE(clamp(x / s, ±448)) · s.
void fp8_roundtrip(float* x, int64_t n, int64_t block);
// The same on the first n values of each of `rows` rows spaced ld apart.
void fp8_roundtrip_rows(float* x, int64_t rows, int64_t ld, int64_t n, int64_t block);
// s = 2^ceil(log2(max(amax, 6·2^−126) / 6)), x ← e2m1_RNE(clamp(x / s, ±6)) · s.
void fp4_roundtrip(float* x, int64_t n, int64_t block);
// In place orthonormal Walsh–Hadamard transform of each row of d values (d a power of two):
// x ← H_d x / sqrt(d) with H_d[i][j] = (−1)^popcount(i & j) (REF rotate_activation).
void hadamard_rows(float* x, int64_t rows, int64_t d);

// ---- weight quantizers (the official checkpoint formats) ---------------------------------------------
// W [N, K] f32 -> q [N, K] e4m3 and scale [ceil(N/128), ceil(K/128)] UE8M0, one power-of-two scale per
// 128x128 block (partial edge blocks use their own amax); an all-zero block gets scale 1.
void quantize_fp8_128(const float* W, int64_t N, int64_t K, uint8_t* q, uint8_t* scale);
// W [N, K] f32 (K % 32 == 0) -> packed [N, K/2] (low nibble = even k) and scale [N, K/32].
void quantize_fp4_32(const float* W, int64_t N, int64_t K, uint8_t* packed, uint8_t* scale);
// The official FP4 -> FP8 expert conversion (REF convert.py, spec §10.3): per 128x128 block, block
// scale = s_max / 2^6 where s_max is the largest of its per-32 scales; element = e2m1 · s_sub / block
// scale in e4m3. Returns the number of elements that are not exact (a sub-scale below 2^−14 · s_max).
int64_t fp4_to_fp8_128(const uint8_t* packed, const uint8_t* scale32, int64_t N, int64_t K, uint8_t* q,
                       uint8_t* scale128);

}  // namespace dsv4::cpu
