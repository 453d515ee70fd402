// Weight-table checks (issue 3 item 3): a checkpoint with a missing, misshaped or mistyped tensor is
// rejected with a message naming the tensor, the expected and the found value; extra tensors only warn;
// every problem is reported at once; HF and released namings both load.
#include <unistd.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "format/safetensors.h"
#include "model/weights.h"
#include "model_test_util.h"

namespace dsv4 {
namespace {

// Copies the tiny released-format checkpoint into `name`, letting `edit` change the tensor list.
std::string edited_checkpoint(const std::string& name,
                              const std::function<void(std::vector<TensorToWrite>&)>& edit) {
    static const std::string base = testing::tiny_checkpoint_dir("weights_base", tiny_config());
    auto ck = Checkpoint::open(base);
    if (!ck.is_ok()) throw std::runtime_error(ck.message());
    std::vector<TensorToWrite> ts;
    for (const auto& n : ck->names()) {
        const TensorInfo* t = ck->find(n);
        ts.push_back({t->name, t->dtype, t->shape, t->data, t->nbytes});
    }
    edit(ts);
    std::string dir =
        (std::filesystem::temp_directory_path() / ("dsv4_weights_" + name + "_" + std::to_string(::getpid())))
            .string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(base + "/config.json", dir + "/config.json");
    Status s = write_safetensors(dir + "/model.safetensors", ts);
    if (!s.is_ok()) throw std::runtime_error(s.message());
    return dir;
}

std::string load_error(const std::string& dir) {
    auto r = Model::load(dir, testing::quiet_cpu());
    return r.is_ok() ? std::string() : r.message();
}

TEST(Weights, MissingTensorIsNamed) {
    auto dir = edited_checkpoint("missing", [](auto& ts) {
        std::erase_if(ts, [](const TensorToWrite& t) { return t.name == "layers.2.attn.compressor.ape"; });
    });
    std::string msg = load_error(dir);
    EXPECT_NE(msg.find("missing tensor 'layers.2.attn.compressor.ape'"), std::string::npos) << msg;
}

TEST(Weights, MisshapedTensorSaysExpectedAndFound) {
    auto dir = edited_checkpoint("misshaped", [](auto& ts) {
        for (auto& t : ts)
            if (t.name == "layers.0.attn.wq_a.weight") t.shape = {256, 128};  // transposed
    });
    std::string msg = load_error(dir);
    EXPECT_NE(msg.find("tensor 'layers.0.attn.wq_a.weight' has shape [256, 128], expected [128, 256]"),
              std::string::npos)
        << msg;
}

TEST(Weights, WrongDtypeIsNamed) {
    auto dir = edited_checkpoint("dtype", [](auto& ts) {
        for (auto& t : ts)
            if (t.name == "layers.1.hc_attn_base") t.dtype = DType::i32;  // same byte size as f32
    });
    std::string msg = load_error(dir);
    EXPECT_NE(msg.find("'layers.1.hc_attn_base' has dtype i32"), std::string::npos) << msg;
}

TEST(Weights, Fp8WithoutScaleIsRejected) {
    auto dir = edited_checkpoint("noscale", [](auto& ts) {
        for (auto& t : ts)
            if (t.name == "layers.3.attn.wkv.weight") {  // relabel as FP8 (first half of the bytes)
                t.dtype = DType::f8_e4m3;
                t.nbytes = 128 * 256;
            }
    });
    std::string msg = load_error(dir);
    EXPECT_NE(msg.find("'layers.3.attn.wkv.weight' is f8_e4m3 but its scale tensor 'layers.3.attn.wkv.scale' "
                       "is missing"),
              std::string::npos)
        << msg;
}

TEST(Weights, AllProblemsReportedAtOnce) {
    auto dir = edited_checkpoint("several", [](auto& ts) {
        std::erase_if(ts, [](const TensorToWrite& t) {
            return t.name == "norm.weight" || t.name == "layers.4.ffn.gate.bias" ||
                   t.name == "layers.0.ffn.gate.tid2eid";
        });
    });
    std::string msg = load_error(dir);
    EXPECT_NE(msg.find("3 problem(s)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'norm.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'layers.4.ffn.gate.bias'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'layers.0.ffn.gate.tid2eid'"), std::string::npos) << msg;
}

TEST(Weights, ExtraTensorOnlyWarns) {
    static const float extra[4] = {1, 2, 3, 4};
    auto dir = edited_checkpoint("extra", [](auto& ts) {
        ts.push_back({"layers.0.something_new", DType::f32, {4}, extra, 16});
        ts.push_back({"mtp.0.enorm.weight", DType::f32, {4}, extra, 16});
    });
    EXPECT_EQ(load_error(dir), "");
}

TEST(Weights, NotAV4CheckpointSaysSo) {
    auto dir = edited_checkpoint("noembed", [](auto& ts) {
        std::erase_if(ts, [](const TensorToWrite& t) { return t.name == "embed.weight"; });
    });
    std::string msg = load_error(dir);
    EXPECT_NE(msg.find("neither 'embed.weight'"), std::string::npos) << msg;
}

TEST(Weights, HfNamingLoadsWithFusedExperts) {
    std::string dir = testing::tiny_checkpoint_dir("weights_hf", tiny_config(), /*hf_names=*/true);
    auto m = Model::load(dir, testing::quiet_cpu());
    ASSERT_TRUE(m.is_ok()) << m.message();
    EXPECT_EQ(m.value()->weights().scheme, NamingScheme::hf);
    const auto& L = m.value()->weights().layers[3];
    ASSERT_EQ(L.w1.size(), 8u);
    EXPECT_EQ(L.w1[1].n_rows, 128);
    EXPECT_EQ(L.w2[7].n_cols, 128);
    // expert e's up rows follow its gate rows inside gate_up_proj [E, 2I, D]
    EXPECT_EQ(static_cast<const uint8_t*>(L.w3[2].data) - static_cast<const uint8_t*>(L.w1[2].data),
              128 * 256 * 2);
    auto st = m.value()->new_state();
    std::vector<float> logits;
    std::vector<int32_t> ids = {1, 2, 3};
    ASSERT_TRUE(m.value()->forward(*st, ids, logits, false).is_ok());
}

}  // namespace
}  // namespace dsv4
