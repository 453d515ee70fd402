// CPU reference of the MoE router (spec §7.1: sqrtsoftplus, bias for selection only, hash routing via
// tid2eid, normalised and scaled weights) and the clamped SwiGLU (spec §7.2), following HF
// DeepseekV4TopkRouter / DeepseekV4Experts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/status.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4::cpu {

namespace {
// PyTorch softplus (beta 1, threshold 20): x for x > 20.
inline float softplus(float x) {
    return x > 20.0f ? x : std::log1p(std::exp(x));
}
}  // namespace

void moe_route(const float* logits, int64_t n, int64_t E, int64_t k, const int32_t* ids,
               const WeightRef* tid2eid, const WeightRef* bias, double route_scale, int32_t* out_idx,
               float* out_w) {
    std::vector<float> b(size_t(E), 0.0f);
    if (bias) bias->row_to_f32(0, b.data());
    for (int64_t t = 0; t < n; ++t) {
        std::vector<float> s(static_cast<size_t>(E));
        for (int64_t e = 0; e < E; ++e) s[size_t(e)] = std::sqrt(softplus(logits[t * E + e]));
        int32_t* idx = out_idx + t * k;
        if (tid2eid) {
            DSV4_ASSERT(tid2eid->dtype == DType::i64 && tid2eid->n_cols == k, "tid2eid must be i64 [V, {}]",
                        k);
            DSV4_ASSERT(ids[t] >= 0 && ids[t] < tid2eid->n_rows, "token id {} outside tid2eid", ids[t]);
            // NOTE: safetensors packs tensors back to back, so an i64 table in the mmap may be misaligned.
            const auto* row = static_cast<const uint8_t*>(tid2eid->data) + (int64_t(ids[t]) * k) * 8;
            for (int64_t j = 0; j < k; ++j) {
                int64_t e;
                std::memcpy(&e, row + j * 8, 8);
                DSV4_ASSERT(e >= 0 && e < E, "tid2eid[{}] = {} outside [0, {})", ids[t], e, E);
                idx[j] = int32_t(e);
            }
        } else {
            std::vector<int32_t> order(static_cast<size_t>(E));
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t c) {
                return s[size_t(a)] + b[size_t(a)] > s[size_t(c)] + b[size_t(c)];
            });
            for (int64_t j = 0; j < k; ++j) idx[j] = order[size_t(j)];
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < k; ++j) sum += s[size_t(idx[j])];
        for (int64_t j = 0; j < k; ++j)
            out_w[t * k + j] = s[size_t(idx[j])] / (sum + 1e-20f) * float(route_scale);
    }
}

void swiglu_clamp(const float* g, const float* u, int64_t n, int64_t I, int64_t ldg, double limit, float* h) {
    const float lim = float(limit);
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t i = 0; i < I; ++i) {
            float gv = g[t * ldg + i], uv = u[t * ldg + i];
            if (lim > 0.0f) {
                gv = std::min(gv, lim);
                uv = std::clamp(uv, -lim, lim);
            }
            h[t * I + i] = gv / (1.0f + std::exp(-gv)) * uv;
        }
    }
}

}  // namespace dsv4::cpu
