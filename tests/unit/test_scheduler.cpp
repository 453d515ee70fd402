// Engine + scheduler with the deterministic fake runner: greedy tokens alone == in mixed batches,
// prefix-cache hit == miss, budget per step, preemption under memory pressure, cancellation frees
// everything, clean rejections, runner failures isolated to their requests, engine thread + queues.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <thread>

#include "runtime/engine.h"
#include "runtime/fake_model_runner.h"

namespace dsv4 {
namespace {

constexpr int kVocab = 64;

EngineOptions small_opts() {
    EngineOptions o;
    o.max_seqs = 4;
    o.ctx_size = 512;
    o.max_batched_tokens = 64;
    o.long_prefill_tokens = 32;
    o.page_tokens = 16;
    o.max_snapshots = 8;
    o.eos_id = 1;
    return o;
}

std::unique_ptr<Engine> make_engine(EngineOptions o, FakeRunnerOptions fo = {}) {
    fo.vocab = kVocab;
    auto e = Engine::create(std::make_unique<FakeModelRunner>(fo), o);
    EXPECT_TRUE(e.is_ok()) << e.message();
    return std::move(e).value();
}

std::vector<int32_t> make_prompt(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back(2 + int32_t(rng() % (kVocab - 2)));
    return p;
}

Request greedy_request(std::vector<int32_t> prompt, int max_tokens) {
    Request r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    return r;
}

struct Collected {
    std::vector<int32_t> tokens;
    FinishReason finish = FinishReason::none;
    int n_cached = 0;
    std::string error;
};

Collected drain(EventChannel& ch) {
    Collected c;
    while (auto ev = ch.try_pop()) {
        if (ev->has_token) c.tokens.push_back(ev->token);
        if (ev->finish != FinishReason::none) {
            c.finish = ev->finish;
            c.n_cached = ev->n_cached;
            c.error = ev->error;
        }
    }
    return c;
}

// the oracle: greedy continuation straight from the fake runner's logits
std::vector<int32_t> oracle_greedy(std::vector<int32_t> seq, int n) {
    FakeRunnerOptions fo;
    fo.vocab = kVocab;
    FakeModelRunner fake(fo);
    std::vector<float> logits(kVocab);
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
        fake.logits_for_prefix(seq, logits.data());
        int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        out.push_back(best);
        seq.push_back(best);
    }
    return out;
}

void expect_pools_empty(Engine& e) {
    e.clear_prefix_cache();
    PoolUsage u = e.pool_usage();
    EXPECT_EQ(u.pages_used, 0);
    EXPECT_EQ(u.slots_used, 0);
    EXPECT_EQ(u.snapshots_used, 0);
    auto& fake = static_cast<FakeModelRunner&>(e.runner());
    EXPECT_EQ(fake.live_seqs(), 0u);
}

TEST(Engine, GreedyAloneMatchesOracle) {
    auto e = make_engine(small_opts());
    auto prompt = make_prompt(37, 1);
    auto rs = e->submit(greedy_request(prompt, 12));
    ASSERT_TRUE(rs.is_ok()) << rs.message();
    e->run_until_idle();
    Collected c = drain(*rs->events);
    EXPECT_EQ(c.finish, FinishReason::length);
    EXPECT_EQ(c.tokens, oracle_greedy(prompt, 12));
    expect_pools_empty(*e);
}

TEST(Engine, GreedyInMixedBatchEqualsAlone) {
    const std::vector<int> lengths = {1, 5, 16, 17, 33, 100, 3, 250, 64, 2};
    std::vector<std::vector<int32_t>> alone;
    for (size_t i = 0; i < lengths.size(); ++i)
        alone.push_back(oracle_greedy(make_prompt(lengths[i], 10 + i), 9));
    EngineOptions o = small_opts();
    o.max_snapshots = 0;
    auto e = make_engine(o);
    std::vector<RequestStream> streams;
    for (size_t i = 0; i < lengths.size(); ++i)
        streams.push_back(e->submit(greedy_request(make_prompt(lengths[i], 10 + i), 9)).value());
    auto& fake = static_cast<FakeModelRunner&>(e->runner());
    int64_t before = fake.tokens_processed();
    int steps = 0;
    while (!e->idle()) {
        ASSERT_TRUE(e->step().is_ok());
        int64_t now = fake.tokens_processed();
        EXPECT_LE(now - before, o.max_batched_tokens);  // S2: step tokens within the budget
        before = now;
        ASSERT_LT(++steps, 10000);
    }
    for (size_t i = 0; i < streams.size(); ++i) {
        Collected c = drain(*streams[i].events);
        EXPECT_EQ(c.tokens, alone[i]) << "request " << i << " prompt length " << lengths[i];
    }
    expect_pools_empty(*e);
}

TEST(Engine, SeededSamplingIndependentOfBatch) {
    auto run = [](bool crowded) {
        auto e = make_engine(small_opts());
        Request r = greedy_request(make_prompt(20, 5), 16);
        r.sampling.temperature = 0.9f;
        r.sampling.top_p = 0.95f;
        r.sampling.seed = 77;
        if (crowded)
            for (int i = 0; i < 6; ++i) (void)e->submit(greedy_request(make_prompt(40 + i, 50 + i), 20));
        auto rs = e->submit(r);
        e->run_until_idle();
        return drain(*rs->events).tokens;
    };
    EXPECT_EQ(run(false), run(true));
}

TEST(Engine, PrefixCacheHitEqualsMiss) {
    auto e = make_engine(small_opts());
    auto prompt = make_prompt(90, 3);
    auto a = e->submit(greedy_request(prompt, 8));
    e->run_until_idle();
    Collected ca = drain(*a->events);
    EXPECT_EQ(ca.n_cached, 0);
    auto b = e->submit(greedy_request(prompt, 8));
    e->run_until_idle();
    Collected cb = drain(*b->events);
    EXPECT_EQ(cb.n_cached, 80);  // replay boundary: last multiple of 16 <= 89
    EXPECT_EQ(ca.tokens, cb.tokens);
    EXPECT_EQ(cb.tokens, oracle_greedy(prompt, 8));
    EngineMetrics m = e->metrics();
    EXPECT_EQ(m.prefix_queries, 2u);
    EXPECT_EQ(m.prefix_hits, 1u);
    EXPECT_EQ(m.prefix_hit_tokens, 80u);
    expect_pools_empty(*e);
}

TEST(Engine, SharedSystemPromptHitsFromJunction) {
    auto e = make_engine(small_opts());
    auto system = make_prompt(40, 4);  // shared 40 tokens: two full blocks of 16
    auto with = [&](uint32_t seed) {
        auto p = system;
        auto tail = make_prompt(30, seed);
        p.insert(p.end(), tail.begin(), tail.end());
        return p;
    };
    std::vector<std::vector<int32_t>> prompts = {with(100), with(101), with(102)};
    std::vector<int> cached;
    for (auto& p : prompts) {
        auto rs = e->submit(greedy_request(p, 4));
        e->run_until_idle();
        Collected c = drain(*rs->events);
        EXPECT_EQ(c.tokens, oracle_greedy(p, 4));
        cached.push_back(c.n_cached);
    }
    // 1st: cold; 2nd: its chain meets the 1st at block 2 -> snapshot there, but no hit yet; 3rd: hit at 32
    EXPECT_EQ(cached, (std::vector<int>{0, 0, 32}));
    expect_pools_empty(*e);
}

TEST(Engine, CacheSaltIsolates) {
    auto e = make_engine(small_opts());
    auto prompt = make_prompt(50, 8);
    Request a = greedy_request(prompt, 2);
    a.cache_salt = "tenant-a";
    (void)e->submit(a);
    e->run_until_idle();
    Request b = greedy_request(prompt, 2);
    b.cache_salt = "tenant-b";
    auto rb = e->submit(b);
    e->run_until_idle();
    EXPECT_EQ(drain(*rb->events).n_cached, 0);
}

TEST(Engine, PreemptionUnderMemoryPressureKeepsOutputs) {
    EngineOptions o = small_opts();
    o.max_seqs = 4;
    o.ctx_size = 128;
    o.max_snapshots = 2;
    o.geometry = StateGeometry{1, 1};
    o.memory_budget = (4 + 2) * 1 + 16 * 10;  // 10 pages of 16 tokens: far less than 4 x 128 tokens
    auto e = make_engine(o);
    std::vector<std::vector<int32_t>> prompts;
    std::vector<RequestStream> streams;
    for (int i = 0; i < 8; ++i) {
        prompts.push_back(make_prompt(20 + 7 * i, 200 + i));
        streams.push_back(e->submit(greedy_request(prompts.back(), 50)).value());
    }
    int steps = e->run_until_idle(100000);
    EXPECT_TRUE(e->idle()) << steps;
    for (size_t i = 0; i < streams.size(); ++i) {
        Collected c = drain(*streams[i].events);
        EXPECT_EQ(c.finish, FinishReason::length);
        EXPECT_EQ(c.tokens, oracle_greedy(prompts[i], 50)) << "request " << i;
    }
    EXPECT_GT(e->metrics().preemptions, 0u);
    expect_pools_empty(*e);
}

TEST(Engine, AbortFreesEverythingWithinOneStep) {
    auto e = make_engine(small_opts());
    auto running = e->submit(greedy_request(make_prompt(100, 9), 200));
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(e->step().is_ok());
    EXPECT_GT(e->pool_usage().pages_used, 0);
    auto waiting_req = e->submit(greedy_request(make_prompt(10, 9), 5));
    e->abort(running->id);
    e->abort(waiting_req->id);
    ASSERT_TRUE(e->step().is_ok());
    EXPECT_TRUE(e->idle());
    Collected c = drain(*running->events);
    EXPECT_EQ(c.finish, FinishReason::abort);
    EXPECT_FALSE(c.tokens.empty());
    EXPECT_EQ(drain(*waiting_req->events).finish, FinishReason::abort);
    expect_pools_empty(*e);
}

TEST(Engine, RejectsCleanly) {
    EngineOptions o = small_opts();
    o.max_waiting = 2;
    auto e = make_engine(o);
    SubmitError why;
    auto too_long = e->submit(greedy_request(make_prompt(500, 1), 100), &why);
    ASSERT_FALSE(too_long.is_ok());
    EXPECT_EQ(why, SubmitError::too_long);
    EXPECT_NE(too_long.message().find("maximum context length is 512 tokens"), std::string::npos)
        << too_long.message();
    auto bad_id = e->submit(greedy_request({5, kVocab + 3}, 4), &why);
    EXPECT_EQ(why, SubmitError::invalid);
    EXPECT_NE(bad_id.message().find("outside the vocabulary"), std::string::npos);
    EXPECT_FALSE(e->submit(greedy_request({}, 4), &why).is_ok());
    ASSERT_TRUE(e->submit(greedy_request({3}, 4)).is_ok());
    ASSERT_TRUE(e->submit(greedy_request({3}, 4)).is_ok());
    auto busy = e->submit(greedy_request({3}, 4), &why);
    EXPECT_EQ(why, SubmitError::busy);
    e->run_until_idle();
    EXPECT_TRUE(e->submit(greedy_request({3}, 4)).is_ok());
}

TEST(Engine, StopTokenAndEos) {
    auto e = make_engine(small_opts());
    auto prompt = make_prompt(12, 21);
    auto expect = oracle_greedy(prompt, 10);
    Request r = greedy_request(prompt, 10);
    r.sampling.stop_token_ids = {expect[3]};
    auto rs = e->submit(r);
    e->run_until_idle();
    Collected c = drain(*rs->events);
    EXPECT_EQ(c.finish, FinishReason::stop);
    auto stop_at = std::find(expect.begin(), expect.end(), expect[3]) - expect.begin();
    EXPECT_EQ(c.tokens, std::vector<int32_t>(expect.begin(), expect.begin() + stop_at + 1));
}

TEST(Engine, RunnerFailureFailsOnlyItsRequest) {
    FakeRunnerOptions fo;
    fo.fail_on_token = 63;
    auto e = make_engine(small_opts(), fo);
    auto bad = e->submit(greedy_request({5, 6, 63, 7}, 4));
    e->run_until_idle();
    Collected cb = drain(*bad->events);
    EXPECT_EQ(cb.finish, FinishReason::error);
    EXPECT_NE(cb.error.find("injected failure"), std::string::npos) << cb.error;
    auto good = e->submit(greedy_request({5, 6, 7}, 4));
    e->run_until_idle();
    EXPECT_EQ(drain(*good->events).finish, FinishReason::length);
    expect_pools_empty(*e);
}

TEST(Engine, ThreadedSubmitAndAbortFromManyClients) {
    auto e = make_engine(small_opts());
    e->start();
    std::vector<std::thread> clients;
    std::atomic<int> completed{0}, aborted{0};
    for (int t = 0; t < 8; ++t) {
        clients.emplace_back([&, t] {
            for (int k = 0; k < 10; ++k) {
                auto prompt = make_prompt(5 + (t * 13 + k * 7) % 60, uint32_t(t * 100 + k));
                auto rs = e->submit(greedy_request(prompt, 8));
                ASSERT_TRUE(rs.is_ok()) << rs.message();
                if ((t + k) % 4 == 0) e->abort(rs->id);
                std::vector<int32_t> got;
                FinishReason fin = FinishReason::none;
                while (fin == FinishReason::none) {
                    auto ev = rs->events->pop_for(std::chrono::seconds(10));
                    ASSERT_TRUE(ev.has_value()) << "no event within 10 s";
                    if (ev->has_token) got.push_back(ev->token);
                    fin = ev->finish;
                }
                if (fin == FinishReason::abort) {
                    aborted++;
                } else {
                    EXPECT_EQ(got, oracle_greedy(prompt, 8));
                    completed++;
                }
            }
        });
    }
    for (auto& c : clients) c.join();
    e->stop();
    EXPECT_EQ(completed + aborted, 80);
    expect_pools_empty(*e);
}

}  // namespace
}  // namespace dsv4
