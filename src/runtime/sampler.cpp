// Sampler: see the header for the order of steps and why it is written down.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dsv4 {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int32_t argmax(std::span<const float> x) {
    int32_t best = 0;
    for (size_t i = 1; i < x.size(); ++i)
        if (x[i] > x[best]) best = int32_t(i);
    return best;
}

}  // namespace

void PenaltyState::set_prompt(std::span<const int32_t> prompt) {
    prompt_ids_.assign(prompt.begin(), prompt.end());
    std::sort(prompt_ids_.begin(), prompt_ids_.end());
    prompt_ids_.erase(std::unique(prompt_ids_.begin(), prompt_ids_.end()), prompt_ids_.end());
}

bool PenaltyState::in_prompt(int32_t token) const {
    return std::binary_search(prompt_ids_.begin(), prompt_ids_.end(), token);
}

double keyed_uniform(uint64_t seed, int64_t position, int64_t index) {
    uint64_t z = splitmix64(seed ^ splitmix64(uint64_t(position) * 0xd1b54a32d192ed03ull ^ uint64_t(index)));
    return (double(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // 53 bits, never 0 or 1
}

SampleResult sample_token(std::span<const float> logits, const SamplingParams& p, const PenaltyState& history,
                          int64_t position, int32_t eos_id) {
    const int64_t n_vocab = int64_t(logits.size());
    SampleResult res;

    // (1) raw distribution, for returned logprobs: only its log-normalizer is needed per step
    float raw_max = kNegInf;
    for (float v : logits) raw_max = std::max(raw_max, v);
    double raw_sum = 0.0;
    for (float v : logits)
        if (v != kNegInf) raw_sum += std::exp(double(v) - raw_max);
    const float lse = raw_max + float(std::log(raw_sum));

    // (2) bias and masks, (3) penalties; the logits are copied only when something changes them
    const bool mask_stops = history.n_output() < p.min_tokens;
    const bool modify = !p.logit_bias.empty() || mask_stops || p.repetition_penalty != 1.0f ||
                        p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
    std::vector<float> modified;
    std::span<const float> x = logits;
    if (modify) {
        modified.assign(logits.begin(), logits.end());
        std::vector<float>& m = modified;
        for (auto [id, bias] : p.logit_bias)
            if (id >= 0 && id < n_vocab) m[id] += bias;
        if (mask_stops) {
            if (eos_id >= 0 && eos_id < n_vocab) m[eos_id] = kNegInf;
            for (int32_t id : p.stop_token_ids)
                if (id >= 0 && id < n_vocab) m[id] = kNegInf;
        }
        // repetition over prompt + output (HF rule), frequency/presence over output counts (OpenAI rule)
        if (p.repetition_penalty != 1.0f) {
            auto apply = [&](int32_t id) {
                if (id < 0 || id >= n_vocab) return;
                m[id] = m[id] > 0 ? m[id] / p.repetition_penalty : m[id] * p.repetition_penalty;
            };
            for (int32_t id : history.prompt_ids()) apply(id);
            for (auto& [id, cnt] : history.output_counts())
                if (!history.in_prompt(id)) apply(id);
        }
        if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
            for (auto& [id, cnt] : history.output_counts())
                if (id >= 0 && id < n_vocab) m[id] -= p.frequency_penalty * float(cnt) + p.presence_penalty;
        }
        x = modified;
    }

    // (4) greedy or temperature; the Gumbel score of id i is x_i / T + g_i (argmax of log p_i + g_i)
    const double inv_t = p.temperature < 1e-5f ? 0.0 : 1.0 / double(p.temperature);
    auto gumbel_score = [&](int32_t id) {
        return double(x[id]) * inv_t - std::log(-std::log(keyed_uniform(p.seed, position, id)));
    };
    const bool truncate = (p.top_k > 0 && p.top_k < n_vocab) || p.top_p < 1.0f || p.min_p > 0.0f;
    if (p.temperature < 1e-5f) {
        res.token = argmax(x);
    } else if (!truncate) {
        double best = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < n_vocab; ++i) {
            if (x[i] == kNegInf) continue;  // masked ids never win; skip their noise
            const double score = gumbel_score(int32_t(i));
            if (score > best) best = score, res.token = int32_t(i);
        }
    } else {
        // (5) top-k, (6) top-p, (7) min-p on ids sorted by descending logit (ties: lower id first)
        std::vector<int32_t> order(static_cast<size_t>(n_vocab));
        std::iota(order.begin(), order.end(), 0);
        auto by_logit = [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
        int64_t n_keep = n_vocab;
        if (p.top_k > 0 && p.top_k < n_vocab) {
            n_keep = p.top_k;
            std::partial_sort(order.begin(), order.begin() + n_keep, order.end(), by_logit);
        } else {
            std::sort(order.begin(), order.end(), by_logit);
        }
        while (n_keep > 1 && x[order[n_keep - 1]] == kNegInf) n_keep--;
        const double mx = x[order[0]];
        std::vector<double> prob(static_cast<size_t>(n_keep));  // unnormalized, prob[0] == 1
        double sum = 0.0;
        for (int64_t i = 0; i < n_keep; ++i) sum += prob[i] = std::exp((double(x[order[i]]) - mx) * inv_t);
        if (p.top_p < 1.0f) {
            double cum = 0.0;
            for (int64_t i = 0; i < n_keep; ++i) {
                cum += prob[i] / sum;
                // the smallest prefix reaching p (always >= 1 token); the slack absorbs the rounding of a
                // float p such as 0.8 against sums of exact probabilities
                if (cum >= double(p.top_p) - 1e-6) {
                    n_keep = i + 1;
                    break;
                }
            }
        }
        if (p.min_p > 0.0f) {
            int64_t cut = 1;
            while (cut < n_keep && prob[cut] >= double(p.min_p) * prob[0]) cut++;
            n_keep = cut;
        }
        // (8) Gumbel-max over the kept ids
        double best = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < n_keep; ++i) {
            if (prob[i] == 0.0) continue;
            const double score = gumbel_score(order[i]);
            if (score > best) best = score, res.token = order[i];
        }
    }

    res.logprob = logits[res.token] - lse;
    if (p.top_logprobs > 0) {
        const int64_t k = std::min<int64_t>(p.top_logprobs, n_vocab);
        std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
        std::iota(ids.begin(), ids.end(), 0);
        std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
            return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
        for (int64_t i = 0; i < k; ++i) res.top.push_back({ids[i], logits[ids[i]] - lse});
    }
    return res;
}

}  // namespace dsv4
