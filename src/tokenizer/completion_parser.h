// Splits generated V4 text into reasoning_content, content and tool_calls, incrementally: feed the
// decoded text (special tokens kept, e.g. from StreamDecoder) as it streams, get back deltas.
// Same grammar as the official parse_message_from_completion_text (shared/docs/tokenizer-and-chat.md
// §2.3), but never fails: malformed DSML or a missing </think> degrade to plain text plus a warning.
// Tested in tests/unit/test_chat_completion_parser.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dsv4 {

struct ToolCall {
    std::string name;
    std::string arguments;  // a JSON object as text: {"k": v, ...} (Python json.dumps separators)
};

struct CompletionDelta {
    std::string reasoning;
    std::string content;
    std::vector<ToolCall> tool_calls;  // calls completed by this chunk
    bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

struct ParsedCompletion {
    std::string reasoning_content;
    std::string content;
    std::vector<ToolCall> tool_calls;
    bool saw_eos = false;
    std::vector<std::string> warnings;  // what was malformed, for logs
};

class CompletionParser {
public:
    // thinking: the prompt ended with <think>, so the text starts inside the reasoning.
    explicit CompletionParser(bool thinking);

    CompletionDelta push(std::string_view text);
    // End of generation (EOS seen or a length stop): releases held-back text.
    CompletionDelta finish();
    const ParsedCompletion& result() const { return result_; }

    // One-shot: push(text) + finish().
    static ParsedCompletion parse(std::string_view text, bool thinking);

private:
    enum class State { reasoning, content, tool_calls, after_tool_calls, done };
    void step(CompletionDelta& d, bool at_end);
    void emit_text(CompletionDelta& d, std::string_view s);
    // Parses complete invokes at the front of the tool-call buffer; at_end flushes what is left.
    void parse_invokes(CompletionDelta& d, bool at_end);
    void warn(std::string msg);

    State state_;
    std::string buf_;  // text not yet classified (may end with the start of a marker)
    ParsedCompletion result_;
};

}  // namespace dsv4
