// The roundings of Numerics::reference (spec §10.4-10.5), applied by the model blocks at the points where
// the REF demo applies them. Under Numerics::exact every function here is the plain f32 path.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "format/config.h"
#include "model/blocks.h"

namespace dsv4 {

// Checks that the config's dims allow the reference roundings (Hadamard needs a power-of-two index head).
Status check_reference_numerics(const Dsv4Config& cfg);

// y = x · Wᵀ; under reference numerics and an FP8/FP4 weight, x is first rounded to FP8 e4m3 in blocks
// of 128 along K with power-of-two scales (REF act_quant before fp8_gemm / fp4_gemm).
void numerics_linear(const ForwardCtx& ctx, const float* x, int64_t n, const WeightRef& w, float* y);

// Rows of d values: the first `nope` of each rounded through FP8 in blocks of 64 (window kv, main
// compressed entries); the RoPE dims stay as they are.
void round_kv_fp8(float* x, int64_t rows, int64_t d, int64_t nope);
// Rows of d values (indexer q per head, index keys): Hadamard_d, then FP4 e2m1 in blocks of 32.
void round_index_fp4(float* x, int64_t rows, int64_t d);

}  // namespace dsv4
