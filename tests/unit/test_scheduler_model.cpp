// Engine over the real CPU model (tiny HF-golden fixtures): HF's 32 greedy tokens through chunked
// prefill + batching + prefix cache; a sequence alone == in a batch of mixed lengths; prefix-cache
// hit == miss. The fake-runner tests cover the scheduler logic; these prove the runner adapter.
#include <gtest/gtest.h>

#include <random>

#include "format/safetensors.h"
#include "runtime/engine.h"
#include "runtime/model_runner_cpu.h"
#include "runtime/state_geometry.h"

namespace dsv4 {
namespace {

struct Fixture {
    std::shared_ptr<const Model> model;
    std::vector<int32_t> prompt, greedy;
};

Fixture load_fixture(const std::string& name) {
    Fixture f;
    const std::string dir = std::string(DSV4_FIXTURES_DIR) + "/" + name;
    LoadOptions lo;
    lo.verbose = false;
    auto m = Model::load(dir, lo);
    DSV4_ASSERT(m.is_ok(), "{}", m.message());
    f.model = std::shared_ptr<const Model>(std::move(m).value());
    auto g = SafetensorsFile::open(dir + "/golden.safetensors");
    DSV4_ASSERT(g.is_ok(), "{}", g.message());
    for (auto [key, out] : {std::pair{"input_ids", &f.prompt}, std::pair{"greedy.tokens", &f.greedy}}) {
        const TensorInfo* t = (*g)->find(key);
        DSV4_ASSERT(t != nullptr, "golden file lacks {}", key);
        auto* p = reinterpret_cast<const int64_t*>(t->data);
        for (int64_t i = 0; i < t->numel(); ++i) out->push_back(int32_t(p[i]));
    }
    return f;
}

std::unique_ptr<Engine> make_engine(const Fixture& f, int page_tokens, int snapshots) {
    EngineOptions eo;
    eo.max_seqs = 4;
    eo.ctx_size = 256;
    eo.max_batched_tokens = 24;  // small budget and chunks: prefill runs in many pieces
    eo.long_prefill_tokens = 7;
    eo.page_tokens = page_tokens;
    eo.max_snapshots = snapshots;
    eo.eos_id = f.model->config().eos_token_id;
    eo.geometry = state_geometry(f.model->config());
    auto e = Engine::create(std::make_unique<ModelRunnerCpu>(f.model, 256), eo);
    DSV4_ASSERT(e.is_ok(), "{}", e.message());
    return std::move(e).value();
}

Request greedy(std::vector<int32_t> prompt, int n) {
    Request r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = n;
    r.sampling.ignore_eos = true;
    return r;
}

std::vector<int32_t> collect(EventChannel& ch, int* cached = nullptr) {
    std::vector<int32_t> out;
    while (auto ev = ch.try_pop()) {
        if (ev->has_token) out.push_back(ev->token);
        if (ev->finish != FinishReason::none && cached) *cached = ev->n_cached;
    }
    return out;
}

class EngineModel : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineModel, GreedyMatchesHfThroughChunkedPrefill) {
    Fixture f = load_fixture(GetParam());
    auto e = make_engine(f, 8, 0);
    auto rs = e->submit(greedy(f.prompt, int(f.greedy.size())));
    ASSERT_TRUE(rs.is_ok()) << rs.message();
    e->run_until_idle();
    EXPECT_EQ(collect(*rs->events), f.greedy);
}

TEST_P(EngineModel, AloneEqualsMixedBatchAndPrefixHitEqualsMiss) {
    Fixture f = load_fixture(GetParam());
    const int64_t vocab = f.model->config().vocab_size;
    std::mt19937 rng(5);
    std::vector<std::vector<int32_t>> prompts = {f.prompt};
    for (int len : {1, 9, 33}) {
        std::vector<int32_t> p;
        for (int i = 0; i < len; ++i) p.push_back(2 + int32_t(rng() % uint32_t(vocab - 2)));
        prompts.push_back(p);
    }
    std::vector<std::vector<int32_t>> alone;
    for (auto& p : prompts) {
        auto e = make_engine(f, 8, 0);
        auto rs = e->submit(greedy(p, 12));
        e->run_until_idle();
        alone.push_back(collect(*rs->events));
    }
    // all at once, with the prefix cache on (page 8 tokens): first pass cold, second pass hits
    auto e = make_engine(f, 8, 8);
    for (int pass = 0; pass < 2; ++pass) {
        std::vector<RequestStream> rss;
        for (auto& p : prompts) rss.push_back(e->submit(greedy(p, 12)).value());
        e->run_until_idle();
        for (size_t i = 0; i < prompts.size(); ++i) {
            int cached = -1;
            EXPECT_EQ(collect(*rss[i].events, &cached), alone[i]) << "prompt " << i << " pass " << pass;
            if (pass == 1 && prompts[i].size() > 8) {
                EXPECT_GT(cached, 0) << "prompt " << i;
            }
        }
    }
    EXPECT_GT(e->metrics().prefix_hits, 0u);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineModel, ::testing::Values("tiny_a", "tiny_b"));

}  // namespace
}  // namespace dsv4
