// CompletionParser: a small state machine over text markers; see completion_parser.h.
//   reasoning --"</think>"--> content --"\n\n<｜DSML｜tool_calls>"--> tool_calls
//   --"</｜DSML｜tool_calls>"--> after_tool_calls --EOS--> done
// Text that may be the beginning of a marker is held back until it can be classified, so a
// streaming client never sees half of "</think>".
#include "tokenizer/completion_parser.h"

#include <algorithm>
#include <span>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "tokenizer/python_json.h"

namespace dsv4 {

namespace {

constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kCallsBegin = "\n\n<｜DSML｜tool_calls>";
constexpr std::string_view kCallsEnd = "</｜DSML｜tool_calls>";
constexpr std::string_view kInvokeBegin = "<｜DSML｜invoke name=\"";
constexpr std::string_view kInvokeEnd = "</｜DSML｜invoke>";
constexpr std::string_view kParamBegin = "<｜DSML｜parameter name=\"";
constexpr std::string_view kParamEnd = "</｜DSML｜parameter>";

struct Hit {
    size_t pos = std::string::npos;
    std::string_view marker;
};

// Earliest full occurrence of any marker in s.
using Markers = std::span<const std::string_view>;
constexpr std::string_view kReasoningMarkers[] = {kThinkEnd, kCallsBegin, kEos};
constexpr std::string_view kContentMarkers[] = {kCallsBegin, kEos};
constexpr std::string_view kEosMarker[] = {kEos};

Hit find_first(std::string_view s, Markers markers) {
    Hit h;
    for (std::string_view m : markers) {
        const size_t p = s.find(m);
        if (p < h.pos) h = {p, m};
    }
    return h;
}

// Length of the longest suffix of s that is a proper prefix of some marker (must be held back).
size_t held_suffix(std::string_view s, Markers markers) {
    size_t best = 0;
    for (std::string_view m : markers)
        for (size_t k = std::min(s.size(), m.size() - 1); k > best; --k)
            if (s.substr(s.size() - k) == m.substr(0, k)) {
                best = k;
                break;
            }
    return best;
}

}  // namespace

CompletionParser::CompletionParser(bool thinking) : state_(thinking ? State::reasoning : State::content) {}

void CompletionParser::warn(std::string msg) {
    log_debug("completion parser: {}", msg);
    result_.warnings.push_back(std::move(msg));
}

void CompletionParser::emit_text(CompletionDelta& d, std::string_view s) {
    if (s.empty()) return;
    if (state_ == State::reasoning) {
        d.reasoning += s;
        result_.reasoning_content += s;
    } else {
        d.content += s;
        result_.content += s;
    }
}

CompletionDelta CompletionParser::push(std::string_view text) {
    CompletionDelta d;
    buf_ += text;
    step(d, false);
    return d;
}

CompletionDelta CompletionParser::finish() {
    CompletionDelta d;
    step(d, true);
    if (!result_.saw_eos && state_ != State::done) warn("generation ended without EOS (length stop?)");
    state_ = State::done;
    return d;
}

ParsedCompletion CompletionParser::parse(std::string_view text, bool thinking) {
    CompletionParser p(thinking);
    p.push(text);
    p.finish();
    return p.result_;
}

void CompletionParser::step(CompletionDelta& d, bool at_end) {
    for (;;) {
        switch (state_) {
            case State::reasoning:
            case State::content: {
                const bool reasoning = state_ == State::reasoning;
                const Markers markers = reasoning ? Markers(kReasoningMarkers) : Markers(kContentMarkers);
                const Hit h = find_first(buf_, markers);
                if (h.pos == std::string::npos) {
                    const size_t hold = at_end ? 0 : held_suffix(buf_, markers);
                    emit_text(d, std::string_view(buf_).substr(0, buf_.size() - hold));
                    buf_.erase(0, buf_.size() - hold);
                    if (at_end && reasoning) warn("no </think>: the whole text was taken as reasoning");
                    return;
                }
                emit_text(d, std::string_view(buf_).substr(0, h.pos));
                buf_.erase(0, h.pos + h.marker.size());
                if (h.marker == kThinkEnd) {
                    state_ = State::content;
                } else if (h.marker == kCallsBegin) {
                    if (reasoning) warn("tool calls started before </think>");
                    state_ = State::tool_calls;
                } else {
                    if (reasoning) warn("EOS before </think>");
                    result_.saw_eos = true;
                    state_ = State::done;
                }
                break;
            }
            case State::tool_calls:
                parse_invokes(d, at_end);
                if (state_ == State::tool_calls) return;
                break;
            case State::after_tool_calls: {
                // Only EOS may follow the block; anything else is kept as content.
                const size_t p = buf_.find(kEos);
                if (p == std::string::npos) {
                    const size_t hold = at_end ? 0 : held_suffix(buf_, kEosMarker);
                    if (buf_.size() > hold) warn("text after </｜DSML｜tool_calls> kept as content");
                    emit_text(d, std::string_view(buf_).substr(0, buf_.size() - hold));
                    buf_.erase(0, buf_.size() - hold);
                    return;
                }
                if (p > 0) warn("text after </｜DSML｜tool_calls> kept as content");
                emit_text(d, std::string_view(buf_).substr(0, p));
                buf_.erase(0, p + kEos.size());
                result_.saw_eos = true;
                state_ = State::done;
                break;
            }
            case State::done:
                if (!buf_.empty()) {
                    warn("text after EOS ignored");
                    buf_.clear();
                }
                return;
        }
    }
}

void CompletionParser::parse_invokes(CompletionDelta& d, bool at_end) {
    for (;;) {
        // Skip the newlines between elements.
        size_t i = 0;
        while (i < buf_.size() && (buf_[i] == '\n' || buf_[i] == ' ')) ++i;
        const std::string_view rest = std::string_view(buf_).substr(i);
        if (rest.substr(0, kCallsEnd.size()) == kCallsEnd) {
            buf_.erase(0, i + kCallsEnd.size());
            state_ = State::after_tool_calls;
            return;
        }
        const size_t end = rest.find(kInvokeEnd);
        const bool starts_invoke = rest.substr(0, kInvokeBegin.size()) == kInvokeBegin;
        const bool could_start =
            kInvokeBegin.substr(0, rest.size()) == rest || kCallsEnd.substr(0, rest.size()) == rest;
        const size_t eos = rest.find(kEos);
        if ((!starts_invoke && !could_start) || (eos != std::string::npos && eos < end)) {
            // Not DSML (or cut by EOS): keep the raw text as content, so nothing the model said is lost.
            warn("malformed DSML tool-call block kept as content");
            state_ = State::content;  // step() goes on scanning buf_ as content
            emit_text(d, kCallsBegin);
            return;
        }
        if (end == std::string::npos) {
            if (at_end) {
                warn("unterminated DSML tool-call block kept as content");
                state_ = State::content;
                emit_text(d, buf_);
                buf_.clear();
            }
            return;  // wait for more text
        }
        // One complete invoke: name="NAME">\n then parameters.
        const std::string_view inv = rest.substr(kInvokeBegin.size(), end - kInvokeBegin.size());
        const size_t q = inv.find("\">");
        ToolCall call;
        bool ok = q != std::string::npos;
        nlohmann::ordered_json args = nlohmann::ordered_json::object();
        if (ok) {
            call.name = std::string(inv.substr(0, q));
            std::string_view body = inv.substr(q + 2);
            for (;;) {
                size_t s = 0;
                while (s < body.size() && (body[s] == '\n' || body[s] == ' ')) ++s;
                body = body.substr(s);
                if (body.empty()) break;
                if (body.substr(0, kParamBegin.size()) != kParamBegin) {
                    ok = false;
                    break;
                }
                body = body.substr(kParamBegin.size());
                const size_t nq = body.find("\" string=\"");
                const size_t pe = body.find(kParamEnd);
                if (nq == std::string::npos || pe == std::string::npos || nq > pe) {
                    ok = false;
                    break;
                }
                const std::string key(body.substr(0, nq));
                std::string_view after = body.substr(nq + 10);
                const bool is_str = after.substr(0, 6) == "true\">";
                const bool is_raw = after.substr(0, 7) == "false\">";
                if (!is_str && !is_raw) {
                    ok = false;
                    break;
                }
                after = after.substr(is_str ? 6 : 7);
                const std::string value(after.substr(0, after.find(kParamEnd)));
                body = after.substr(after.find(kParamEnd) + kParamEnd.size());
                if (args.contains(key)) {
                    warn(fmt::format("tool call '{}': duplicate parameter '{}', first kept", call.name, key));
                    continue;
                }
                if (is_str) {
                    args[key] = value;
                } else {
                    auto v = nlohmann::ordered_json::parse(value, nullptr, false);
                    if (v.is_discarded()) {
                        warn(fmt::format("tool call '{}': parameter '{}' is not valid JSON, kept as a string",
                                         call.name, key));
                        args[key] = value;
                    } else {
                        args[key] = std::move(v);
                    }
                }
            }
        }
        if (!ok) {
            warn("malformed DSML invoke kept as content");
            emit_text(d, rest.substr(0, end + kInvokeEnd.size()));
        } else {
            call.arguments = python_json_dumps(args);
            d.tool_calls.push_back(call);
            result_.tool_calls.push_back(std::move(call));
        }
        buf_.erase(0, i + end + kInvokeEnd.size());
    }
}

}  // namespace dsv4
