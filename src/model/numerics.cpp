// Numerics::reference roundings (spec §10.4 activation FP8, §10.5 KV FP8 and indexer Hadamard + FP4).
#include "model/numerics.h"

#include <vector>

#include "ops/cpu/ops_cpu.h"
#include "ops/cpu/quant.h"

namespace dsv4 {

const char* numerics_name(Numerics n) {
    return n == Numerics::reference ? "reference" : "exact";
}

Status check_reference_numerics(const Dsv4Config& cfg) {
    const int d = cfg.index_head_dim;
    if (d <= 0 || (d & (d - 1)) != 0)
        return error(
            "reference numerics need index_head_dim to be a power of two (Hadamard transform), found {}", d);
    return Status::ok();
}

void numerics_linear(const ForwardCtx& ctx, const float* x, int64_t n, const WeightRef& w, float* y) {
    if (!ctx.ref_numerics || (w.dtype != DType::f8_e4m3 && w.dtype != DType::fp4_e2m1)) {
        cpu::linear(x, n, w, y);
        return;
    }
    const int64_t K = w.n_cols;
    std::vector<float> xq(x, x + n * K);
    cpu::fp8_roundtrip_rows(xq.data(), n, K, K, 128);
    cpu::linear(xq.data(), n, w, y);
}

void round_kv_fp8(float* x, int64_t rows, int64_t d, int64_t nope) {
    cpu::fp8_roundtrip_rows(x, rows, d, nope, 64);
}

void round_index_fp4(float* x, int64_t rows, int64_t d) {
    cpu::hadamard_rows(x, rows, d);
    for (int64_t r = 0; r < rows; ++r) cpu::fp4_roundtrip(x + r * d, d, 32);
}

}  // namespace dsv4
