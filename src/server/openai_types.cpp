// OpenAI request parsing and validation; limits follow serving-design §6.
#include "server/openai_types.h"

#include <fmt/format.h>

namespace dsv4 {

using ojson = nlohmann::ordered_json;

std::string error_body(const ApiError& e) {
    ojson j;
    j["error"]["message"] = e.message;
    j["error"]["type"] = e.type;
    j["error"]["param"] = e.param.empty() ? ojson(nullptr) : ojson(e.param);
    j["error"]["code"] = e.code.empty() ? ojson(nullptr) : ojson(e.code);
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

namespace {

bool fail(ApiError& err, std::string param, std::string msg, int status = 400, std::string code = {}) {
    err.status = status;
    err.type = status == 404 ? "not_found_error" : "invalid_request_error";
    err.param = std::move(param);
    err.message = std::move(msg);
    err.code = std::move(code);
    return false;
}

const char* type_name(const ojson& v) {
    return v.type_name();
}

// Reads an optional number in [lo, hi] (lo excluded when lo_open). Absent or null leaves `out` as is.
bool opt_number(const ojson& j, const char* key, float& out, double lo, double hi, bool lo_open,
                ApiError& err) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return true;
    if (!it->is_number())
        return fail(err, key, fmt::format("'{}' must be a number, got {}", key, type_name(*it)));
    double v = it->get<double>();
    if (v < lo || v > hi || (lo_open && v == lo))
        return fail(err, key,
                    fmt::format("'{}' must be in {}{}, {}], got {}", key, lo_open ? "(" : "[", lo, hi, v));
    out = float(v);
    return true;
}

bool opt_int(const ojson& j, const char* key, int64_t& out, bool& given, int64_t lo, int64_t hi,
             ApiError& err) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return true;
    if (!it->is_number_integer() &&
        !(it->is_number_float() && it->get<double>() == double(int64_t(it->get<double>()))))
        return fail(err, key,
                    fmt::format("'{}' must be an integer, got {}", key,
                                it->is_number() ? "a fraction" : type_name(*it)));
    int64_t v = it->is_number_unsigned()
                    ? int64_t(std::min<uint64_t>(it->get<uint64_t>(), uint64_t(INT64_MAX)))
                    : it->get<int64_t>();
    if (v < lo || v > hi)
        return fail(err, key, fmt::format("'{}' must be in [{}, {}], got {}", key, lo, hi, v));
    out = v;
    given = true;
    return true;
}

bool opt_bool(const ojson& j, const char* key, bool& out, ApiError& err) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return true;
    if (!it->is_boolean())
        return fail(err, key, fmt::format("'{}' must be a boolean, got {}", key, type_name(*it)));
    out = it->get<bool>();
    return true;
}

bool opt_string(const ojson& j, const char* key, std::string& out, ApiError& err) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return true;
    if (!it->is_string())
        return fail(err, key, fmt::format("'{}' must be a string, got {}", key, type_name(*it)));
    out = it->get<std::string>();
    return true;
}

bool parse_json(std::string_view body, ojson& j, ApiError& err) {
    j = ojson::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded()) {
        // re-parse with exceptions to get the position for the message
        try {
            ojson again = ojson::parse(body.begin(), body.end());
            (void)again;
        } catch (const std::exception& e) {
            return fail(err, "", fmt::format("request body is not valid JSON: {}", e.what()));
        }
        return fail(err, "", "request body is not valid JSON");
    }
    if (!j.is_object())
        return fail(err, "", fmt::format("request body must be a JSON object, got {}", type_name(j)));
    return true;
}

