// CPU reference RMSNorm (HF DeepseekV4RMSNorm: fp32 variance, eps inside the sqrt), interleaved partial
// RoPE (spec §6.3: pairs (2i, 2i+1), angle pos·ω_i as an fp32 product) and the embedding gather.
#include <cmath>
#include <vector>

#include "core/status.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4::cpu {

void rms_norm(const float* x, int64_t rows, int64_t d, const WeightRef* w, double eps, float* out) {
    std::vector<float> wv;
    if (w) {
        DSV4_ASSERT(w->numel() == d, "rms_norm weight has {} elements, expected {}", w->numel(), d);
        wv.resize(size_t(d));
        w->row_to_f32(0, wv.data());
    }
#pragma omp parallel for schedule(static) if (rows * d >= (1 << 18))
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * d;
        float* o = out + r * d;
        float ss = 0.0f;
        for (int64_t i = 0; i < d; ++i) ss += xr[i] * xr[i];
        float inv = 1.0f / std::sqrt(ss / float(d) + float(eps));
        for (int64_t i = 0; i < d; ++i) o[i] = w ? xr[i] * inv * wv[size_t(i)] : xr[i] * inv;
    }
}

void rope(float* x, int64_t rows, int64_t heads, int64_t head_stride, int64_t off, int64_t n_pairs,
          const int64_t* pos, const float* inv_freq, bool inverse) {
#pragma omp parallel for schedule(static) if (rows * heads * n_pairs >= (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < n_pairs; ++i) {
            float angle = float(pos[r]) * inv_freq[i];  // fp32 product, as HF's fp32 matmul
            float c = std::cos(angle), s = std::sin(angle);
            if (inverse) s = -s;
            for (int64_t h = 0; h < heads; ++h) {
                float* p = x + (r * heads + h) * head_stride + off + 2 * i;
                float x0 = p[0], x1 = p[1];
                p[0] = x0 * c - x1 * s;
                p[1] = x0 * s + x1 * c;
            }
        }
    }
}

void embed(const int32_t* ids, int64_t n, const WeightRef& table, float* out) {
    for (int64_t i = 0; i < n; ++i) {
        DSV4_ASSERT(ids[i] >= 0 && ids[i] < table.n_rows, "token id {} out of [0, {})", ids[i], table.n_rows);
        table.row_to_f32(ids[i], out + i * table.n_cols);
    }
}

}  // namespace dsv4::cpu
