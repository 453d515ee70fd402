// OutputParser: incremental reasoning -> content -> DSML tool-call parser over decoded completion text
// (tokenizer-and-chat §2.3, serving-design §6). It never emits a suffix that could still start a
// delimiter, streams tool arguments as JSON text (string="true" values escaped, string="false" raw, as
// the official parser does), treats a tool-call block inside reasoning as the end of reasoning, and
// keeps malformed DSML out of `content`. Feeding any split of a text gives the same result.
// Tested in tests/server/test_output_parser.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dsv4 {

struct ParsedDelta {
    enum class Kind { reasoning, content, tool_begin, tool_args };
    Kind kind = Kind::content;
    std::string text;     // reasoning/content text, or an arguments fragment
    int tool_index = -1;  // tool_begin / tool_args
    std::string name;     // tool_begin
};

class OutputParser {
public:
    explicit OutputParser(bool thinking) : state_(thinking ? State::reasoning : State::content) {}

    std::vector<ParsedDelta> feed(std::string_view text);
    // End of output: flushes held-back text. An invoke left open (truncated output) is reported by
    // incomplete_tool() so a final message can drop it.
    std::vector<ParsedDelta> finish();
    int n_tool_calls() const { return n_tools_; }
    int incomplete_tool() const { return incomplete_tool_; }
    bool malformed() const { return malformed_; }
    bool in_reasoning() const { return state_ == State::reasoning; }

private:
    enum class State { reasoning, content, block_open, between_invokes, in_invoke, in_value, done };
    void step(std::vector<ParsedDelta>& out, bool final);
    void emit(std::vector<ParsedDelta>& out, ParsedDelta::Kind kind, std::string text);

    State state_;
    std::string buf_;
    int n_tools_ = 0;
    int n_params_ = 0;
    bool value_is_string_ = false;
    int incomplete_tool_ = -1;
    bool malformed_ = false;
};

// Appends `text` JSON-string-escaped (no surrounding quotes).
void json_escape_append(std::string& out, std::string_view text);

}  // namespace dsv4
