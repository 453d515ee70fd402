// The official OpenAI npm client talks to the server unchanged (tests/server/openai_client/client.mjs).
// Skipped when node or the package is missing (install: `cd tests/server/openai_client && npm ci`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "scripted_runner.h"
#include "server_test_util.h"

namespace dsv4::testing {
namespace {

TEST(OpenAiNodeClient, TalksToServerUnchanged) {
    const std::string dir = std::string(DSV4_SOURCE_DIR) + "/tests/server/openai_client";
    if (!std::filesystem::exists(dir + "/node_modules/openai"))
        GTEST_SKIP() << "npm package openai not installed in " << dir;
    if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node not found";
    const Tokenizer& tok = v4_tok();
    const std::string completion =
        "I need the weather tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
        "<｜DSML｜parameter name=\"city\" string=\"true\">Paris, \"FR\"</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"days\" "
        "string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
    // <think> ends chat prompts in thinking mode; the raw completions prompt gets EOS at once
    auto runner = std::make_unique<ScriptedRunner>(
        tok.vocab_size(), std::vector<int32_t>{*tok.token_id("<think>")}, tok.encode(completion, true), 1);
    EngineOptions eo;
    eo.max_seqs = 4;
    eo.ctx_size = 2048;
    eo.page_tokens = 16;
    TestServer srv(std::move(runner), eo);
    const std::string cmd = "node " + dir + "/client.mjs " + std::to_string(srv.port()) + " test-model";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace dsv4::testing
