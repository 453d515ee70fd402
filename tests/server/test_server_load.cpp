// Load test: 64 concurrent clients x 10 requests, chat and completions, streamed and not, with random
// hang-ups mid-stream. Every request completes or fails cleanly (no 5xx, no transport error, every
// finished stream ends in [DONE]), nothing hangs, and the state pools return to empty.
// Prints requests, failures, p50/p99 latency and RSS before/after (the figures of issue 7).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "runtime/fake_model_runner.h"
#include "server_test_util.h"

namespace dsv4::testing {
namespace {

TEST(ServerLoad, SixtyFourClientsTenRequestsWithHangUps) {
    constexpr int kClients = 64, kRequests = 10;
    FakeRunnerOptions fo;
    fo.vocab = v4_tok().vocab_size();
    fo.active_vocab = 3000;
    auto runner = std::make_unique<FakeModelRunner>(fo);
    FakeModelRunner* fake = runner.get();
    EngineOptions eo;
    eo.max_seqs = 16;
    eo.ctx_size = 256;
    eo.max_batched_tokens = 256;
    eo.long_prefill_tokens = 128;
    eo.page_tokens = 16;
    eo.max_snapshots = 32;
    eo.eos_id = 1;
    // tight state memory: 24 pages of 16 tokens for 16 running sequences of ~25-45 tokens plus the
    // prefix cache, so snapshots get evicted and sequences preempted under load
    eo.geometry = StateGeometry{1, 1};
    eo.memory_budget = (16 + 32) * 1 + 24 * 16;
    TestServer srv(std::move(runner), eo);
    const long rss_before = proc_status_kib("VmRSS:");

    std::atomic<int> ok{0}, hung_up{0}, failures{0};
    std::vector<std::vector<double>> latencies(kClients);
    std::vector<std::string> failure_notes(kClients);
    auto t_start = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            std::mt19937 rng(1000 + c);
            for (int k = 0; k < kRequests; ++k) {
                const int kind = (c + k) % 4;  // chat/completions x stream/not
                const bool stream = kind % 2 == 0;
                const bool hang_up = stream && rng() % 4 == 0;
                ojson body;
                body["max_tokens"] = 4 + int(rng() % 13);
                body["temperature"] = 0.8;
                body["seed"] = c * 100 + k;
                const std::string shared =
                    "You are a terse assistant serving a load test. ";  // prefix-cache hits
                if (kind < 2) {
                    body["messages"] = ojson::array(
                        {ojson{{"role", "system"}, {"content", shared}},
                         ojson{{"role", "user"},
                               {"content", "client " + std::to_string(c) + " asks " + std::to_string(k)}}});
                } else {
                    body["prompt"] = shared + "client " + std::to_string(c) + " request " + std::to_string(k);
                }
                body["stream"] = stream;
                const std::string path = kind < 2 ? "/v1/chat/completions" : "/v1/completions";
                auto t0 = std::chrono::steady_clock::now();
                bool good = false;
                if (stream) {
                    auto s = post_sse(srv.port(), path, body.dump(), hang_up ? 2 : -1);
                    if (s.hung_up) {
                        hung_up++;
                        continue;
                    }
                    good = s.status == 200 && s.done && !s.events.empty() &&
                           !s.events.back()["choices"].empty() &&
                           !s.events.back()["choices"][0]["finish_reason"].is_null();
                    if (!good)
                        failure_notes[c] = fmt::format("stream status {} done {} raw {}", s.status, s.done,
                                                       s.raw.substr(0, 300));
                } else {
                    auto r = post(srv.port(), path, body.dump());
                    auto j = ojson::parse(r.body, nullptr, false);
                    good = r.status == 200 && !j.is_discarded() && j.contains("choices") &&
                           !j["choices"][0]["finish_reason"].is_null();
                    if (!good)
                        failure_notes[c] = fmt::format("status {} error '{}' body {}", r.status,
                                                       r.transport_error, r.body.substr(0, 300));
                }
                latencies[c].push_back(
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
                (good ? ok : failures)++;
            }
        });
    }
    for (auto& t : clients) t.join();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

    // every sequence is gone within a short time (hung-up streams are aborted, not run to the end)
    auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        EngineMetrics m = srv.engine->metrics();
        if (m.requests_running == 0 && m.requests_waiting == 0) break;
        ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20)) << "engine did not drain";
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(srv.engine->pool_usage().slots_used, 0);
    EngineMetrics m = srv.engine->metrics();
    const long rss_after = proc_status_kib("VmRSS:");
    const long rss_peak = proc_status_kib("VmHWM:");

    std::vector<double> all;
    for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
        return all.empty() ? 0.0 : all[std::min(all.size() - 1, size_t(p * double(all.size())))];
    };
    std::printf("[load] %d requests: %d ok, %d hung up by the client, %d failed; wall %.2f s\n",
                kClients * kRequests, ok.load(), hung_up.load(), failures.load(), wall);
    std::printf("[load] latency p50 %.3f s, p99 %.3f s, max %.3f s (completed requests)\n", pct(0.5),
                pct(0.99), pct(1.0));
    std::printf(
        "[load] engine: %llu generated tokens, %llu prompt tokens, prefix hits %llu/%llu, preemptions %llu, "
        "aborts %llu\n",
        (unsigned long long)m.generation_tokens, (unsigned long long)m.prompt_tokens,
        (unsigned long long)m.prefix_hits, (unsigned long long)m.prefix_queries,
        (unsigned long long)m.preemptions,
        (unsigned long long)(m.finished.count("abort") ? m.finished.at("abort") : 0));
    std::printf("[load] RSS before %ld KiB, after %ld KiB, peak %ld KiB\n", rss_before, rss_after, rss_peak);
    for (auto& n : failure_notes)
        if (!n.empty()) std::printf("[load] failure: %s\n", n.c_str());

    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(ok + hung_up, kClients * kRequests);
    EXPECT_GT(m.prefix_hits, 0u);

    // after shutdown every pool and runner state is released
    srv.shutdown();
    srv.engine->clear_prefix_cache();
    PoolUsage u = srv.engine->pool_usage();
    EXPECT_EQ(u.pages_used, 0);
    EXPECT_EQ(u.slots_used, 0);
    EXPECT_EQ(u.snapshots_used, 0);
    EXPECT_EQ(fake->live_seqs(), 0u);
}

}  // namespace
}  // namespace dsv4::testing
