// Loopback tests of the OpenAI server over the fake runner (and a scripted one for reasoning + tools):
// endpoints, streamed == non-streamed, the bad-request table, stop strings, 429, disconnect frees the
// sequence. The real-tokenizer fixture renders and tokenizes exactly as in production.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "runtime/fake_model_runner.h"
#include "scripted_runner.h"
#include "server_test_util.h"

namespace dsv4::testing {
namespace {

EngineOptions test_engine_opts() {
    EngineOptions eo;
    eo.max_seqs = 8;
    eo.ctx_size = 1024;
    eo.max_batched_tokens = 256;
    eo.long_prefill_tokens = 128;
    eo.page_tokens = 16;
    eo.max_snapshots = 16;
    eo.eos_id = 1;
    return eo;
}

std::unique_ptr<ModelRunner> fake_runner() {
    FakeRunnerOptions fo;
    fo.vocab = v4_tok().vocab_size();
    fo.active_vocab = 3000;  // ordinary BPE pieces, plus BOS/EOS
    return std::make_unique<FakeModelRunner>(fo);
}

struct ServerTest : ::testing::Test {
    TestServer srv{fake_runner(), test_engine_opts()};
};

TEST_F(ServerTest, HealthModelsMetrics) {
    auto h = get(srv.port(), "/health");
    EXPECT_EQ(h.status, 200);
    auto m = get(srv.port(), "/v1/models");
    ASSERT_EQ(m.status, 200);
    auto j = ojson::parse(m.body);
    EXPECT_EQ(j["object"], "list");
    EXPECT_EQ(j["data"][0]["id"], "test-model");
    EXPECT_EQ(j["data"][0]["max_model_len"], 1024);
    ASSERT_EQ(post(srv.port(), "/v1/completions", R"({"prompt": "hi", "max_tokens": 3})").status, 200);
    auto met = get(srv.port(), "/metrics");
    ASSERT_EQ(met.status, 200);
    for (const char* name :
         {"dsv4:num_requests_running{", "dsv4:kv_cache_usage_perc{", "dsv4:prefix_cache_hits_total{",
          "dsv4:time_to_first_token_seconds_bucket{", "dsv4:inter_token_latency_seconds_count{",
          "dsv4:generation_tokens_total{",
          "dsv4:http_requests_total{model_name=\"test-model\",endpoint=\"completions\",status=\"200\"} 1"})
        EXPECT_NE(met.body.find(name), std::string::npos) << name;
    srv.http->set_ready(false);
    EXPECT_EQ(get(srv.port(), "/health").status, 503);
    EXPECT_EQ(get(srv.port(), "/nope").status, 404);
}

TEST_F(ServerTest, CompletionsStreamedEqualsNonStreamed) {
    const std::string req =
        R"({"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0.8, "seed": 11, "logprobs": 2)";
    auto whole = post(srv.port(), "/v1/completions", req + "}");
    ASSERT_EQ(whole.status, 200) << whole.body;
    auto j = ojson::parse(whole.body);
    auto s = post_sse(srv.port(), "/v1/completions",
                      req + R"(, "stream": true, "stream_options": {"include_usage": true}})");
    ASSERT_EQ(s.status, 200);
    EXPECT_TRUE(s.done);
    std::string text, finish;
    size_t n_lp = 0;
    ojson usage;
    for (auto& e : s.events) {
        if (e.contains("usage")) usage = e["usage"];
        if (e["choices"].empty()) continue;
        text += e["choices"][0]["text"].get<std::string>();
        if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
        if (!e["choices"][0]["logprobs"].is_null()) n_lp += e["choices"][0]["logprobs"]["tokens"].size();
    }
    EXPECT_EQ(text, j["choices"][0]["text"].get<std::string>());
    EXPECT_EQ(finish, j["choices"][0]["finish_reason"].get<std::string>());
    EXPECT_EQ(n_lp, j["choices"][0]["logprobs"]["tokens"].size());
    EXPECT_EQ(usage["completion_tokens"], j["usage"]["completion_tokens"]);
    EXPECT_EQ(usage["prompt_tokens"], j["usage"]["prompt_tokens"]);
}

TEST_F(ServerTest, ChatStreamedEqualsNonStreamedAndPrefixCacheHits) {
    const std::string msgs =
        R"("messages": [{"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."},
                        {"role": "user", "content": "Tell me a story about a cat and a dog."}])";
    const std::string req = "{" + msgs + R"(, "max_tokens": 20, "temperature": 0.7, "seed": 3)";
    auto whole = post(srv.port(), "/v1/chat/completions", req + "}");
    ASSERT_EQ(whole.status, 200) << whole.body;
    auto j = ojson::parse(whole.body);
    auto s = post_sse(srv.port(), "/v1/chat/completions",
                      req + R"(, "stream": true, "stream_options": {"include_usage": true}})");
    ASSERT_TRUE(s.done);
    std::string reasoning, content, finish;
    ojson usage;
    ASSERT_FALSE(s.events.empty());
    EXPECT_EQ(s.events[0]["choices"][0]["delta"]["role"], "assistant");
    for (auto& e : s.events) {
        EXPECT_EQ(e["id"], s.events[0]["id"]);
        if (e.contains("usage")) usage = e["usage"];
        if (e["choices"].empty()) continue;
        auto& d = e["choices"][0]["delta"];
        if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
        if (d.contains("content")) content += d["content"].get<std::string>();
        if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
    }
    auto& msg = j["choices"][0]["message"];
    EXPECT_EQ(reasoning, msg["reasoning_content"].get<std::string>());
    EXPECT_EQ(content, msg["content"].is_null() ? "" : msg["content"].get<std::string>());
    EXPECT_EQ(finish, j["choices"][0]["finish_reason"].get<std::string>());
    // the second identical prompt restores a prefix snapshot
    EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    EXPECT_GT(usage["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
    EXPECT_EQ(usage["completion_tokens"], j["usage"]["completion_tokens"]);
}

TEST_F(ServerTest, StopStringCutsOutputAndEndsRequest) {
    const std::string req = R"({"prompt": "abc", "max_tokens": 40, "temperature": 0)";
    auto full = ojson::parse(post(srv.port(), "/v1/completions", req + "}").body);
    std::string text = full["choices"][0]["text"];
    ASSERT_GT(text.size(), 12u);
    // a 3-byte ASCII stop string from the second half (never splits a UTF-8 character)
    std::string stop;
    for (size_t i = text.size() / 2; i + 3 <= text.size() && stop.empty(); ++i)
        if (std::isalnum((unsigned char)text[i]) && std::isalnum((unsigned char)text[i + 1]) &&
            std::isalnum((unsigned char)text[i + 2]))
            stop = text.substr(i, 3);
    if (stop.empty()) GTEST_SKIP() << "no ASCII run in " << text;
    size_t first = text.find(stop);
    ojson stop_req = ojson::parse(req + "}");
    stop_req["stop"] = {stop};
    auto cut = ojson::parse(post(srv.port(), "/v1/completions", stop_req.dump()).body);
    EXPECT_EQ(cut["choices"][0]["text"], text.substr(0, first));
    EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");
    stop_req["stream"] = true;
    auto s = post_sse(srv.port(), "/v1/completions", stop_req.dump());
    std::string streamed;
    for (auto& e : s.events) streamed += e["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(streamed, text.substr(0, first));
}

TEST_F(ServerTest, BadRequestTable) {
    struct Case {
        const char* path;
        std::string body;
        int status;
        const char* message;  // substring of error.message
        const char* param;
    };
    const std::string long_prompt = "\"" + std::string(3000, 'x') + " " + std::string(3000, 'y') + "\"";
    const std::vector<Case> cases = {
        {"/v1/chat/completions", "{not json", 400, "not valid JSON", ""},
        {"/v1/chat/completions", "[1, 2]", 400, "must be a JSON object", ""},
        {"/v1/chat/completions", R"({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})", 404,
         "does not exist", "model"},
        {"/v1/chat/completions", R"({"messages": []})", 400, "must not be empty", "messages"},
        {"/v1/chat/completions", R"({"messages": "hi"})", 400, "'messages' must be an array", "messages"},
        {"/v1/chat/completions", R"({})", 400, "missing required parameter 'messages'", "messages"},
        {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
         "is not one of", "messages[0].role"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 5}]})", 400,
         "must be a string or an array", "messages[0].content"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "temperature": 3})", 400,
         "'temperature' must be in [0, 2]", "temperature"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})",
         400, "must be a number", "temperature"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", 400,
         "'top_p' must be in (0, 1]", "top_p"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "top_k": 0})", 400,
         "'top_k' must be -1", "top_k"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "min_p": 1.5})", 400,
         "'min_p'", "min_p"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "presence_penalty": -3})", 400,
         "presence_penalty", "presence_penalty"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", 400,
         "'max_tokens' must be in [1,", "max_tokens"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})",
         400, "must be an integer", "max_tokens"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "n": 2})", 400,
         "'n' must be 1", "n"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", 400,
         "must be a boolean", "stream"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3})",
         400, "requires 'logprobs': true", "top_logprobs"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", 400,
         "'top_logprobs' must be in [0, 20]", "top_logprobs"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "stop": [1]})", 400,
         "'stop' must be a string or an array of strings", "stop"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"abc": 1}})", 400,
         "is not a token id", "logit_bias"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"5": 101}})", 400, "[-100, 100]",
         "logit_bias"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"})", 400,
         "reasoning_effort must be one of", "reasoning_effort"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "maybe"}})", 400,
         "thinking.type", "thinking.type"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f"}}]})",
         400, "constrained decoding", "tool_choice"},
        {"/v1/chat/completions",
         R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", 400,
         "each tool must be", "tools"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": )" + long_prompt + "}]}", 400,
         "maximum context length is 1024 tokens", "messages"},
        {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5000})",
         400, "maximum context length is 1024 tokens", "max_tokens"},
        {"/v1/completions", R"({"max_tokens": 3})", 400, "missing required parameter 'prompt'", "prompt"},
        {"/v1/completions", R"({"prompt": ["a", "b"]})", 400, "batched prompts are not supported", "prompt"},
        {"/v1/completions", R"({"prompt": [1, 999999999]})", 400,
         "prompt token ids must be integers in [0, 129280)", "prompt"},
        {"/v1/completions", R"({"prompt": "x", "logprobs": 30})", 400, "'logprobs' must be in [0, 20]",
         "logprobs"},
        {"/v1/completions", R"({"prompt": "x", "seed": "abc"})", 400, "must be an integer", "seed"},
    };
    for (const auto& c : cases) {
        auto r = post(srv.port(), c.path, c.body);
        ASSERT_TRUE(r.transport_ok) << c.body;
        EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
        auto j = ojson::parse(r.body, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << r.body;
        ASSERT_TRUE(j.contains("error")) << r.body;
        EXPECT_NE(j["error"]["message"].get<std::string>().find(c.message), std::string::npos)
            << c.body << " -> " << j["error"]["message"];
        EXPECT_EQ(j["error"]["param"].is_null() ? std::string() : j["error"]["param"].get<std::string>(),
                  c.param)
            << c.body;
        EXPECT_TRUE(j["error"].contains("type") && j["error"].contains("code")) << r.body;
    }
    // the server is still healthy after all that
    EXPECT_EQ(post(srv.port(), "/v1/completions", R"({"prompt": "ok", "max_tokens": 2})").status, 200);
}

