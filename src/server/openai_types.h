// OpenAI request bodies -> native types, with every limit of serving-design §6 checked here (HTTP layer),
// so a bad request gets a 4xx with an OpenAI-shaped error and never reaches the engine.
// Tested by the bad-request table in tests/server/test_openai_types.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/request.h"

namespace dsv4 {

struct ApiError {
    int status = 400;
    std::string type = "invalid_request_error";
    std::string message;
    std::string param;  // empty -> null
    std::string code;   // empty -> null
};

// {"error": {"message", "type", "param", "code"}}
std::string error_body(const ApiError& e);

struct ParseLimits {
    std::string model_name;        // requests naming another model get 404
    int64_t vocab = 0;             // for logit_bias / stop_token_ids / prompt ids
    bool default_thinking = true;  // DeepSeek API default
};

struct GenerationParams {
    SamplingParams sampling;
    bool max_tokens_given = false;
    bool seed_given = false;
    std::vector<std::string> stop;
    bool include_stop = false;  // include_stop_str_in_output
    bool stream = false;
    bool include_usage = false;
    bool logprobs = false;
    std::string cache_salt;
};

struct ChatRequest {
    GenerationParams gen;
    nlohmann::ordered_json messages;  // normalized: content is a string, tool arguments JSON strings
    nlohmann::ordered_json tools;     // null when none or tool_choice == "none"
    bool thinking = true;
    std::string reasoning_effort;  // "", "high" or "max" (xhigh -> max)
};

struct CompletionRequest {
    GenerationParams gen;
    std::string prompt_text;
    std::vector<int32_t> prompt_ids;
    bool prompt_is_ids = false;
    bool echo = false;
};

bool parse_chat_request(std::string_view body, const ParseLimits& lim, ChatRequest& out, ApiError& err);
bool parse_completion_request(std::string_view body, const ParseLimits& lim, CompletionRequest& out,
                              ApiError& err);

}  // namespace dsv4
