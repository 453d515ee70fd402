// CPU reference of the token choice (steps 4-8 of runtime/sampler.h): greedy or temperature, top-k, top-p,
// min-p, Gumbel-max with keyed noise. runtime/sampler.cpp calls it after bias/masks/penalties, and
// cuda::sample_rows is tested against it bitwise (test-ops `sample_rows`); note: docs/kernels/sample.md.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/status.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int32_t argmax(const float* x, int64_t n) {  // first maximum: ties go to the lower id
    int32_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = int32_t(i);
    return best;
}

}  // namespace

int32_t sample_row(const float* x, int64_t n_vocab, const SampleParams& sp, int64_t position) {
    DSV4_ASSERT(n_vocab >= 1, "sample_row: n_vocab = {}", n_vocab);
    // (4) greedy or temperature; the Gumbel score of id i is x_i / T + g_i (argmax of log p_i + g_i)
    if (sp.temperature < 1e-5f) return argmax(x, n_vocab);
    const double inv_t = 1.0 / double(sp.temperature);
    auto score = [&](int32_t id) { return gumbel_score(x[id], inv_t, sp.seed, position, id); };
    int32_t token = 0;
    const bool truncate = (sp.top_k > 0 && sp.top_k < n_vocab) || sp.top_p < 1.0f || sp.min_p > 0.0f;
    if (!truncate) {
        double best = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < n_vocab; ++i) {
            if (x[i] == kNegInf) continue;  // masked ids never win; skip their noise
            const double s = score(int32_t(i));
            if (s > best) best = s, token = int32_t(i);
        }
        return token;
    }
    // (5) top-k, (6) top-p, (7) min-p on ids sorted by descending logit (ties: lower id first)
    std::vector<int32_t> order(static_cast<size_t>(n_vocab));
    std::iota(order.begin(), order.end(), 0);
    auto by_logit = [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
    int64_t n_keep = n_vocab;
    if (sp.top_k > 0 && sp.top_k < n_vocab) {
        n_keep = sp.top_k;
        std::partial_sort(order.begin(), order.begin() + n_keep, order.end(), by_logit);
    } else {
        std::sort(order.begin(), order.end(), by_logit);
    }
    while (n_keep > 1 && x[order[n_keep - 1]] == kNegInf) n_keep--;
    const double mx = x[order[0]];
    std::vector<double> prob(static_cast<size_t>(n_keep));  // unnormalized, prob[0] == 1
    double sum = 0.0;
    for (int64_t i = 0; i < n_keep; ++i) sum += prob[i] = sample_prob(x[order[i]], mx, inv_t);
    if (sp.top_p < 1.0f) {
        double cum = 0.0;
        for (int64_t i = 0; i < n_keep; ++i) {
            cum += prob[i] / sum;
            // the smallest prefix reaching p (always >= 1 token); the slack absorbs the rounding of a float p
            // such as 0.8 against sums of exact probabilities
            if (cum >= double(sp.top_p) - 1e-6) {
                n_keep = i + 1;
                break;
            }
        }
    }
    if (sp.min_p > 0.0f) {
        int64_t cut = 1;
        while (cut < n_keep && prob[cut] >= double(sp.min_p) * prob[0]) cut++;
        n_keep = cut;
    }
    // (8) Gumbel-max over the kept ids; equal scores go to the earlier id in the sorted order
    double best = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n_keep; ++i) {
        if (prob[i] == 0.0) continue;
        const double s = score(order[i]);
        if (s > best) best = s, token = order[i];
    }
    return token;
}

}  // namespace dsv4::cpu
