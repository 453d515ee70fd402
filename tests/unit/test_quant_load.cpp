// Loading the released FP8/FP4 layout as published (spec §3.1, §10): a quantized tiny checkpoint loads
// with FP8 linears, packed FP4 experts and grouped wo_a views inside 128-row scale blocks; a missing
// scale, a scale of the wrong shape or dtype, a packed tensor of the wrong shape and unsupported
// quantization configs are rejected with messages that name the tensor, what was expected and found.
#include <unistd.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "model/model.h"
#include "model/tiny.h"
#include "model/weights.h"

namespace dsv4 {
namespace {

namespace fs = std::filesystem;

LoadOptions quiet() {
    LoadOptions o;
    o.verbose = false;
    return o;
}

class QuantLoad : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = (fs::temp_directory_path() / ("dsv4_test_quant_load_" + std::to_string(::getpid()))).string();
        fs::remove_all(dir_);
        TinyOptions o;
        o.quantized = true;
        Status s = write_random_checkpoint(dir_, tiny_config(), o);
        ASSERT_TRUE(s.is_ok()) << s.message();
    }
    static std::string config_text() {
        std::ifstream f(dir_ + "/config.json");
        return std::string(std::istreambuf_iterator<char>(f), {});
    }
    // Copies the checkpoint into a fresh directory (one file, no index) after `edit` changed the tensor list,
    // with `config` as config.json; returns the directory.
    static std::string rewrite(const std::string& name,
                               const std::function<void(std::vector<TensorToWrite>&)>& edit,
                               const std::string& config) {
        auto ck = Checkpoint::open(dir_);
        EXPECT_TRUE(ck.is_ok()) << ck.message();
        std::vector<TensorToWrite> ts;
        for (const auto& n : ck->names()) {
            const TensorInfo* t = ck->find(n);
            ts.push_back({n, t->dtype, t->shape, t->data, t->nbytes});
        }
        edit(ts);
        std::string out =
            (fs::temp_directory_path() / ("dsv4_test_quant_load_" + name + "_" + std::to_string(::getpid())))
                .string();
        fs::remove_all(out);
        fs::create_directories(out);
        Status s = write_safetensors(out + "/model.safetensors", ts);
        EXPECT_TRUE(s.is_ok()) << s.message();
        std::ofstream(out + "/config.json") << config;
        return out;
    }
    static std::string load_error(const std::string& dir) {
        auto m = Model::load(dir, quiet());
        return m.is_ok() ? std::string("(loaded)") : m.message();
    }
    static std::string dir_;
};
std::string QuantLoad::dir_;

