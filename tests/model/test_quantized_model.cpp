// The released FP8/FP4 format end to end on the HF golden fixture tiny_a (HF names, bf16 weights):
// quantize -> load -> logits. The quantized model computes exactly what the CPU reference computes on its
// dequantized weights; with the golden test's bound (our CPU reference vs HF fp32 <= 1e-4 on any weights
// it was checked on) this puts it within 1e-4 of HF fp32 on the dequantized weights. Also: FP8 experts
// from the official conversion give bit-identical logits, reference numerics move logits by a small
// bounded amount and stay chunking-consistent, and a released checkpoint round-trips byte for byte.
#include <unistd.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "format/safetensors.h"
#include "model/quantize.h"
#include "model_test_util.h"

namespace dsv4 {
namespace {

namespace fs = std::filesystem;
using testing::max_row_rel_err;

std::string tmp(const std::string& name) {
    return (fs::temp_directory_path() / ("dsv4_test_qm_" + name + "_" + std::to_string(::getpid()))).string();
}

LoadOptions opts(std::optional<Numerics> n) {
    LoadOptions o;
    o.verbose = false;
    o.numerics = n;
    return o;
}

class QuantizedModel : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string src = std::string(DSV4_FIXTURES_DIR) + "/tiny_a";
        auto g = SafetensorsFile::open(src + "/golden.safetensors");
        ASSERT_TRUE(g.is_ok()) << g.message();
        const TensorInfo* ids = g.value()->find("input_ids");
        const TensorInfo* lg = g.value()->find("logits");
        ASSERT_TRUE(ids && lg);
        for (int64_t i = 0; i < ids->numel(); ++i)
            ids_.push_back(int32_t(reinterpret_cast<const int64_t*>(ids->data)[i]));
        golden_.resize(size_t(lg->numel()));
        convert_to_f32(lg->dtype, lg->data, golden_.data(), lg->numel());

        QuantizeOptions q;
        for (const char* d : {"fp4", "fp8", "deq", "fp4_again", "sharded"}) fs::remove_all(tmp(d));
        auto r = quantize_checkpoint(src, tmp("fp4"), q);
        ASSERT_TRUE(r.is_ok()) << r.message();
        q.experts = "fp8";
        auto r8 = quantize_checkpoint(src, tmp("fp8"), q);
        ASSERT_TRUE(r8.is_ok()) << r8.message();
        EXPECT_EQ(r8->fp4_to_fp8_inexact, 0);
        Status s = dequantize_checkpoint(tmp("fp4"), tmp("deq"));
        ASSERT_TRUE(s.is_ok()) << s.message();
    }
    // Full-sequence logits of ids_, memoised per (directory, numerics): each forward costs ~0.5 s.
    static std::vector<float> logits(const std::string& dir, std::optional<Numerics> n = Numerics::exact) {
        static std::map<std::pair<std::string, int>, std::vector<float>> memo;
        const auto key = std::make_pair(dir, n ? int(*n) : -1);
        if (auto it = memo.find(key); it != memo.end()) return it->second;
        return memo[key] = run_logits(dir, n);
    }
    static std::vector<float> run_logits(const std::string& dir, std::optional<Numerics> n) {
        auto m = Model::load(dir, opts(n));
        EXPECT_TRUE(m.is_ok()) << m.message();
        if (!m.is_ok()) return {};
        auto st = m.value()->new_state();
        std::vector<float> out;
        EXPECT_TRUE(m.value()->forward(*st, ids_, out, true).is_ok());
        return out;
    }
    static int64_t T() { return int64_t(ids_.size()); }
    static constexpr int64_t kV = 1024;
    static std::vector<int32_t> ids_;
    static std::vector<float> golden_;
};
std::vector<int32_t> QuantizedModel::ids_;
std::vector<float> QuantizedModel::golden_;

TEST_F(QuantizedModel, EqualsTheReferenceOnItsDequantizedWeights) {
    std::vector<float> q = logits(tmp("fp4")), d = logits(tmp("deq"));
    ASSERT_EQ(q.size(), size_t(T() * kV));
    ASSERT_EQ(q.size(), d.size());
    // Same weight values bit for bit, same f32 operation order: only the row decoding differs.
    EXPECT_LE(max_row_rel_err(q.data(), d.data(), T(), kV), 1e-6);
}

TEST_F(QuantizedModel, MatchesHFOnTheDequantizedWeights) {
    // tiny_a/quantized_hf_logits.safetensors: HF fp32 on the f32 values of this quantization of tiny_a
    // (tools/hf_quantized_logits.py). Tolerance = the golden bound 1e-4 (HF vs our CPU reference on the
    // same weights; quantized == dequantized exactly, above). The quantizer is deterministic, so a change in
    // its rounding shows here as a large error: regenerate the file then.
    auto f =
        SafetensorsFile::open(std::string(DSV4_FIXTURES_DIR) + "/tiny_a/quantized_hf_logits.safetensors");
    ASSERT_TRUE(f.is_ok()) << f.message();
    const TensorInfo* t = f.value()->find("logits");
    ASSERT_TRUE(t != nullptr);
    std::vector<float> hf(size_t(t->numel()));
    convert_to_f32(t->dtype, t->data, hf.data(), t->numel());
    std::vector<float> q = logits(tmp("fp4"));
    ASSERT_EQ(q.size(), hf.size());
    int64_t row = -1;
    const double err = max_row_rel_err(q.data(), hf.data(), T(), kV, &row);
    const double gold = max_row_rel_err(q.data(), golden_.data(), T(), kV);
    std::printf(
        "[ quantized] tiny_a FP8/FP4 vs HF fp32 on the dequantized weights: %.3g max per-position rel err "
        "(position %lld); vs HF on the original bf16 weights: %.4f (weight rounding; HF itself: 0.7208)\n",
        err, (long long)row, gold);
    EXPECT_LE(err, 1e-4);
}

