// CPU reference of the attention-side ops: sink attention over explicit key lists (spec §6.7),
// softmax-gated compressor pooling (spec §6.5), Lightning-indexer scores and the deterministic top-k
// (spec §6.6: score descending, ties to the lower index, −0 == +0).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/cpu/ops_cpu.h"

namespace dsv4::cpu {

void sink_attention(const float* q, int64_t n, int64_t H, int64_t d, const float* kv, const int32_t* idx,
                    int64_t max_keys, const WeightRef& sink, float scale, float* out) {
    std::vector<float> sinks(static_cast<size_t>(H));
    sink.row_to_f32(0, sinks.data());
#pragma omp parallel for collapse(2) schedule(static) if (n * H * max_keys * d >= (1 << 18))
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t h = 0; h < H; ++h) {
            const float* qh = q + (t * H + h) * d;
            const int32_t* keys = idx + t * max_keys;
            float* o = out + (t * H + h) * d;
            std::vector<float> logit(static_cast<size_t>(max_keys));
            float mx = sinks[size_t(h)];
            for (int64_t j = 0; j < max_keys; ++j) {
                if (keys[j] < 0) continue;
                const float* k = kv + int64_t(keys[j]) * d;
                float acc = 0.0f;
                for (int64_t i = 0; i < d; ++i) acc += qh[i] * k[i];
                logit[size_t(j)] = acc * scale;
                mx = std::max(mx, logit[size_t(j)]);
            }
            float denom = std::exp(sinks[size_t(h)] - mx);  // the sink adds mass, no value
            for (int64_t i = 0; i < d; ++i) o[i] = 0.0f;
            for (int64_t j = 0; j < max_keys; ++j) {
                if (keys[j] < 0) continue;
                float p = std::exp(logit[size_t(j)] - mx);
                denom += p;
                const float* k = kv + int64_t(keys[j]) * d;
                for (int64_t i = 0; i < d; ++i) o[i] += p * k[i];
            }
            for (int64_t i = 0; i < d; ++i) o[i] /= denom;
        }
    }
}

void compress_pool(const float* a, const float* z, int64_t slots, int64_t lda, int64_t ldz, int64_t d,
                   float* C) {
    for (int64_t i = 0; i < d; ++i) {
        float mx = -INFINITY;
        for (int64_t s = 0; s < slots; ++s) mx = std::max(mx, z[s * ldz + i]);
        float sum = 0.0f, acc = 0.0f;
        for (int64_t s = 0; s < slots; ++s) {
            float e = std::exp(z[s * ldz + i] - mx);
            sum += e;
            acc += e * a[s * lda + i];
        }
        C[i] = acc / sum;
    }
}

void indexer_scores(const float* qi, const float* w, int64_t n, int64_t Hi, int64_t di, const float* keys,
                    int64_t n_keys, const int64_t* n_avail, float* scores) {
#pragma omp parallel for schedule(static) if (n * n_keys * Hi * di >= (1 << 18))
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t s = 0; s < n_keys; ++s) {
            if (s >= n_avail[t]) {
                scores[t * n_keys + s] = -INFINITY;
                continue;
            }
            const float* k = keys + s * di;
            float acc = 0.0f;
            for (int64_t h = 0; h < Hi; ++h) {
                const float* qh = qi + (t * Hi + h) * di;
                float dot = 0.0f;
                for (int64_t i = 0; i < di; ++i) dot += qh[i] * k[i];
                acc += w[t * Hi + h] * std::max(dot, 0.0f);
            }
            scores[t * n_keys + s] = acc;
        }
    }
}

void topk_lower_index(const float* scores, int64_t n, int64_t n_cols, const int64_t* n_valid, int64_t k,
                      int32_t* sel) {
    for (int64_t t = 0; t < n; ++t) {
        const float* row = scores + t * n_cols;
        const int64_t nv = std::min(n_valid[t], n_cols);
        std::vector<int32_t> order(static_cast<size_t>(nv));
        std::iota(order.begin(), order.end(), 0);
        // -0.0 == +0.0 under operator<, so a stable sort on '>' already treats them as equal.
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
        for (int64_t j = 0; j < k; ++j) sel[t * k + j] = j < nv ? order[size_t(j)] : -1;
    }
}

}  // namespace dsv4::cpu
