// CPU reference of the manifold-constrained hyper-connections (spec §5; HF DeepseekV4HyperConnection
// and DeepseekV4HyperHead). Order matters: softmax over each row of comb (+eps), then a column pass,
// then iters−1 (row, column) passes; comb is consumed transposed (new stream k sums comb[j,k]·X_j).
#include <cmath>
#include <vector>

#include "core/status.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4::cpu {

namespace {
inline float sigmoid(float v) {
    return 1.0f / (1.0f + std::exp(-v));
}

std::vector<float> to_f32(const WeightRef& w) {
    std::vector<float> v(size_t(w.numel()));
    for (int64_t r = 0; r < w.n_rows; ++r) w.row_to_f32(r, v.data() + r * w.n_cols);
    return v;
}

// mu[m] = ρ · (fn[m] · flatten(X_t)), ρ = 1/sqrt(mean(x²) + eps) over all hc·D values.
void mix_logits(const float* Xt, int64_t len, const std::vector<float>& fn, int64_t M, double norm_eps,
                float* mu) {
    float ss = 0.0f;
    for (int64_t i = 0; i < len; ++i) ss += Xt[i] * Xt[i];
    float rho = 1.0f / std::sqrt(ss / float(len) + float(norm_eps));
    for (int64_t m = 0; m < M; ++m) {
        const float* f = fn.data() + m * len;
        float acc = 0.0f;
        for (int64_t i = 0; i < len; ++i) acc += f[i] * Xt[i];
        mu[m] = acc * rho;
    }
}
}  // namespace

void hc_pre(const float* X, int64_t n, int64_t hc, int64_t D, const WeightRef& fn, const WeightRef& base,
            const WeightRef& scale, int sinkhorn_iters, double hc_eps, double norm_eps, float* y, float* post,
            float* comb) {
    const int64_t M = (2 + hc) * hc;
    DSV4_ASSERT(fn.n_rows == M && fn.n_cols == hc * D, "hc fn shape [{}, {}]", fn.n_rows, fn.n_cols);
    const std::vector<float> fnv = to_f32(fn), bv = to_f32(base), sv = to_f32(scale);
    const float eps = float(hc_eps);
#pragma omp parallel for schedule(static) if (n * M * hc * D >= (1 << 20))
    for (int64_t t = 0; t < n; ++t) {
        const float* Xt = X + t * hc * D;
        std::vector<float> mu(static_cast<size_t>(M)), pre(static_cast<size_t>(hc));
        mix_logits(Xt, hc * D, fnv, M, norm_eps, mu.data());
        for (int64_t j = 0; j < hc; ++j) {
            pre[size_t(j)] = sigmoid(sv[0] * mu[size_t(j)] + bv[size_t(j)]) + eps;
            post[t * hc + j] = 2.0f * sigmoid(sv[1] * mu[size_t(hc + j)] + bv[size_t(hc + j)]);
        }
        float* P = comb + t * hc * hc;
        for (int64_t j = 0; j < hc; ++j) {  // row softmax of the raw comb logits, then +eps
            float mx = -INFINITY;
            for (int64_t k = 0; k < hc; ++k) {
                int64_t m = 2 * hc + j * hc + k;
                P[j * hc + k] = sv[2] * mu[size_t(m)] + bv[size_t(m)];
                mx = std::max(mx, P[j * hc + k]);
            }
            float sum = 0.0f;
            for (int64_t k = 0; k < hc; ++k) sum += (P[j * hc + k] = std::exp(P[j * hc + k] - mx));
            for (int64_t k = 0; k < hc; ++k) P[j * hc + k] = P[j * hc + k] / sum + eps;
        }
        auto col_pass = [&] {
            for (int64_t k = 0; k < hc; ++k) {
                float s = 0.0f;
                for (int64_t j = 0; j < hc; ++j) s += P[j * hc + k];
                for (int64_t j = 0; j < hc; ++j) P[j * hc + k] /= (s + eps);
            }
        };
        col_pass();
        for (int it = 1; it < sinkhorn_iters; ++it) {
            for (int64_t j = 0; j < hc; ++j) {
                float s = 0.0f;
                for (int64_t k = 0; k < hc; ++k) s += P[j * hc + k];
                for (int64_t k = 0; k < hc; ++k) P[j * hc + k] /= (s + eps);
            }
            col_pass();
        }
        float* yt = y + t * D;
        for (int64_t d = 0; d < D; ++d) {
            float acc = 0.0f;
            for (int64_t j = 0; j < hc; ++j) acc += pre[size_t(j)] * Xt[j * D + d];
            yt[d] = acc;
        }
    }
}

void hc_post(const float* X, const float* F, const float* post, const float* comb, int64_t n, int64_t hc,
             int64_t D, float* Xout) {
#pragma omp parallel for schedule(static) if (n * hc * hc * D >= (1 << 18))
    for (int64_t t = 0; t < n; ++t) {
        const float* Xt = X + t * hc * D;
        const float* P = comb + t * hc * hc;
        for (int64_t k = 0; k < hc; ++k) {
            float* o = Xout + (t * hc + k) * D;
            const float pk = post[t * hc + k];
            for (int64_t d = 0; d < D; ++d) {
                float acc = pk * F[t * D + d];
                for (int64_t j = 0; j < hc; ++j) acc += P[j * hc + k] * Xt[j * D + d];
                o[d] = acc;
            }
        }
    }
}

void hc_head(const float* X, int64_t n, int64_t hc, int64_t D, const WeightRef& fn, const WeightRef& base,
             const WeightRef& scale, double hc_eps, double norm_eps, float* z) {
    DSV4_ASSERT(fn.n_rows == hc && fn.n_cols == hc * D, "hc_head fn shape [{}, {}]", fn.n_rows, fn.n_cols);
    const std::vector<float> fnv = to_f32(fn), bv = to_f32(base), sv = to_f32(scale);
#pragma omp parallel for schedule(static) if (n * hc * hc * D >= (1 << 18))
    for (int64_t t = 0; t < n; ++t) {
        const float* Xt = X + t * hc * D;
        std::vector<float> mu(static_cast<size_t>(hc));
        mix_logits(Xt, hc * D, fnv, hc, norm_eps, mu.data());
        for (int64_t j = 0; j < hc; ++j)
            mu[size_t(j)] = sigmoid(sv[0] * mu[size_t(j)] + bv[size_t(j)]) + float(hc_eps);
        for (int64_t d = 0; d < D; ++d) {
            float acc = 0.0f;
            for (int64_t j = 0; j < hc; ++j) acc += mu[size_t(j)] * Xt[j * D + d];
            z[t * D + d] = acc;
        }
    }
}

}  // namespace dsv4::cpu
