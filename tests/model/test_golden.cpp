// Whole-model golden tests against HF transformers (tests/fixtures/README.md says how the files were
// made): per-layer hidden streams, attention and MoE outputs, and logits of every position within
// ‖ours − HF‖ / ‖HF‖ ≤ 1e-4; the first layer that fails is named. Also chunked prefill + decode against
// the same logits, and HF's 32 greedy tokens.
#include <gtest/gtest.h>

#include <algorithm>

#include "format/safetensors.h"
#include "model_test_util.h"

namespace dsv4 {
namespace {

using testing::max_row_rel_err;

struct Golden {
    std::unique_ptr<SafetensorsFile> file;
    std::vector<float> get(const std::string& key) const {
        const TensorInfo* t = file->find(key);
        if (!t) return {};
        std::vector<float> v(static_cast<size_t>(t->numel()));
        convert_to_f32(t->dtype, t->data, v.data(), t->numel());
        return v;
    }
    std::vector<int32_t> ids(const std::string& key) const {
        const TensorInfo* t = file->find(key);
        std::vector<int32_t> v;
        if (!t) return v;
        auto* p = reinterpret_cast<const int64_t*>(t->data);
        for (int64_t i = 0; i < t->numel(); ++i) v.push_back(int32_t(p[i]));
        return v;
    }
};

class GoldenTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        dir_ = std::string(DSV4_FIXTURES_DIR) + "/" + GetParam();
        auto m = Model::load(dir_, testing::quiet_cpu());
        ASSERT_TRUE(m.is_ok()) << m.message();
        model_ = std::move(m).value();
        auto g = SafetensorsFile::open(dir_ + "/golden.safetensors");
        ASSERT_TRUE(g.is_ok()) << g.message();
        golden_.file = std::move(g).value();
        ids_ = golden_.ids("input_ids");
        ASSERT_FALSE(ids_.empty());
    }
    std::string dir_;
    std::unique_ptr<Model> model_;
    Golden golden_;
    std::vector<int32_t> ids_;
};

TEST_P(GoldenTest, EveryLayerAndLogitsMatchHF) {
    const auto& cfg = model_->config();
    const int64_t T = int64_t(ids_.size()), D = cfg.hidden_size, V = cfg.vocab_size, hc = cfg.hc_mult;
    Model::Taps taps;
    model_->set_taps(&taps);
    auto st = model_->new_state();
    std::vector<float> logits;
    ASSERT_TRUE(model_->forward(*st, ids_, logits, true).is_ok());
    model_->set_taps(nullptr);

    // First failing tensor in forward order names the layer where the bug is.
    std::vector<std::pair<std::string, int64_t>> order = {{"hidden.embed", D}};
    for (int il = 0; il < cfg.num_hidden_layers; ++il) {
        order.push_back({fmt::format("attn.{}", il), D});
        order.push_back({fmt::format("mlp.{}", il), D});
        order.push_back({fmt::format("hidden.{}", il), hc * D});
    }
    for (const auto& [key, width] : order) {
        std::vector<float> ref = golden_.get(key);
        const std::vector<float>* ours = taps.get(key);
        ASSERT_FALSE(ref.empty()) << "golden file lacks " << key;
        ASSERT_NE(ours, nullptr) << "forward did not tap " << key;
        ASSERT_EQ(ours->size(), ref.size()) << key;
        int64_t row = -1;
        double err = max_row_rel_err(ours->data(), ref.data(), T, width, &row);
        ASSERT_LE(err, 1e-4) << GetParam() << ": first mismatch at '" << key << "' position " << row
                             << " (rel err " << err << ")";
    }
    std::vector<float> ref = golden_.get("logits");
    ASSERT_EQ(ref.size(), logits.size());
    int64_t row = -1;
    double err = max_row_rel_err(logits.data(), ref.data(), T, V, &row);
    EXPECT_LE(err, 1e-4) << "logits, worst position " << row;
    RecordProperty("max_logit_rel_err", std::to_string(err));
    std::printf("[ golden   ] %s: max per-position logits rel err %.3g over %lld positions\n",
                GetParam().c_str(), err, (long long)T);
}

TEST_P(GoldenTest, ChunkedPrefillAndDecodeMatchHF) {
    const int64_t T = int64_t(ids_.size()), V = model_->config().vocab_size;
    std::vector<float> ref = golden_.get("logits");
    for (std::vector<int64_t> chunks : {std::vector<int64_t>{21, 10, 1, 1}, {13, 9}, {1}, {5, 3, 17}}) {
        auto st = model_->new_state();
        std::vector<float> got, out;
        int64_t at = 0;
        size_t ci = 0;
        while (at < T) {
            int64_t len = ci < chunks.size() ? std::min(chunks[ci++], T - at) : std::min<int64_t>(T - at, 7);
            ASSERT_TRUE(
                model_->forward(*st, std::span(ids_).subspan(size_t(at), size_t(len)), out, true).is_ok());
            got.insert(got.end(), out.begin(), out.end());
            at += len;
        }
        int64_t row = -1;
        EXPECT_LE(max_row_rel_err(got.data(), ref.data(), T, V, &row), 1e-4)
            << "chunks from " << chunks[0] << ", worst position " << row;
    }
}

TEST_P(GoldenTest, GreedyTokensMatchHF) {
    std::vector<int32_t> want = golden_.ids("greedy.tokens");
    if (want.empty()) GTEST_SKIP() << "fixture has no greedy.tokens";
    const int64_t V = model_->config().vocab_size;
    auto st = model_->new_state();
    std::vector<float> logits;
    ASSERT_TRUE(model_->forward(*st, ids_, logits, false).is_ok());
    std::vector<int32_t> got;
    for (size_t i = 0; i < want.size(); ++i) {
        int32_t next = int32_t(std::max_element(logits.begin(), logits.begin() + V) - logits.begin());
        got.push_back(next);
        ASSERT_TRUE(model_->forward(*st, std::span(&next, 1), logits, false).is_ok());
    }
    EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenTest, ::testing::Values("tiny_a", "tiny_b"));

}  // namespace
}  // namespace dsv4