TEST_F(ServerTest, DisconnectMidStreamFreesTheSequence) {
    auto s = post_sse(srv.port(), "/v1/completions",
                      R"({"prompt": "go on", "max_tokens": 900, "ignore_eos": true, "stream": true})", 3);
    EXPECT_TRUE(s.hung_up);
    EXPECT_FALSE(s.done);
    // the engine must drop it within a step or two, not after 900 tokens
    auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        EngineMetrics m = srv.engine->metrics();
        if (m.requests_running == 0 && m.requests_waiting == 0) break;
        ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "sequence not freed";
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(srv.engine->pool_usage().slots_used, 0);
    EXPECT_LT(srv.engine->metrics().generation_tokens, 900u);
    EXPECT_EQ(srv.engine->metrics().finished.at("abort"), 1u);
}

TEST(ServerBusy, QueueFullAnswers429) {
    EngineOptions eo = test_engine_opts();
    eo.max_waiting = 0;
    TestServer srv(fake_runner(), eo);
    auto r = post(srv.port(), "/v1/completions", R"({"prompt": "x", "max_tokens": 2})");
    EXPECT_EQ(r.status, 429);
    EXPECT_EQ(r.retry_after, "1");
    EXPECT_NE(r.body.find("server busy"), std::string::npos) << r.body;
}

