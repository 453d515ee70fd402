// OutputParser: see the header. One state per syntactic position; every state either consumes a complete
// piece of syntax or holds back the tail that might still become one.
#include "server/output_parser.h"

#include <algorithm>
#include <initializer_list>

#include <fmt/format.h>

namespace dsv4 {

namespace {

constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kToolsTag = "<｜DSML｜tool_calls";
constexpr std::string_view kToolsNl = "\n\n<｜DSML｜tool_calls";
constexpr std::string_view kToolsClose = "</｜DSML｜tool_calls>";
constexpr std::string_view kInvokeOpen = "<｜DSML｜invoke name=\"";
constexpr std::string_view kInvokeClose = "</｜DSML｜invoke>";
constexpr std::string_view kParamOpen = "<｜DSML｜parameter name=\"";
constexpr std::string_view kParamClose = "</｜DSML｜parameter>";
constexpr size_t kMaxHead = 4096;  // a tag head longer than this is not DSML

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}
bool could_become(std::string_view s, std::string_view p) {
    return s.size() < p.size() && starts_with(p, s);
}

// Longest suffix of s that is a proper prefix of one of the delimiters.
size_t holdback(std::string_view s, std::initializer_list<std::string_view> delims) {
    size_t best = 0;
    for (std::string_view d : delims)
        for (size_t len = std::min(s.size(), d.size() - 1); len > best; --len)
            if (s.substr(s.size() - len) == d.substr(0, len)) {
                best = len;
                break;
            }
    return best;
}

void skip_space(std::string& buf) {
    size_t i = 0;
    while (i < buf.size() && (buf[i] == '\n' || buf[i] == ' ' || buf[i] == '\r' || buf[i] == '\t')) i++;
    buf.erase(0, i);
}

}  // namespace

void json_escape_append(std::string& out, std::string_view text) {
    for (unsigned char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (c < 0x20) {
                    out += fmt::format("\\u{:04x}", c);
                } else {
                    out += char(c);
                }
        }
    }
}

void OutputParser::emit(std::vector<ParsedDelta>& out, ParsedDelta::Kind kind, std::string text) {
    if (text.empty() && kind != ParsedDelta::Kind::tool_begin) return;
    ParsedDelta d;
    d.kind = kind;
    d.text = std::move(text);
    if (kind == ParsedDelta::Kind::tool_begin || kind == ParsedDelta::Kind::tool_args)
        d.tool_index = n_tools_ - 1;
    out.push_back(std::move(d));
}

std::vector<ParsedDelta> OutputParser::feed(std::string_view text) {
    std::vector<ParsedDelta> out;
    buf_.append(text);
    step(out, false);
    return out;
}

std::vector<ParsedDelta> OutputParser::finish() {
    std::vector<ParsedDelta> out;
    step(out, true);
    return out;
}

