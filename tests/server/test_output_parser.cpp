// OutputParser: reasoning/content/DSML tool calls; any split of the text (down to 1-byte chunks) gives
// the same result, delimiter prefixes are never emitted, malformed and truncated DSML stays out of content.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/output_parser.h"

namespace dsv4 {
namespace {

struct Message {
    std::string reasoning, content;
    std::vector<std::pair<std::string, std::string>> calls;  // name, arguments
    bool operator==(const Message& o) const {
        return reasoning == o.reasoning && content == o.content && calls == o.calls;
    }
};

void apply_deltas(Message& m, const std::vector<ParsedDelta>& ds) {
    for (auto& d : ds) {
        switch (d.kind) {
            case ParsedDelta::Kind::reasoning:
                m.reasoning += d.text;
                break;
            case ParsedDelta::Kind::content:
                m.content += d.text;
                break;
            case ParsedDelta::Kind::tool_begin:
                m.calls.push_back({d.name, d.text});
                break;
            case ParsedDelta::Kind::tool_args:
                m.calls.at(size_t(d.tool_index)).second += d.text;
                break;
        }
    }
}

Message parse_split(const std::string& text, bool thinking, size_t chunk,
                    std::vector<std::string>* emitted = nullptr) {
    OutputParser p(thinking);
    Message m;
    for (size_t i = 0; i < text.size(); i += chunk) {
        auto ds = p.feed(text.substr(i, chunk));
        if (emitted)
            for (auto& d : ds) emitted->push_back(d.text);
        apply_deltas(m, ds);
    }
    apply_deltas(m, p.finish());
    return m;
}

const std::string kToolText =
    "Need tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
    "<｜DSML｜parameter name=\"q\" string=\"true\">x \"y\"\n</｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"n\" string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"g\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";

TEST(OutputParser, ReasoningContentAndTools) {
    Message m = parse_split(kToolText, true, kToolText.size());
    EXPECT_EQ(m.reasoning, "Need tool.");
    EXPECT_EQ(m.content, "");
    ASSERT_EQ(m.calls.size(), 2u);
    EXPECT_EQ(m.calls[0].first, "f");
    auto args = nlohmann::json::parse(m.calls[0].second);
    EXPECT_EQ(args["q"], "x \"y\"\n");
    EXPECT_EQ(args["n"], 3);
    EXPECT_EQ(m.calls[1].first, "g");
    EXPECT_EQ(m.calls[1].second, "{}");
}

TEST(OutputParser, EverySplitGivesTheSameMessage) {
    const std::vector<std::string> texts = {
        kToolText,
        "plain reasoning</think>The answer is 42.",
        "r</think>content then\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"h\">\n<｜DSML｜parameter "
        "name=\"a\" "
        "string=\"false\">{\"k\": [1, 2]}</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
        "中文推理🙂</think>答案：是 </ not a tag <｜ nor this",
    };
    for (const auto& t : texts) {
        Message whole = parse_split(t, true, t.size());
        for (size_t chunk : {1, 2, 3, 5, 7, 13})
            EXPECT_EQ(parse_split(t, true, chunk), whole) << "chunk " << chunk << " text " << t;
    }
}

TEST(OutputParser, NeverEmitsADelimiterPrefix) {
    std::vector<std::string> emitted;
    parse_split(kToolText, true, 1, &emitted);
    for (auto& e : emitted) {
        EXPECT_EQ(e.find("</"), std::string::npos) << e;
        EXPECT_EQ(e.find("｜DSML｜"), std::string::npos) << e;
    }
}

TEST(OutputParser, ChatModeStartsInContent) {
    Message m = parse_split("hello</think> world", false, 1);
    EXPECT_EQ(m.content, "hello</think> world");
    EXPECT_EQ(m.reasoning, "");
}

TEST(OutputParser, ToolBlockInsideReasoningEndsReasoning) {
    Message m = parse_split(
        "thinking...\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke "
        "name=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
        true, 4);
    EXPECT_EQ(m.reasoning, "thinking...");
    ASSERT_EQ(m.calls.size(), 1u);
    EXPECT_EQ(m.calls[0].second, "{}");
}

TEST(OutputParser, TruncatedInvokeIsReportedAndMalformedStaysOutOfContent) {
    OutputParser p(false);
    Message m;
    apply_deltas(m, p.feed("ok\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter "
                           "name=\"q\" string=\"true\">par"));
    apply_deltas(m, p.finish());
    EXPECT_EQ(m.content, "ok");
    EXPECT_EQ(p.incomplete_tool(), 0);

    OutputParser q(false);
    Message m2;
    apply_deltas(m2, q.feed("text\n\n<｜DSML｜tool_calls>\ngarbage that is not DSML"));
    apply_deltas(m2, q.finish());
    EXPECT_EQ(m2.content, "text");
    EXPECT_TRUE(m2.calls.empty());
    EXPECT_TRUE(q.malformed());
}

TEST(OutputParser, HeldBackTextIsFlushedAtFinish) {
    OutputParser p(true);
    Message m;
    apply_deltas(m, p.feed("abc</thi"));
    EXPECT_EQ(m.reasoning, "abc");
    apply_deltas(m, p.finish());
    EXPECT_EQ(m.reasoning, "abc</thi");
}

}  // namespace
}  // namespace dsv4
