// Request, SamplingParams and TokenEvent: the native types that cross the engine's queues. JSON never
// reaches the engine (style.md §2); the server turns OpenAI bodies into these after validating them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/channel.h"

namespace dsv4 {

struct SamplingParams {
    float temperature = 1.0f;         // < 1e-5 means greedy
    int top_k = -1;                   // -1: off
    float top_p = 1.0f;               // (0, 1]
    float min_p = 0.0f;               // [0, 1], relative to the most likely token
    float repetition_penalty = 1.0f;  // HF rule over prompt + output: logit>0 ? /r : *r
    float presence_penalty = 0.0f;    // OpenAI rule over output counts
    float frequency_penalty = 0.0f;
    uint64_t seed = 0;  // always explicit by the time it reaches the engine
    int max_tokens = 16;
    int min_tokens = 0;  // EOS and stop ids are masked before this many outputs
    bool ignore_eos = false;
    std::vector<int32_t> stop_token_ids;
    std::vector<std::pair<int32_t, float>> logit_bias;
    int top_logprobs = -1;  // -1: no logprobs; 0..20: chosen token's logprob + that many alternatives
};

struct Request {
    uint64_t id = 0;  // assigned by Engine::submit
    std::vector<int32_t> prompt;
    SamplingParams sampling;
    std::string cache_salt;  // isolates prefix-cache entries (per tenant)
};

enum class FinishReason { none, stop, length, abort, error };
const char* finish_reason_name(FinishReason r);

struct TokenLogprob {
    int32_t token = 0;
    float logprob = 0.0f;
};

// One event per generated token; the last event of a request has finish != none (it may carry no token
// when the request was aborted or failed before producing one).
struct TokenEvent {
    uint64_t request_id = 0;
    bool has_token = false;
    int32_t token = 0;
    float logprob = 0.0f;
    std::vector<TokenLogprob> top_logprobs;
    FinishReason finish = FinishReason::none;
    std::string error;  // when finish == error
    int n_prompt = 0;   // filled on the last event
    int n_cached = 0;   // prompt tokens served from the prefix cache
    int n_generated = 0;
};

using EventChannel = Channel<TokenEvent>;

}  // namespace dsv4
