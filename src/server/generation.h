// Generation: the worker-side half of one request. It reads the request's TokenEvents, detokenizes
// incrementally (UTF-8 holdback), runs the reasoning/tool parser (chat) and the stop-string matcher,
// and aborts the engine sequence when a stop string matches or the client goes away.
// Used by both the streaming and the non-streaming paths, so their outputs agree by construction.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/stop_matcher.h"
#include "server/output_parser.h"
#include "server/server_context.h"
#include "tokenizer/stream_decoder.h"

namespace dsv4 {

struct GenerationOutput {
    std::vector<ParsedDelta> deltas;  // chat: reasoning/content/tool pieces; completions: content only
    std::vector<nlohmann::ordered_json> logprobs;  // one entry per token (chat `logprobs.content` shape)
    bool finished = false;
};

class Generation {
public:
    Generation(ServerContext& ctx, RequestStream rs, int n_prompt, bool chat, bool thinking,
               std::vector<std::string> stop, bool include_stop, bool want_logprobs);
    ~Generation();

    // Waits up to `timeout` for events and appends what they produce. Returns true once finished.
    bool poll(std::chrono::milliseconds timeout, GenerationOutput& out);
    // Client went away or the server gives up: frees the engine sequence now.
    void abort();

    uint64_t request_id() const { return rs_.id; }
    // "stop" | "length" | "tool_calls" | "abort" | "error"; valid once finished
    std::string finish_reason() const;
    const std::string& error() const { return error_; }
    int prompt_tokens() const { return n_prompt_; }
    int completion_tokens() const { return n_tokens_; }
    int cached_tokens() const { return n_cached_; }
    int reasoning_tokens() const { return n_reasoning_tokens_; }
    int tool_calls() const { return parser_.n_tool_calls(); }
    int incomplete_tool() const { return parser_.incomplete_tool(); }

private:
    void on_text(const std::string& text, GenerationOutput& out, bool final);
    nlohmann::ordered_json logprob_entry(int32_t token, float lp, const std::vector<TokenLogprob>& top) const;

    ServerContext& ctx_;
    RequestStream rs_;
    bool chat_;
    StreamDecoder decoder_;
    OutputParser parser_;
    StopMatcher stop_;
    bool want_logprobs_;
    bool finished_ = false;
    bool aborted_ = false;
    FinishReason finish_ = FinishReason::none;
    std::string error_;
    int n_prompt_ = 0, n_tokens_ = 0, n_cached_ = 0, n_reasoning_tokens_ = 0;
};

// tokens as text for logprobs: the token's bytes, invalid UTF-8 replaced
std::string token_text(const Tokenizer& tok, int32_t id);

}  // namespace dsv4