// Exact model output through the whole stack: reasoning, then a DSML tool call, then EOS.
TEST(ServerScripted, ReasoningAndToolCallStreamedEqualsNonStreamed) {
    const Tokenizer& tok = v4_tok();
    const std::string completion =
        "The user wants the weather in Paris, so I call the tool.</think>\n\n<｜DSML｜tool_calls>\n"
        "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Paris, "
        "\"FR\"</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"days\" "
        "string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
    const int32_t think = *tok.token_id("<think>");
    auto runner = std::make_unique<ScriptedRunner>(tok.vocab_size(), std::vector<int32_t>{think},
                                                   tok.encode(completion, true), 1);
    TestServer srv(std::move(runner), test_engine_opts());
    const std::string req =
        R"({"model": "test-model", "messages": [{"role": "user", "content": "Weather in Paris for 3 days?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Forecast",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}],
        "reasoning_effort": "high")";
    auto whole = post(srv.port(), "/v1/chat/completions", req + "}");
    ASSERT_EQ(whole.status, 200) << whole.body;
    auto j = ojson::parse(whole.body);
    auto& msg = j["choices"][0]["message"];
    EXPECT_EQ(msg["reasoning_content"], "The user wants the weather in Paris, so I call the tool.");
    EXPECT_TRUE(msg["content"].is_null());
    ASSERT_EQ(msg["tool_calls"].size(), 1u);
    EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
    auto args = ojson::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>());
    EXPECT_EQ(args["city"], "Paris, \"FR\"");
    EXPECT_EQ(args["days"], 3);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");

    auto s = post_sse(srv.port(), "/v1/chat/completions",
                      req + R"(, "stream": true, "stream_options": {"include_usage": true}})");
    ASSERT_TRUE(s.done);
    std::string reasoning, arguments, name, finish, call_id;
    for (auto& e : s.events) {
        if (e["choices"].empty()) continue;
        auto& d = e["choices"][0]["delta"];
        if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
        EXPECT_FALSE(d.contains("content") && !d["content"].get<std::string>().empty()) << e.dump();
        if (d.contains("tool_calls")) {
            auto& c = d["tool_calls"][0];
            EXPECT_EQ(c["index"], 0);
            if (c.contains("id")) {
                EXPECT_TRUE(call_id.empty());
                call_id = c["id"];
                name = c["function"]["name"];
                EXPECT_EQ(c["type"], "function");
            }
            arguments += c["function"]["arguments"].get<std::string>();
        }
        if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(reasoning, msg["reasoning_content"]);
    EXPECT_EQ(name, "get_weather");
    EXPECT_EQ(call_id.rfind("call_", 0), 0u);
    EXPECT_EQ(arguments, msg["tool_calls"][0]["function"]["arguments"]);
    EXPECT_EQ(finish, "tool_calls");
    // keep a transcript for the docs / issue report
    std::ofstream(::testing::TempDir() + "dsv4_chat_transcript.txt")
        << "POST /v1/chat/completions\n"
        << req << R"(, "stream": true, "stream_options": {"include_usage": true}})"
        << "\n\n"
        << s.raw;
}

}  // namespace
}  // namespace dsv4::testing
