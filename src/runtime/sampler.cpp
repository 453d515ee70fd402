// Sampler: see the header for the order of steps and why it is written down.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dsv4 {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

void PenaltyState::set_prompt(std::span<const int32_t> prompt) {
    prompt_ids_.assign(prompt.begin(), prompt.end());
    std::sort(prompt_ids_.begin(), prompt_ids_.end());
    prompt_ids_.erase(std::unique(prompt_ids_.begin(), prompt_ids_.end()), prompt_ids_.end());
}

bool PenaltyState::in_prompt(int32_t token) const {
    return std::binary_search(prompt_ids_.begin(), prompt_ids_.end(), token);
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

    // (4)-(8) greedy or temperature, top-k, top-p, min-p, Gumbel-max: the one CPU implementation, shared
    // with the GPU sampler's tests
    const SampleParams sp{p.temperature, p.top_k, p.top_p, p.min_p, p.seed};
    res.token = cpu::sample_row(x.data(), n_vocab, sp, position);

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
