// V4 chat encoding against the four official golden pairs (shared/fixtures/chat_v4, from the V4
// repositories' encoding/ folder) plus the documented examples of shared/docs/tokenizer-and-chat.md §2.2.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_tokenizer_util.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/python_json.h"

namespace dsv4 {
namespace {

using ojson = nlohmann::ordered_json;

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string chat_fixture_dir() {
    // The official pairs are committed under tests/fixtures/chat_v4 (copied from shared/fixtures).
    return std::string(DSV4_FIXTURES_DIR) + "/tokenizer/chat_v4";
}

void expect_golden(int n, bool thinking) {
    const std::string dir = chat_fixture_dir();
    const std::string in = read_file(fmt::format("{}/test_input_{}.json", dir, n));
    const std::string want = read_file(fmt::format("{}/test_output_{}.txt", dir, n));
    ASSERT_FALSE(in.empty()) << dir;
    ASSERT_FALSE(want.empty());
    ojson j = ojson::parse(in);
    ojson messages = j.is_object() ? attach_request_tools(j["messages"], j["tools"]) : j;
    ChatOptions opts;
    opts.thinking = thinking;
    auto got = encode_messages(messages, opts);
    ASSERT_TRUE(got.is_ok()) << got.message();
    if (got.value() != want) {
        size_t i = 0;
        while (i < want.size() && i < got.value().size() && want[i] == got.value()[i]) ++i;
        FAIL() << "pair " << n << " differs at byte " << i << "\n--- got:\n"
               << got.value().substr(i > 80 ? i - 80 : 0, 240) << "\n--- want:\n"
               << want.substr(i > 80 ? i - 80 : 0, 240);
    }
}

TEST(ChatEncoding, OfficialPair1ToolsThinking) {
    expect_golden(1, true);
}
TEST(ChatEncoding, OfficialPair2MultiTurnDropThinking) {
    expect_golden(2, true);
}
TEST(ChatEncoding, OfficialPair3DeveloperReminderTools) {
    expect_golden(3, true);
}
TEST(ChatEncoding, OfficialPair4ChatTaskAction) {
    expect_golden(4, false);
}

std::string render(const char* json, bool thinking, bool drop = true) {
    ChatOptions opts;
    opts.thinking = thinking;
    opts.drop_thinking = drop;
    auto r = encode_messages(ojson::parse(json), opts);
    EXPECT_TRUE(r.is_ok()) << r.message();
    return r.is_ok() ? r.value() : "";
}

TEST(ChatEncoding, DocumentedExamples) {
    EXPECT_EQ(render(R"([{"role":"system","content":"SYS"},{"role":"user","content":"Hi"}])", false),
              "<｜begin▁of▁sentence｜>SYS<｜User｜>Hi<｜Assistant｜></think>");
    EXPECT_EQ(render(R"([{"role":"system","content":"SYS"},{"role":"user","content":"Hi"}])", true),
              "<｜begin▁of▁sentence｜>SYS<｜User｜>Hi<｜Assistant｜><think>");
    const char* multi = R"([{"role":"user","content":"Q1"},
        {"role":"assistant","reasoning_content":"R1","content":"A1"},{"role":"user","content":"Q2"}])";
    EXPECT_EQ(render(multi, true),
              "<｜begin▁of▁sentence｜><｜User｜>Q1<｜Assistant｜></"
              "think>A1<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜><think>");
    EXPECT_EQ(render(multi, true, /*drop=*/false),
              "<｜begin▁of▁sentence｜><｜User｜>Q1<｜Assistant｜><think>R1</"
              "think>A1<｜end▁of▁sentence｜><｜User｜>Q2"
              "<｜Assistant｜><think>");
    EXPECT_EQ(render(R"([{"role":"system","content":"S"},{"role":"latest_reminder","content":"2026-01-01"},
        {"role":"user","content":"u"}])",
                     false),
              "<｜begin▁of▁sentence｜>S<｜latest_reminder｜>2026-01-01<｜User｜>u<｜Assistant｜></think>");
    EXPECT_EQ(render(R"([{"role":"user","content":"u","task":"query"}])", false),
              "<｜begin▁of▁sentence｜><｜User｜>u<｜query｜>");
    EXPECT_EQ(render(R"([{"role":"user","content":"u"},{"role":"assistant","content":"Sure","wo_eos":true}])",
                     false),
              "<｜begin▁of▁sentence｜><｜User｜>u<｜Assistant｜></think>Sure");
}

