// Sampler: one token from one row of logits, in the order of serving-design §5 (HF `generate` is the
// oracle): raw log-softmax kept for logprobs -> logit_bias and min_tokens masks -> repetition, frequency
// and presence penalties -> greedy (T < 1e-5) or temperature -> top-k -> top-p -> min-p -> Gumbel-max.
// The noise is keyed by (seed, position, vocab index), so results do not depend on the batch or on how
// the sequence was scheduled. The token choice (greedy .. Gumbel-max) is cpu::sample_row
// (ops/cpu/sample.cpp), which the GPU sampler cuda::sample_rows matches token for token. Tested in
// tests/unit/test_sampler.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "ops/sample_params.h"  // keyed_uniform, cpu::sample_row
#include "runtime/request.h"

namespace dsv4 {

// Per-sequence history the penalties need: which ids the prompt holds, how often each output id occurs.
class PenaltyState {
public:
    void set_prompt(std::span<const int32_t> prompt);
    void add_output(int32_t token) {
        output_counts_[token]++;
        n_output_++;
    }
    bool in_prompt(int32_t token) const;
    const std::unordered_map<int32_t, int>& output_counts() const { return output_counts_; }
    const std::vector<int32_t>& prompt_ids() const { return prompt_ids_; }  // sorted, unique
    int n_output() const { return n_output_; }

private:
    std::vector<int32_t> prompt_ids_;
    std::unordered_map<int32_t, int> output_counts_;
    int n_output_ = 0;
};

struct SampleResult {
    int32_t token = 0;
    float logprob = 0.0f;           // of `token` under the raw distribution
    std::vector<TokenLogprob> top;  // params.top_logprobs most likely ids, raw distribution
};

// `position` is the absolute position of the token being sampled; `eos_id` is masked during min_tokens.
SampleResult sample_token(std::span<const float> logits, const SamplingParams& params,
                          const PenaltyState& history, int64_t position, int32_t eos_id);

}  // namespace dsv4