void OutputParser::step(std::vector<ParsedDelta>& out, bool final) {
    using K = ParsedDelta::Kind;
    for (;;) {
        switch (state_) {
            case State::reasoning:
            case State::content: {
                const bool reasoning = state_ == State::reasoning;
                const K kind = reasoning ? K::reasoning : K::content;
                size_t pos_think = reasoning ? buf_.find(kThinkEnd) : std::string::npos;
                size_t pos_tools = buf_.find(kToolsTag);
                if (pos_think != std::string::npos &&
                    (pos_tools == std::string::npos || pos_think < pos_tools)) {
                    emit(out, kind, buf_.substr(0, pos_think));
                    buf_.erase(0, pos_think + kThinkEnd.size());
                    state_ = State::content;
                    continue;
                }
                if (pos_tools != std::string::npos) {
                    // the block opens with "\n\n": not part of the text; in reasoning it also ends reasoning
                    size_t end = pos_tools;
                    while (end > 0 && buf_[end - 1] == '\n') end--;
                    emit(out, kind, buf_.substr(0, end));
                    buf_.erase(0, pos_tools + kToolsTag.size());
                    state_ = State::block_open;
                    continue;
                }
                size_t hold = final ? 0 : holdback(buf_, {kThinkEnd, kToolsTag, kToolsNl});
                if (!reasoning) hold = final ? 0 : holdback(buf_, {kToolsTag, kToolsNl});
                emit(out, kind, buf_.substr(0, buf_.size() - hold));
                buf_.erase(0, buf_.size() - hold);
                return;
            }
            case State::block_open: {
                size_t gt = buf_.find('>');
                if (gt == std::string::npos) {
                    if (!final && buf_.size() <= kMaxHead) return;
                    malformed_ = !final;
                    state_ = State::done;
                    continue;
                }
                buf_.erase(0, gt + 1);
                state_ = State::between_invokes;
                continue;
            }
            case State::between_invokes: {
                skip_space(buf_);
                if (buf_.empty()) return;
                if (starts_with(buf_, kToolsClose)) {
                    buf_.erase(0, kToolsClose.size());
                    state_ = State::done;
                    continue;
                }
                if (starts_with(buf_, kInvokeOpen)) {
                    size_t close = buf_.find("\">", kInvokeOpen.size());
                    if (close == std::string::npos) {
                        if (final || buf_.size() > kMaxHead) {
                            malformed_ = !final;
                            state_ = State::done;
                            continue;
                        }
                        return;
                    }
                    std::string name = buf_.substr(kInvokeOpen.size(), close - kInvokeOpen.size());
                    buf_.erase(0, close + 2);
                    n_tools_++;
                    n_params_ = 0;
                    incomplete_tool_ = n_tools_ - 1;
                    emit(out, K::tool_begin, {});
                    out.back().name = std::move(name);
                    state_ = State::in_invoke;
                    continue;
                }
                if (!final && (could_become(buf_, kToolsClose) || could_become(buf_, kInvokeOpen))) return;
                malformed_ = true;
                state_ = State::done;
                continue;
            }
            case State::in_invoke: {
                skip_space(buf_);
                if (buf_.empty()) return;
                if (starts_with(buf_, kInvokeClose)) {
                    buf_.erase(0, kInvokeClose.size());
                    emit(out, K::tool_args, n_params_ ? "}" : "{}");
                    incomplete_tool_ = -1;
                    state_ = State::between_invokes;
                    continue;
                }
                if (starts_with(buf_, kParamOpen)) {
                    size_t close = buf_.find("\">", kParamOpen.size());
                    if (close == std::string::npos) {
                        if (final || buf_.size() > kMaxHead) {
                            malformed_ = !final;
                            state_ = State::done;
                            continue;
                        }
                        return;
                    }
                    std::string head = buf_.substr(kParamOpen.size(), close - kParamOpen.size());
                    buf_.erase(0, close + 2);
                    // head is: NAME" string="true|false
                    constexpr std::string_view kAttr = "\" string=\"";
                    size_t attr = head.rfind(kAttr);
                    std::string name = attr == std::string::npos ? head : head.substr(0, attr);
                    value_is_string_ =
                        attr == std::string::npos || head.substr(attr + kAttr.size()) != "false";
                    std::string frag = n_params_ ? ", \"" : "{\"";
                    json_escape_append(frag, name);
                    frag += value_is_string_ ? "\": \"" : "\": ";
                    n_params_++;
                    emit(out, K::tool_args, std::move(frag));
                    state_ = State::in_value;
                    continue;
                }
                if (!final && (could_become(buf_, kInvokeClose) || could_become(buf_, kParamOpen))) return;
                malformed_ = true;
                state_ = State::done;
                continue;
            }
            case State::in_value: {
                size_t pos = buf_.find(kParamClose);
                size_t take = pos != std::string::npos
                                  ? pos
                                  : (final ? 0 : buf_.size() - holdback(buf_, {kParamClose}));
                std::string frag;
                if (value_is_string_) {
                    json_escape_append(frag, std::string_view(buf_).substr(0, take));
                } else {
                    frag = buf_.substr(0, take);
                }
                if (pos != std::string::npos) {
                    if (value_is_string_) frag += '"';
                    buf_.erase(0, pos + kParamClose.size());
                    state_ = State::in_invoke;
                    emit(out, K::tool_args, std::move(frag));
                    continue;
                }
                buf_.erase(0, take);
                emit(out, K::tool_args, std::move(frag));
                if (final) state_ = State::done;
                if (state_ == State::done) continue;
                return;
            }
            case State::done:
                buf_.clear();
                return;
        }
    }
}

}  // namespace dsv4