TEST(ChatEncoding, ToolResultsAreSortedAndMergedWithFollowingUserText) {
    const char* j = R"([{"role":"system","content":"","tools":[{"type":"function","function":{"name":"f"}}]},
        {"role":"user","content":"go"},
        {"role":"assistant","reasoning_content":"R","tool_calls":[
            {"id":"c1","type":"function","function":{"name":"f","arguments":"{\"q\": \"x\", \"n\": 3, \"o\": {\"a\": [1, 2]}}"}},
            {"id":"c2","type":"function","function":{"name":"g","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"c2","content":"res2"},
        {"role":"tool","tool_call_id":"c1","content":"res1"},
        {"role":"user","content":"and then?"}])";
    const std::string got = render(j, true);
    const std::string want_tail =
        "<｜User｜>go<｜Assistant｜><think>R</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
        "<｜DSML｜parameter name=\"q\" string=\"true\">x</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"n\" string=\"false\">3</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"o\" string=\"false\">{\"a\": [1, "
        "2]}</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
        "<｜DSML｜invoke name=\"g\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"
        "<｜User｜><tool_result>res1</tool_result>\n\n<tool_result>res2</tool_result>\n\nand "
        "then?<｜Assistant｜><think>";
    ASSERT_GE(got.size(), want_tail.size());
    EXPECT_EQ(got.substr(got.size() - want_tail.size()), want_tail);
    EXPECT_EQ(got.rfind("<｜begin▁of▁sentence｜>\n\n## Tools\n\n", 0), 0u);  // empty system + tools
}

TEST(ChatEncoding, ArgumentsAsObjectAndReasoningEffort) {
    const char* j = R"([{"role":"user","content":"u"},
        {"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"k":"v"}}}]}])";
    EXPECT_NE(render(j, false).find("<｜DSML｜parameter name=\"k\" string=\"true\">v</｜DSML｜parameter>"),
              std::string::npos);
    ChatOptions opts;
    opts.thinking = true;
    opts.reasoning_effort = "max";
    auto r = encode_messages(ojson::parse(R"([{"role":"user","content":"Hi"}])"), opts);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r.value().rfind("<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum", 0), 0u);
    EXPECT_NE(r.value().find("unchecked.\n\n<｜User｜>Hi<｜Assistant｜><think>"), std::string::npos);
    opts.thinking = false;  // the prefix is for thinking mode only
    EXPECT_EQ(encode_messages(ojson::parse(R"([{"role":"user","content":"Hi"}])"), opts).value(),
              "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜></think>");
}

TEST(ChatEncoding, BadInputIsAnErrorNotACrash) {
    ChatOptions opts;
    EXPECT_FALSE(encode_messages(ojson::parse(R"({"role":"user"})"), opts).is_ok());
    auto bad_role = encode_messages(ojson::parse(R"([{"role":"wizard","content":"x"}])"), opts);
    ASSERT_FALSE(bad_role.is_ok());
    EXPECT_NE(bad_role.message().find("unknown role 'wizard'"), std::string::npos);
    auto bad_args = encode_messages(
        ojson::parse(
            R"([{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{oops"}}]}])"),
        opts);
    ASSERT_FALSE(bad_args.is_ok());
    EXPECT_NE(bad_args.message().find("not valid JSON"), std::string::npos) << bad_args.message();
    EXPECT_FALSE(
        encode_messages(ojson::parse(R"([{"role":"user","content":"x","task":"dance"}])"), opts).is_ok());
}

TEST(ChatEncoding, RenderedPromptTokenizesControlTokensAsSingleIds) {
    const Tokenizer& tok = test::v4_tokenizer();
    const std::string p = render(R"([{"role":"user","content":"你好"}])", true);
    EXPECT_EQ(tok.encode(p, true), (std::vector<int32_t>{0, 128803, 30594, 128804, 128821}));
}

TEST(PythonJson, MatchesJsonDumps) {
    EXPECT_EQ(
        python_json_dumps(ojson::parse(R"({"b": 1, "a": [true, null, "x\"\n\u0001é"], "e": {}, "f": []})")),
        R"({"b": 1, "a": [true, null, "x\"\n\u0001é"], "e": {}, "f": []})");
    EXPECT_EQ(python_float_repr(1.0), "1.0");
    EXPECT_EQ(python_float_repr(1e-05), "1e-05");
    EXPECT_EQ(python_float_repr(0.0001), "0.0001");
    EXPECT_EQ(python_float_repr(1e16), "1e+16");
    EXPECT_EQ(python_float_repr(123456789012345.6), "123456789012345.6");
    EXPECT_EQ(python_float_repr(0.1), "0.1");
    EXPECT_EQ(python_float_repr(-2.5), "-2.5");
    EXPECT_EQ(python_float_repr(1.5e300), "1.5e+300");
}

}  // namespace
}  // namespace dsv4