TEST_F(QuantizedModel, Fp8ExpertsFromTheOfficialConversionAreBitIdentical) {
    std::vector<float> a = logits(tmp("fp4")), b = logits(tmp("fp8"));
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(a, b);  // the FP4 -> FP8 conversion keeps every weight value exactly
}

// Mean over positions of the per-position relative error.
double mean_row_rel_err(const std::vector<float>& a, const std::vector<float>& b, int64_t rows,
                        int64_t cols) {
    double sum = 0.0;
    for (int64_t r = 0; r < rows; ++r)
        sum += max_row_rel_err(a.data() + r * cols, b.data() + r * cols, 1, cols);
    return sum / double(rows);
}

TEST_F(QuantizedModel, ReferenceNumericsMoveLogitsBoundedly) {
    std::vector<float> ex = logits(tmp("fp4"), Numerics::exact),
                       ref = logits(tmp("fp4"), Numerics::reference);
    ASSERT_EQ(ex.size(), ref.size());
    const double err = max_row_rel_err(ref.data(), ex.data(), T(), kV);
    const double mean = mean_row_rel_err(ref, ex, T(), kV);
    // The yardstick: how far rounding the *weights* moves this model (quantized vs HF golden on bf16).
    const double wq_mean = mean_row_rel_err(ex, golden_, T(), kV);
    std::printf(
        "[ numerics ] tiny_a quantized: reference vs exact per-position rel err max %.4f mean %.4f; "
        "weight rounding alone: mean %.4f\n",
        err, mean, wq_mean);
    // The random tiny model is very sensitive: discrete choices (router top-2 of 8, indexer top-4) flip under
    // any perturbation, so each rounding alone moves single positions by ~0.5 (measured: FP8 activations
    // 0.61, KV FP8 0.51, indexer FP4 0.53). Bound: the activation roundings (FP8, relative error <= 2^-4 per
    // value) move the logits on average no more than rounding the weights (FP8 2.7%, FP4 11.7% RMS) does,
    // and no position ends up unrelated (an unrelated logit vector of the same norm is ~1.41 away).
    EXPECT_GT(err, 1e-3);  // the option does something
    EXPECT_LE(mean, wq_mean);
    EXPECT_LE(err, 1.0);
    EXPECT_EQ(logits(tmp("fp4"), std::nullopt), ref);  // reference is the default for an FP8 checkpoint
}

TEST_F(QuantizedModel, ReferenceNumericsAreChunkingConsistent) {
    auto m = Model::load(tmp("fp4"), opts(Numerics::reference));
    ASSERT_TRUE(m.is_ok()) << m.message();
    std::vector<float> full, got, out;
    auto st = m.value()->new_state();
    ASSERT_TRUE(m.value()->forward(*st, ids_, full, true).is_ok());
    auto st2 = m.value()->new_state();
    int64_t at = 0;
    for (int64_t len : {21, 10, 1, 1, 13, 26}) {
        ASSERT_TRUE(
            m.value()->forward(*st2, std::span(ids_).subspan(size_t(at), size_t(len)), out, true).is_ok());
        got.insert(got.end(), out.begin(), out.end());
        at += len;
    }
    ASSERT_EQ(at, T());
    EXPECT_LE(max_row_rel_err(got.data(), full.data(), T(), kV), 1e-5);
}

TEST_F(QuantizedModel, ReleasedCheckpointRoundTripsByteForByte) {
    QuantizeOptions q;
    auto r = quantize_checkpoint(tmp("fp4"), tmp("fp4_again"), q);
    ASSERT_TRUE(r.is_ok()) << r.message();
    auto a = Checkpoint::open(tmp("fp4")), b = Checkpoint::open(tmp("fp4_again"));
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    ASSERT_EQ(a->names(), b->names());
    for (const auto& n : a->names()) {
        const TensorInfo *x = a->find(n), *y = b->find(n);
        ASSERT_EQ(x->dtype, y->dtype) << n;
        ASSERT_EQ(x->shape, y->shape) << n;
        ASSERT_EQ(std::memcmp(x->data, y->data, size_t(x->nbytes)), 0) << n;
    }
    auto ca = load_config(tmp("fp4")), cb = load_config(tmp("fp4_again"));
    ASSERT_TRUE(ca.is_ok() && cb.is_ok());
    EXPECT_TRUE(ca.value() == cb.value());
    EXPECT_EQ(ca->quant_method, "fp8");
    EXPECT_EQ(ca->scale_fmt, "ue8m0");
    EXPECT_EQ(ca->expert_dtype, "fp4");
}

TEST_F(QuantizedModel, ShardedOutputLoadsTheSame) {
    QuantizeOptions q;
    q.shard_bytes = 1'000'000;
    auto r = quantize_checkpoint(std::string(DSV4_FIXTURES_DIR) + "/tiny_a", tmp("sharded"), q);
    ASSERT_TRUE(r.is_ok()) << r.message();
    EXPECT_GE(r->n_shards, 4);
    EXPECT_TRUE(fs::exists(tmp("sharded") + "/model.safetensors.index.json"));
    auto ck = Checkpoint::open(tmp("sharded"));
    ASSERT_TRUE(ck.is_ok()) << ck.message();
    EXPECT_EQ(int64_t(ck->n_files()), r->n_shards);
    EXPECT_EQ(ck->total_bytes(), r->bytes);
    EXPECT_EQ(logits(tmp("sharded")), logits(tmp("fp4")));
}

}  // namespace
}  // namespace dsv4