// Fields common to chat and completions.
bool parse_common(const ojson& j, const ParseLimits& lim, GenerationParams& g, ApiError& err) {
    std::string model;
    if (!opt_string(j, "model", model, err)) return false;
    if (!model.empty() && model != lim.model_name)
        return fail(
            err, "model",
            fmt::format("the model '{}' does not exist; this server serves '{}'", model, lim.model_name), 404,
            "model_not_found");
    SamplingParams& s = g.sampling;
    bool given = false;
    int64_t n = 1;
    if (!opt_int(j, "n", n, given, 1, 1, err))
        return fail(err, "n", "'n' must be 1 (one choice per request)");
    int64_t max_tokens = 0;
    bool mt_given = false;
    if (!opt_int(j, "max_tokens", max_tokens, mt_given, 1, INT32_MAX, err)) return false;
    if (!opt_int(j, "max_completion_tokens", max_tokens, mt_given, 1, INT32_MAX, err)) return false;
    if (mt_given) s.max_tokens = int(max_tokens), g.max_tokens_given = true;
    if (!opt_number(j, "temperature", s.temperature, 0.0, 2.0, false, err)) return false;
    if (!opt_number(j, "top_p", s.top_p, 0.0, 1.0, true, err)) return false;
    if (!opt_number(j, "min_p", s.min_p, 0.0, 1.0, false, err)) return false;
    if (!opt_number(j, "presence_penalty", s.presence_penalty, -2.0, 2.0, false, err)) return false;
    if (!opt_number(j, "frequency_penalty", s.frequency_penalty, -2.0, 2.0, false, err)) return false;
    if (!opt_number(j, "repetition_penalty", s.repetition_penalty, 0.0, 1e6, true, err)) return false;
    int64_t top_k = -1;
    if (!opt_int(j, "top_k", top_k, given, -1, INT32_MAX, err)) return false;
    if (top_k == 0) return fail(err, "top_k", "'top_k' must be -1 (off) or >= 1, got 0");
    s.top_k = int(top_k);
    int64_t seed = 0;
    if (!opt_int(j, "seed", seed, g.seed_given, INT64_MIN, INT64_MAX, err)) return false;
    s.seed = uint64_t(seed);
    int64_t min_tokens = 0;
    if (!opt_int(j, "min_tokens", min_tokens, given, 0, INT32_MAX, err)) return false;
    s.min_tokens = int(min_tokens);
    if (!opt_bool(j, "ignore_eos", s.ignore_eos, err)) return false;
    if (!opt_bool(j, "stream", g.stream, err)) return false;
    if (!opt_bool(j, "include_stop_str_in_output", g.include_stop, err)) return false;
    if (!opt_string(j, "cache_salt", g.cache_salt, err)) return false;
    if (auto it = j.find("stream_options"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) return fail(err, "stream_options", "'stream_options' must be an object");
        if (!opt_bool(*it, "include_usage", g.include_usage, err)) return false;
    }
    if (auto it = j.find("stop"); it != j.end() && !it->is_null()) {
        if (it->is_string()) {
            g.stop.push_back(it->get<std::string>());
        } else if (it->is_array()) {
            for (auto& v : *it) {
                if (!v.is_string())
                    return fail(err, "stop", "'stop' must be a string or an array of strings");
                g.stop.push_back(v.get<std::string>());
            }
        } else {
            return fail(
                err, "stop",
                fmt::format("'stop' must be a string or an array of strings, got {}", type_name(*it)));
        }
        if (g.stop.size() > 16)
            return fail(err, "stop", fmt::format("at most 16 stop strings, got {}", g.stop.size()));
        for (auto& st : g.stop) {
            if (st.empty()) return fail(err, "stop", "stop strings must not be empty");
            if (st.size() > 256)
                return fail(err, "stop",
                            fmt::format("stop strings are limited to 256 bytes, got {}", st.size()));
        }
    }
    if (auto it = j.find("stop_token_ids"); it != j.end() && !it->is_null()) {
        if (!it->is_array())
            return fail(err, "stop_token_ids", "'stop_token_ids' must be an array of token ids");
        for (auto& v : *it) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= lim.vocab)
                return fail(err, "stop_token_ids",
                            fmt::format("stop_token_ids must be ids in [0, {})", lim.vocab));
            s.stop_token_ids.push_back(int32_t(v.get<int64_t>()));
        }
    }
    if (auto it = j.find("logit_bias"); it != j.end() && !it->is_null()) {
        if (!it->is_object())
            return fail(err, "logit_bias", "'logit_bias' must be an object of token id -> bias");
        if (it->size() > 1024)
            return fail(err, "logit_bias",
                        fmt::format("at most 1024 logit_bias entries, got {}", it->size()));
        for (auto& [k, v] : it->items()) {
            char* end = nullptr;
            long id = std::strtol(k.c_str(), &end, 10);
            if (k.empty() || *end != '\0' || id < 0 || id >= lim.vocab)
                return fail(err, "logit_bias",
                            fmt::format("logit_bias key '{}' is not a token id in [0, {})", k, lim.vocab));
            if (!v.is_number() || v.get<double>() < -100.0 || v.get<double>() > 100.0)
                return fail(
                    err, "logit_bias",
                    fmt::format("logit_bias values must be numbers in [-100, 100], got {}", v.dump()));
            s.logit_bias.push_back({int32_t(id), v.get<float>()});
        }
    }
    return true;
}

