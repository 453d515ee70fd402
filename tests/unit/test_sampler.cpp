// Sampler and StopMatcher: order of steps on crafted logits, truncation edge cases, keyed RNG
// reproducibility and frequencies, penalties, logprobs; stop strings across feed boundaries.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "runtime/sampler.h"
#include "runtime/stop_matcher.h"

namespace dsv4 {
namespace {

// logits whose softmax is exactly `probs`
std::vector<float> logits_of(std::vector<double> probs) {
    std::vector<float> out;
    for (double p : probs) out.push_back(float(std::log(p)));
    return out;
}

SamplingParams greedy() {
    SamplingParams p;
    p.temperature = 0.0f;
    return p;
}

std::set<int32_t> support(const std::vector<float>& logits, SamplingParams p, int n = 2000) {
    std::set<int32_t> seen;
    PenaltyState h;
    for (int i = 0; i < n; ++i) seen.insert(sample_token(logits, p, h, i, -1).token);
    return seen;
}

TEST(Sampler, GreedyPicksArgmaxAndLowestIdOnTies) {
    PenaltyState h;
    EXPECT_EQ(sample_token(std::vector<float>{0.1f, 3.0f, -1.0f, 2.0f}, greedy(), h, 0, -1).token, 1);
    EXPECT_EQ(sample_token(std::vector<float>{1.0f, 5.0f, 5.0f}, greedy(), h, 0, -1).token, 1);
}

TEST(Sampler, TopKOneIsGreedy) {
    SamplingParams p;
    p.top_k = 1;
    EXPECT_EQ(support({0.5f, 0.2f, 0.9f, 0.1f}, p), std::set<int32_t>{2});
}

TEST(Sampler, TopKRestrictsSupport) {
    SamplingParams p;
    p.top_k = 2;
    EXPECT_EQ(support(logits_of({0.1, 0.4, 0.2, 0.3}), p), (std::set<int32_t>{1, 3}));
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingP) {
    SamplingParams p;
    p.top_p = 0.8f;
    EXPECT_EQ(support(logits_of({0.5, 0.3, 0.15, 0.05}), p), (std::set<int32_t>{0, 1}));
    p.top_p = 0.81f;
    EXPECT_EQ(support(logits_of({0.5, 0.3, 0.15, 0.05}), p), (std::set<int32_t>{0, 1, 2}));
    p.top_p = 1e-6f;  // p -> 0 keeps the top token
    EXPECT_EQ(support(logits_of({0.2, 0.5, 0.3}), p), std::set<int32_t>{1});
}

TEST(Sampler, MinPRelativeToMax) {
    SamplingParams p;
    p.min_p = 0.5f;  // keep p >= 0.25
    EXPECT_EQ(support(logits_of({0.5, 0.3, 0.15, 0.05}), p), (std::set<int32_t>{0, 1}));
    p.min_p = 1.0f;
    EXPECT_EQ(support(logits_of({0.3, 0.5, 0.2}), p), std::set<int32_t>{1});
}

TEST(Sampler, TopPBeforeMinPOrder) {
    // top-p 0.9 keeps {0,1,2}; min-p 0.35 of the max 0.4 then drops id 2 (0.12 < 0.14)
    SamplingParams p;
    p.top_p = 0.9f;
    p.min_p = 0.35f;
    EXPECT_EQ(support(logits_of({0.4, 0.38, 0.12, 0.1}), p), (std::set<int32_t>{0, 1}));
}

TEST(Sampler, TemperatureZeroIsGreedyEvenWithSeed) {
    SamplingParams p = greedy();
    p.seed = 99;
    EXPECT_EQ(support(logits_of({0.3, 0.4, 0.3}), p), std::set<int32_t>{1});
}

TEST(Sampler, SeededDrawsReproduceAndDependOnSeedAndPosition) {
    SamplingParams p;
    p.seed = 1234;
    std::vector<float> logits(50);
    for (int i = 0; i < 50; ++i) logits[size_t(i)] = float(i % 7) * 0.3f;
    PenaltyState h;
    std::vector<int32_t> a, b, c;
    for (int pos = 0; pos < 64; ++pos) {
        a.push_back(sample_token(logits, p, h, pos, -1).token);
        b.push_back(sample_token(logits, p, h, pos, -1).token);
    }
    p.seed = 1235;
    for (int pos = 0; pos < 64; ++pos) c.push_back(sample_token(logits, p, h, pos, -1).token);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 5u);
}

TEST(Sampler, GumbelFrequenciesMatchProbabilities) {
    const std::vector<double> probs = {0.5, 0.25, 0.15, 0.1};
    SamplingParams p;
    p.seed = 7;
    PenaltyState h;
    const int n = 40000;
    std::vector<int> counts(4, 0);
    for (int i = 0; i < n; ++i) counts[size_t(sample_token(logits_of(probs), p, h, i, -1).token)]++;
    double chi2 = 0.0;
    for (size_t i = 0; i < 4; ++i) {
        double e = probs[i] * n;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    EXPECT_LT(chi2, 16.27);  // chi-square, 3 degrees of freedom, p = 0.001
}

TEST(Sampler, TemperatureSharpens) {
    SamplingParams p;
    p.seed = 3;
    p.temperature = 0.25f;
    PenaltyState h;
    int top = 0;
    for (int i = 0; i < 4000; ++i) top += sample_token(logits_of({0.6, 0.4}), p, h, i, -1).token == 0;
    // (0.6^4) / (0.6^4 + 0.4^4) = 0.835
    EXPECT_NEAR(top / 4000.0, 0.835, 0.03);
}

TEST(Sampler, RepetitionPenaltyHfRule) {
    PenaltyState h;
    std::vector<int32_t> prompt = {0};
    h.set_prompt(prompt);
    SamplingParams p = greedy();
    p.repetition_penalty = 2.0f;
    EXPECT_EQ(sample_token(std::vector<float>{2.0f, 1.5f, 0.0f}, p, h, 0, -1).token, 1);  // 2/2 = 1 < 1.5
    // negative logits are multiplied: -0.5*2 = -1 < -0.8
    EXPECT_EQ(sample_token(std::vector<float>{-0.5f, -0.8f}, p, h, 0, -1).token, 1);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
    PenaltyState h;
    h.add_output(0);
    h.add_output(0);
    SamplingParams p = greedy();
    p.frequency_penalty = 0.3f;  // 2.0 - 0.6 = 1.4 < 1.5
    EXPECT_EQ(sample_token(std::vector<float>{2.0f, 1.5f}, p, h, 0, -1).token, 1);
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.4f;  // 2.0 - 0.4 = 1.6 > 1.5
    EXPECT_EQ(sample_token(std::vector<float>{2.0f, 1.5f}, p, h, 0, -1).token, 0);
    p.presence_penalty = 0.6f;
    EXPECT_EQ(sample_token(std::vector<float>{2.0f, 1.5f}, p, h, 0, -1).token, 1);
}

TEST(Sampler, LogitBiasAndMinTokens) {
    PenaltyState h;
    SamplingParams p = greedy();
    p.logit_bias = {{2, 100.0f}};
    EXPECT_EQ(sample_token(std::vector<float>{5.0f, 1.0f, 0.0f}, p, h, 0, -1).token, 2);
    SamplingParams q = greedy();
    q.min_tokens = 1;
    q.stop_token_ids = {2};
    EXPECT_EQ(sample_token(std::vector<float>{1.0f, 5.0f, 4.0f, 0.5f}, q, h, 0, 1).token,
              0);  // eos 1, stop 2 masked
    h.add_output(0);
    EXPECT_EQ(sample_token(std::vector<float>{1.0f, 5.0f, 4.0f, 0.5f}, q, h, 0, 1).token, 1);
}

TEST(Sampler, LogprobsFromRawDistribution) {
    PenaltyState h;
    SamplingParams p = greedy();
    p.top_logprobs = 2;
    p.logit_bias = {{3, 50.0f}};  // the choice changes, the reported distribution does not
    SampleResult r = sample_token(logits_of({0.1, 0.6, 0.2, 0.1}), p, h, 0, -1);
    EXPECT_EQ(r.token, 3);
    EXPECT_NEAR(r.logprob, std::log(0.1), 1e-5);
    ASSERT_EQ(r.top.size(), 2u);
    EXPECT_EQ(r.top[0].token, 1);
    EXPECT_NEAR(r.top[0].logprob, std::log(0.6), 1e-5);
    EXPECT_EQ(r.top[1].token, 2);
}

TEST(Sampler, KeyedUniformInOpenInterval) {
    for (int i = 0; i < 10000; ++i) {
        double u = keyed_uniform(42, i / 100, i % 100);
        ASSERT_GT(u, 0.0);
        ASSERT_LT(u, 1.0);
    }
}

TEST(StopMatcher, HoldsBackPartialMatchAcrossFeeds) {
    StopMatcher m({"STOP"});
    EXPECT_EQ(m.feed("hello S"), "hello ");
    EXPECT_EQ(m.feed("T"), "");
    EXPECT_EQ(m.feed("x"), "STx");
    EXPECT_EQ(m.feed(" and ST"), " and ");
    EXPECT_EQ(m.feed("OP tail"), "");
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(m.feed("more"), "");
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, IncludeStopAndEarliestMatch) {
    StopMatcher m({"bc", "abcd"}, true);
    EXPECT_EQ(m.feed("xxabcd"), "xxabcd");  // both complete in one feed: the earliest start wins
    EXPECT_EQ(m.matched(), "abcd");
    StopMatcher n({"b", "cd"});
    EXPECT_EQ(n.feed("acdb"), "a");
    EXPECT_EQ(n.matched(), "cd");
}

TEST(StopMatcher, FlushReturnsHeldText) {
    StopMatcher m({"end"});
    EXPECT_EQ(m.feed("the e"), "the ");
    EXPECT_EQ(m.flush(), "e");
    EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace dsv4
