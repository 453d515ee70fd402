// Self-consistency of the CPU reference: a full prefill equals prefill(P) + one-token decode steps and
// equals chunked prefill, for many split points (P = 1, P < window, P not a multiple of 4, splits
// inside CSA and HCA windows), to ≤ 1e-5 relative per position (issue 3, item 6).
#include <gtest/gtest.h>

#include "model_test_util.h"

namespace dsv4 {
namespace {

using testing::max_row_rel_err;

class Consistency : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string dir = testing::tiny_checkpoint_dir("consistency", tiny_config());
        auto m = Model::load(dir, testing::quiet_cpu());
        ASSERT_TRUE(m.is_ok()) << m.message();
        model_ = std::move(m).value().release();
        ids_ = testing::random_ids(kT, model_->config().vocab_size, 7);
        auto st = model_->new_state();
        ASSERT_TRUE(model_->forward(*st, ids_, full_, true).is_ok());
    }
    static void TearDownTestSuite() { delete model_; }

    // Feeds ids_ in the given chunk sizes (the remainder one token at a time) and compares every position.
    void check_chunks(std::vector<int64_t> chunks) {
        const int64_t V = model_->config().vocab_size;
        auto st = model_->new_state();
        std::vector<float> got, out;
        int64_t at = 0;
        size_t ci = 0;
        while (at < kT) {
            int64_t len = ci < chunks.size() ? std::min(chunks[ci++], kT - at) : 1;
            ASSERT_TRUE(
                model_->forward(*st, std::span(ids_).subspan(size_t(at), size_t(len)), out, true).is_ok());
            got.insert(got.end(), out.begin(), out.end());
            at += len;
        }
        ASSERT_EQ(Model::n_past(*st), kT);
        int64_t worst_row = -1;
        double err = max_row_rel_err(got.data(), full_.data(), kT, V, &worst_row);
        std::string split;
        for (auto c : chunks) split += std::to_string(c) + "+";
        EXPECT_LE(err, 1e-5) << "split " << split << "1... worst position " << worst_row;
    }

    static constexpr int64_t kT = 72;
    static Model* model_;
    static std::vector<int32_t> ids_;
    static std::vector<float> full_;
};
Model* Consistency::model_ = nullptr;
std::vector<int32_t> Consistency::ids_;
std::vector<float> Consistency::full_;

TEST_F(Consistency, DecodeFromEveryEarlyPrefix) {
    for (int64_t p : {1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 30, 63, 64, 65}) check_chunks({p});
}

TEST_F(Consistency, TokenByTokenFromStart) {
    check_chunks({});
}

TEST_F(Consistency, ChunkedPrefill) {
    check_chunks({21, 10, 1, 1, 39});  // splits inside CSA (4) and HCA (8) windows
    check_chunks({3, 5, 7, 11, 13, 33});
    check_chunks({6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6});
    check_chunks({8, 8, 8, 8, 8, 8, 8, 8, 8});
    check_chunks({70, 2});
}

TEST_F(Consistency, LastLogitsOnlyMatchesAll) {
    auto st = model_->new_state();
    std::vector<float> last;
    ASSERT_TRUE(model_->forward(*st, ids_, last, false).is_ok());
    const int64_t V = model_->config().vocab_size;
    ASSERT_EQ(int64_t(last.size()), V);
    EXPECT_LE(max_row_rel_err(last.data(), full_.data() + (kT - 1) * V, 1, V), 1e-6);
}

TEST_F(Consistency, CloneStateContinuesIdentically) {
    auto st = model_->new_state();
    std::vector<float> out, a, b;
    ASSERT_TRUE(model_->forward(*st, std::span(ids_).first(37), out, false).is_ok());
    auto copy = Model::clone_state(*st);
    ASSERT_TRUE(model_->forward(*st, std::span(ids_).subspan(37, 5), a, true).is_ok());
    ASSERT_TRUE(model_->forward(*copy, std::span(ids_).subspan(37, 5), b, true).is_ok());
    ASSERT_EQ(a, b);
}

TEST_F(Consistency, RejectsOutOfVocabularyIds) {
    auto st = model_->new_state();
    std::vector<int32_t> bad = {1, model_->config().vocab_size};
    std::vector<float> out;
    Status s = model_->forward(*st, bad, out, false);
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s.message();
    EXPECT_EQ(Model::n_past(*st), 0);
}

}  // namespace
}  // namespace dsv4