TEST_F(QuantLoad, ReleasedLayoutLoadsAsPublished) {
    auto m = Model::load(dir_, quiet());
    ASSERT_TRUE(m.is_ok()) << m.message();
    const Weights& w = m.value()->weights();
    EXPECT_EQ(w.checkpoint().n_files(), 1u);
    const LayerWeights& L = w.layers[3];
    EXPECT_EQ(L.wq_a.dtype, DType::f8_e4m3);
    EXPECT_EQ(L.wo_a.dtype, DType::f8_e4m3);
    EXPECT_EQ(L.sh_w2.dtype, DType::f8_e4m3);
    EXPECT_EQ(L.w1[0].dtype, DType::fp4_e2m1);
    EXPECT_EQ(L.w2[7].n_cols, 128);
    EXPECT_EQ(w.layers[2].idx_wq_b.dtype, DType::f8_e4m3);
    EXPECT_EQ(L.cmp_wkv.dtype, DType::bf16);  // compressors stay bf16 (spec §10.6)
    EXPECT_EQ(w.head.dtype, DType::bf16);
    // wo_a is [2 groups x 64, 256]: group 1 starts inside the first 128-row scale block
    WeightRef g1 = L.wo_a.rows(64, 64);
    EXPECT_EQ(g1.scale_row0, 64);
    EXPECT_EQ(m.value()->numerics(), Numerics::reference);  // default for an FP8 checkpoint
    auto st = m.value()->new_state();
    std::vector<float> logits;
    const std::vector<int32_t> ids = {5, 17, 900, 3, 3, 44, 1000, 2, 7};
    ASSERT_TRUE(m.value()->forward(*st, ids, logits).is_ok());
    for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(QuantLoad, MissingScaleIsNamed) {
    std::string d = rewrite(
        "noscale",
        [](auto& ts) {
            std::erase_if(ts, [](const TensorToWrite& t) { return t.name == "layers.1.attn.wq_b.scale"; });
        },
        config_text());
    EXPECT_NE(load_error(d).find("tensor 'layers.1.attn.wq_b.weight' is f8_e4m3 but its scale tensor "
                                 "'layers.1.attn.wq_b.scale' is missing"),
              std::string::npos)
        << load_error(d);
    std::string e = rewrite(
        "noscale4",
        [](auto& ts) {
            std::erase_if(ts,
                          [](const TensorToWrite& t) { return t.name == "layers.4.ffn.experts.3.w2.scale"; });
        },
        config_text());
    // without its scale an I8 tensor cannot be read as FP4
    EXPECT_NE(load_error(e).find("'layers.4.ffn.experts.3.w2.scale' is missing"), std::string::npos)
        << load_error(e);
}

TEST_F(QuantLoad, WrongScaleShapeAndDtypeAreNamed) {
    static const uint8_t one[1] = {127};
    std::string d = rewrite(
        "badshape",
        [](auto& ts) {
            for (auto& t : ts)
                if (t.name == "layers.0.attn.wo_a.scale") t.shape = {1, 1}, t.data = one, t.nbytes = 1;
        },
        config_text());
    EXPECT_NE(
        load_error(d).find("tensor 'layers.0.attn.wo_a.scale' has shape [1, 1], expected [1, 2] for weight "
                           "[128, 256]"),
        std::string::npos)
        << load_error(d);
    static const float f[2] = {1.0f, 1.0f};
    std::string e = rewrite(
        "baddtype",
        [](auto& ts) {
            for (auto& t : ts)
                if (t.name == "layers.0.attn.wo_a.scale") t.dtype = DType::f32, t.data = f, t.nbytes = 8;
        },
        config_text());
    EXPECT_NE(load_error(e).find("'layers.0.attn.wo_a.scale' has dtype f32, expected f8_e8m0"),
              std::string::npos)
        << load_error(e);
}

TEST_F(QuantLoad, PackedFp4OfWrongShapeIsNamed) {
    std::string d = rewrite(
        "badfp4",
        [](auto& ts) {
            for (auto& t : ts)
                if (t.name == "layers.2.ffn.experts.0.w1.weight")
                    t.shape = {256, 64};  // same bytes, wrong shape
        },
        config_text());
    EXPECT_NE(
        load_error(d).find("'layers.2.ffn.experts.0.w1.weight' has shape [256, 64] (packed FP4), expected "
                           "[128, 128]"),
        std::string::npos)
        << load_error(d);
}

TEST_F(QuantLoad, UnsupportedFormatsAreRejected) {
    auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
        nlohmann::json j = nlohmann::json::parse(config_text());
        edit(j);
        return j.dump(2);
    };
    std::string d = rewrite(
        "int4", [](auto&) {}, with([](auto& j) { j["quantization_config"]["quant_method"] = "int4"; }));
    EXPECT_NE(
        load_error(d).find("'quantization_config.quant_method' = 'int4' is not supported (expected fp8)"),
        std::string::npos)
        << load_error(d);
    d = rewrite(
        "scalefmt", [](auto&) {}, with([](auto& j) { j["quantization_config"]["scale_fmt"] = "fp32"; }));
    EXPECT_NE(
        load_error(d).find("'quantization_config.scale_fmt' = 'fp32' is not supported (expected ue8m0)"),
        std::string::npos)
        << load_error(d);
    d = rewrite(
        "block64", [](auto&) {}, with([](auto& j) {
            j["quantization_config"]["weight_block_size"] = {64, 64};
        }));
    EXPECT_NE(load_error(d).find("weight_block_size [64, 64] is not supported"), std::string::npos)
        << load_error(d);
}

TEST_F(QuantLoad, Fp8WeightsInANonQuantizedConfigLoad) {
    nlohmann::json j = nlohmann::json::parse(config_text());
    j.erase("quantization_config");
    j.erase("expert_dtype");
    std::string d = rewrite(
        "noqcfg", [](auto&) {}, j.dump(2));
    auto m = Model::load(d, quiet());
    ASSERT_TRUE(m.is_ok()) << m.message();
    EXPECT_EQ(m.value()->numerics(), Numerics::exact);  // default follows the config, not the dtypes
    EXPECT_EQ(m.value()->weights().layers[0].wq_a.dtype, DType::f8_e4m3);
}

}  // namespace
}  // namespace dsv4