// OpenAI content (string, null, or an array of text parts) -> one string.
bool content_to_string(ojson& msg, size_t index, ApiError& err) {
    auto it = msg.find("content");
    if (it == msg.end() || it->is_null() || it->is_string()) return true;
    if (!it->is_array())
        return fail(err, fmt::format("messages[{}].content", index),
                    fmt::format("messages[{}].content must be a string or an array of text parts, got {}",
                                index, type_name(*it)));
    std::string text;
    for (auto& part : *it) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
            return fail(err, fmt::format("messages[{}].content", index),
                        fmt::format("messages[{}].content: only text parts ({{\"type\": \"text\", \"text\": "
                                    "...}}) are supported",
                                    index));
        text += part["text"].get<std::string>();
    }
    *it = text;
    return true;
}

bool normalize_messages(ojson& messages, ApiError& err) {
    if (!messages.is_array())
        return fail(err, "messages", fmt::format("'messages' must be an array, got {}", type_name(messages)));
    if (messages.empty()) return fail(err, "messages", "'messages' must not be empty");
    static const char* kRoles[] = {"system", "user", "assistant", "tool", "developer", "latest_reminder"};
    for (size_t i = 0; i < messages.size(); ++i) {
        ojson& m = messages[i];
        if (!m.is_object())
            return fail(err, fmt::format("messages[{}]", i),
                        fmt::format("messages[{}] must be an object", i));
        if (!m.contains("role") || !m["role"].is_string())
            return fail(err, fmt::format("messages[{}].role", i),
                        fmt::format("messages[{}] has no 'role' string", i));
        const std::string role = m["role"].get<std::string>();
        if (std::find(std::begin(kRoles), std::end(kRoles), role) == std::end(kRoles))
            return fail(err, fmt::format("messages[{}].role", i),
                        fmt::format("messages[{}].role '{}' is not one of system, user, assistant, tool, "
                                    "developer, latest_reminder",
                                    i, role));
        if (!content_to_string(m, i, err)) return false;
        if (m.contains("reasoning_content") && !m["reasoning_content"].is_null() &&
            !m["reasoning_content"].is_string())
            return fail(err, fmt::format("messages[{}].reasoning_content", i),
                        "reasoning_content must be a string");
        if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null()) {
            if (!tc->is_array())
                return fail(err, fmt::format("messages[{}].tool_calls", i), "tool_calls must be an array");
            for (auto& call : *tc) {
                if (!call.is_object() || !call.contains("function") || !call["function"].is_object() ||
                    !call["function"].contains("name") || !call["function"]["name"].is_string())
                    return fail(err, fmt::format("messages[{}].tool_calls", i),
                                "each tool call needs function.name");
                // accept arguments given as an object as well as the OpenAI JSON string (tokenizer-and-chat
                // §2.1)
                ojson& args = call["function"]["arguments"];
                if (args.is_object()) args = args.dump();
                if (args.is_null()) args = "{}";
                if (!args.is_string())
                    return fail(err, fmt::format("messages[{}].tool_calls", i),
                                "function.arguments must be a JSON string");
            }
        }
    }
    return true;
}

}  // namespace

