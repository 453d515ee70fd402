// DeepSeek V4 chat format: encode_messages() renders OpenAI-style messages to the prompt text,
// following the official encoding/encoding_dsv4.py (rules: shared/docs/tokenizer-and-chat.md §2.1).
// Byte-identical to the four official golden pairs (tests/unit/test_chat_encoding.cpp). Encode the
// result with Tokenizer::encode(text, allow_special=true); control tokens are written as text.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace dsv4 {

// The control strings of the V4 chat format (their ids come from tokenizer.json).
namespace chat_tokens {
inline constexpr const char* kBos = "<｜begin▁of▁sentence｜>";
inline constexpr const char* kEos = "<｜end▁of▁sentence｜>";
inline constexpr const char* kUser = "<｜User｜>";
inline constexpr const char* kAssistant = "<｜Assistant｜>";
inline constexpr const char* kLatestReminder = "<｜latest_reminder｜>";
inline constexpr const char* kThinkBegin = "<think>";
inline constexpr const char* kThinkEnd = "</think>";
inline constexpr const char* kDsml = "｜DSML｜";
}  // namespace chat_tokens

struct ChatOptions {
    bool thinking = false;      // thinking_mode "thinking" (true) or "chat" (false)
    bool drop_thinking = true;  // drop reasoning of turns before the last user message (off if any tools)
    bool add_bos = true;        // add_default_bos_token
    // reasoning_effort: the key into effort_prefixes; empty or absent -> no prefix.
    std::string reasoning_effort;
    // Prefix text per effort, written after BOS in thinking mode. The default is the original V4
    // revision ("max" only); the 0731 refresh uses other texts, so configure it per checkpoint.
    std::map<std::string, std::string> effort_prefixes = default_effort_prefixes();

    static std::map<std::string, std::string> default_effort_prefixes();
};

// messages: an array of {"role": system|user|assistant|tool|developer|latest_reminder, "content",
// optional "reasoning_content", "tool_calls", "tool_call_id", "tools", "response_format", "task",
// "wo_eos"}. Key order of tool schemas is kept, so parse requests into ordered_json.
Result<std::string> encode_messages(const nlohmann::ordered_json& messages, const ChatOptions& opts);

// Attaches request-level OpenAI `tools` to the leading system or developer message (inserting an
// empty system message first if there is none), which is where the V4 format renders them.
nlohmann::ordered_json attach_request_tools(nlohmann::ordered_json messages,
                                            const nlohmann::ordered_json& tools);

}  // namespace dsv4
