// CompletionParser: reasoning / content / DSML tool calls, one-shot and streamed in every chunk
// size (the result must not depend on where the text is cut), and graceful handling of malformed
// output.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenizer/completion_parser.h"

namespace dsv4 {
namespace {

const std::string kEos = "<｜end▁of▁sentence｜>";
const std::string kToolText =
    "Need tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
    "<｜DSML｜parameter name=\"q\" string=\"true\">x y</｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"n\" string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"g\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" +
    kEos;

// Streams text in chunks of `n` bytes and merges the deltas.
ParsedCompletion stream(const std::string& text, bool thinking, size_t n) {
    CompletionParser p(thinking);
    ParsedCompletion merged;
    auto add = [&](const CompletionDelta& d) {
        merged.reasoning_content += d.reasoning;
        merged.content += d.content;
        for (const auto& c : d.tool_calls) merged.tool_calls.push_back(c);
    };
    for (size_t i = 0; i < text.size(); i += n) add(p.push(text.substr(i, n)));
    add(p.finish());
    merged.saw_eos = p.result().saw_eos;
    merged.warnings = p.result().warnings;
    return merged;
}

TEST(CompletionParser, OfficialToolCallExample) {
    const ParsedCompletion r = CompletionParser::parse(kToolText, true);
    EXPECT_EQ(r.reasoning_content, "Need tool.");
    EXPECT_EQ(r.content, "");
    ASSERT_EQ(r.tool_calls.size(), 2u);
    EXPECT_EQ(r.tool_calls[0].name, "f");
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"q": "x y", "n": 3})");
    EXPECT_EQ(r.tool_calls[1].name, "g");
    EXPECT_EQ(r.tool_calls[1].arguments, "{}");
    EXPECT_TRUE(r.saw_eos);
    EXPECT_TRUE(r.warnings.empty()) << r.warnings[0];
}

TEST(CompletionParser, StreamingGivesTheSameResultForAnyChunking) {
    const std::vector<std::pair<std::string, bool>> texts = {
        {kToolText, true},
        {"Let me think: 1<2 and </thin is not a tag.</think>The answer\n\nis 42.\n\n" + kEos, true},
        {"Plain chat answer with <tags> and \n\n new paragraphs." + kEos, false},
        {"你好，世界！🚀</think>答案" + kEos, true},
    };
    for (const auto& [text, thinking] : texts) {
        const ParsedCompletion whole = CompletionParser::parse(text, thinking);
        for (size_t n : {1, 2, 3, 5, 7, 16, 64}) {
            const ParsedCompletion s = stream(text, thinking, n);
            EXPECT_EQ(s.reasoning_content, whole.reasoning_content) << "chunk " << n;
            EXPECT_EQ(s.content, whole.content) << "chunk " << n;
            ASSERT_EQ(s.tool_calls.size(), whole.tool_calls.size()) << "chunk " << n;
            for (size_t k = 0; k < s.tool_calls.size(); ++k)
                EXPECT_EQ(s.tool_calls[k].arguments, whole.tool_calls[k].arguments);
        }
    }
    const ParsedCompletion r = CompletionParser::parse(texts[1].first, true);
    EXPECT_EQ(r.reasoning_content, "Let me think: 1<2 and </thin is not a tag.");
    EXPECT_EQ(r.content, "The answer\n\nis 42.\n\n");
}

TEST(CompletionParser, MarkersAreNeverEmittedHalfway) {
    CompletionParser p(true);
    EXPECT_EQ(p.push("abc</thi").reasoning, "abc");  // "</thi" is held back
    const CompletionDelta d = p.push("nk>def");
    EXPECT_EQ(d.reasoning, "");
    EXPECT_EQ(d.content, "def");
}

TEST(CompletionParser, ToolCallsAreReportedAsSoonAsEachInvokeCloses) {
    CompletionParser p(false);
    const size_t cut = kToolText.find("<｜DSML｜invoke name=\"g\"");
    const std::string chat = kToolText.substr(kToolText.find("</think>") + 8);
    const size_t cut_chat = chat.find("<｜DSML｜invoke name=\"g\"");
    ASSERT_NE(cut, std::string::npos);
    CompletionDelta d = p.push(chat.substr(0, cut_chat));
    ASSERT_EQ(d.tool_calls.size(), 1u);
    EXPECT_EQ(d.tool_calls[0].name, "f");
    d = p.push(chat.substr(cut_chat));
    ASSERT_EQ(d.tool_calls.size(), 1u);
    EXPECT_EQ(d.tool_calls[0].name, "g");
    p.finish();
    EXPECT_TRUE(p.result().saw_eos);
}

TEST(CompletionParser, MalformedOutputDegradesGracefully) {
    // Missing </think>: everything is reasoning, with a warning.
    ParsedCompletion r = CompletionParser::parse("thinking forever", true);
    EXPECT_EQ(r.reasoning_content, "thinking forever");
    EXPECT_FALSE(r.saw_eos);
    EXPECT_FALSE(r.warnings.empty());

    // Garbage inside the tool-call block: kept as content, nothing lost, no crash.
    r = CompletionParser::parse("Hi\n\n<｜DSML｜tool_calls>\nnot dsml at all" + kEos, false);
    EXPECT_EQ(r.content, "Hi\n\n<｜DSML｜tool_calls>\nnot dsml at all");
    EXPECT_TRUE(r.tool_calls.empty());
    EXPECT_TRUE(r.saw_eos);

    // Truncated inside an invoke (length stop).
    r = CompletionParser::parse("x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜param",
                                false);
    EXPECT_TRUE(r.tool_calls.empty());
    EXPECT_NE(r.content.find("invoke name=\"f\""), std::string::npos);
    EXPECT_FALSE(r.warnings.empty());

    // Invalid JSON in a string="false" parameter becomes a string; duplicates keep the first.
    r = CompletionParser::parse(
        "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
        "<｜DSML｜parameter name=\"a\" string=\"false\">{oops</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"a\" "
        "string=\"true\">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" +
            kEos,
        false);
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"a": "{oops"})");
    EXPECT_EQ(r.warnings.size(), 2u);

    // Text after EOS is ignored; text between the block and EOS is kept as content.
    r = CompletionParser::parse("a" + kEos + "junk", false);
    EXPECT_EQ(r.content, "a");
    r = CompletionParser::parse("\n\n<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>tail" + kEos, false);
    EXPECT_EQ(r.content, "tail");
}

TEST(CompletionParser, ArgumentsAreValidJson) {
    const ParsedCompletion r = CompletionParser::parse(
        "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"s\">\n"
        "<｜DSML｜parameter name=\"q\" string=\"true\">say \"hi\"\nnow\\</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"o\" string=\"false\">{\"k\": [1, 2.5, true]}</｜DSML｜parameter>\n"
        "</｜DSML｜invoke>\n</｜DSML｜tool_calls>" +
            kEos,
        false);
    ASSERT_EQ(r.tool_calls.size(), 1u);
    const auto j = nlohmann::json::parse(r.tool_calls[0].arguments);
    EXPECT_EQ(j["q"], "say \"hi\"\nnow\\");
    EXPECT_EQ(j["o"]["k"][1], 2.5);
}

}  // namespace
}  // namespace dsv4