bool parse_chat_request(std::string_view body, const ParseLimits& lim, ChatRequest& out, ApiError& err) {
    ojson j;
    if (!parse_json(body, j, err)) return false;
    if (!j.contains("messages")) return fail(err, "messages", "missing required parameter 'messages'");
    if (!parse_common(j, lim, out.gen, err)) return false;
    out.messages = j["messages"];
    if (!normalize_messages(out.messages, err)) return false;
    bool lp = false;
    if (!opt_bool(j, "logprobs", lp, err)) return false;
    int64_t top = 0;
    bool top_given = false;
    if (!opt_int(j, "top_logprobs", top, top_given, 0, 20, err)) return false;
    if (top_given && !lp) return fail(err, "top_logprobs", "'top_logprobs' requires 'logprobs': true");
    out.gen.logprobs = lp;
    out.gen.sampling.top_logprobs = lp ? int(top) : -1;

    // thinking switch: request field, then DeepSeek's `thinking`, then chat_template_kwargs
    out.thinking = lim.default_thinking;
    std::string effort;
    if (!opt_string(j, "reasoning_effort", effort, err)) return false;
    if (auto it = j.find("thinking"); it != j.end() && !it->is_null()) {
        if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string())
            return fail(err, "thinking", "'thinking' must be {\"type\": \"enabled\" | \"disabled\"}");
        std::string t = (*it)["type"].get<std::string>();
        if (t != "enabled" && t != "disabled")
            return fail(err, "thinking.type",
                        fmt::format("thinking.type must be 'enabled' or 'disabled', got '{}'", t));
        out.thinking = t == "enabled";
    }
    if (auto it = j.find("chat_template_kwargs"); it != j.end() && !it->is_null()) {
        if (!it->is_object())
            return fail(err, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        bool th = out.thinking;
        if (!opt_bool(*it, "thinking", th, err)) return false;
        if (!opt_bool(*it, "enable_thinking", th, err)) return false;
        out.thinking = th;
        if (!opt_string(*it, "reasoning_effort", effort, err)) return false;
    }
    if (!effort.empty()) {
        // vLLM's mapping: none -> chat mode; low/minimal/medium -> low (no prefix); xhigh -> max
        if (effort == "none") {
            out.thinking = false;
        } else if (effort == "low" || effort == "minimal" || effort == "medium") {
            out.reasoning_effort = "low";
        } else if (effort == "high") {
            out.reasoning_effort = "high";
        } else if (effort == "max" || effort == "xhigh") {
            out.reasoning_effort = "max";
        } else {
            return fail(
                err, "reasoning_effort",
                fmt::format(
                    "reasoning_effort must be one of none, minimal, low, medium, high, xhigh, max; got '{}'",
                    effort));
        }
    }

    if (auto it = j.find("tools"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return fail(err, "tools", "'tools' must be an array");
        for (auto& t : *it)
            if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
                !t["function"].is_object() || !t["function"].contains("name") ||
                !t["function"]["name"].is_string())
                return fail(err, "tools",
                            "each tool must be {\"type\": \"function\", \"function\": {\"name\": ..., ...}}");
        if (!it->empty()) out.tools = *it;
    }
    if (auto it = j.find("tool_choice"); it != j.end() && !it->is_null()) {
        if (it->is_string() && it->get<std::string>() == "none") {
            out.tools = nullptr;  // do not render the tools block (serving-design §6)
        } else if (!(it->is_string() && it->get<std::string>() == "auto")) {
            return fail(err, "tool_choice",
                        "tool_choice 'required' and named functions need constrained decoding, which this "
                        "server does "
                        "not have yet; use 'auto' or 'none'");
        }
    }
    if (!out.gen.seed_given) out.gen.sampling.seed = 0;
    return true;
}

bool parse_completion_request(std::string_view body, const ParseLimits& lim, CompletionRequest& out,
                              ApiError& err) {
    ojson j;
    if (!parse_json(body, j, err)) return false;
    if (!parse_common(j, lim, out.gen, err)) return false;
    if (!out.gen.max_tokens_given) out.gen.sampling.max_tokens = 16;  // OpenAI's default for completions
    auto it = j.find("prompt");
    if (it == j.end() || it->is_null()) return fail(err, "prompt", "missing required parameter 'prompt'");
    if (it->is_string()) {
        out.prompt_text = it->get<std::string>();
        if (out.prompt_text.empty()) return fail(err, "prompt", "'prompt' must not be empty");
    } else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
        out.prompt_is_ids = true;
        for (auto& v : *it) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= lim.vocab)
                return fail(err, "prompt",
                            fmt::format("prompt token ids must be integers in [0, {})", lim.vocab));
            out.prompt_ids.push_back(int32_t(v.get<int64_t>()));
        }
    } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
        out.prompt_text = (*it)[0].get<std::string>();
    } else {
        return fail(err, "prompt",
                    "'prompt' must be a string, a one-element array of strings, or an array of token ids "
                    "(batched prompts are not supported)");
    }
    int64_t lp = -1;
    bool lp_given = false;
    if (auto l = j.find("logprobs"); l != j.end() && l->is_boolean()) {
        lp = l->get<bool>() ? 0 : -1;
    } else if (!opt_int(j, "logprobs", lp, lp_given, 0, 20, err)) {
        return false;
    }
    out.gen.logprobs = lp >= 0;
    out.gen.sampling.top_logprobs = int(lp);
    if (!opt_bool(j, "echo", out.echo, err)) return false;
    return true;
}

}  // namespace dsv4
