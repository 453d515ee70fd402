// In-memory checkpoints (Checkpoint::from_memory, Model::load_from) and the random real-size model of
// `dsv4 bench` (model/random_weights.h): the tiny config built in memory gives bit-identical logits to the
// same tensors written to disk and loaded; tensors differ from each other, tid2eid rows hold distinct
// experts in range, and from_memory rejects duplicate names and wrong byte counts by name.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "format/safetensors.h"
#include "model/model.h"
#include "model/random_weights.h"
#include "model/tiny.h"

namespace dsv4 {
namespace {

namespace fs = std::filesystem;

LoadOptions quiet(Numerics n) {
    LoadOptions o;
    o.verbose = false;
    o.numerics = n;
    return o;
}

std::string write_to_disk(const Checkpoint& ck, const Dsv4Config& cfg, const std::string& name) {
    const std::string dir =
        (fs::temp_directory_path() / ("dsv4_test_memckpt_" + name + "_" + std::to_string(::getpid())))
            .string();
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::vector<TensorToWrite> ts;
    for (const auto& n : ck.names()) {
        const TensorInfo* t = ck.find(n);
        ts.push_back({n, t->dtype, t->shape, t->data, t->nbytes});
    }
    Status s = write_safetensors(dir + "/model.safetensors", ts);
    EXPECT_TRUE(s.is_ok()) << s.message();
    std::ofstream(dir + "/config.json") << config_to_json(cfg);
    return dir;
}

TEST(MemoryCheckpoint, RandomTinyInMemoryGivesTheLogitsOfTheSameTensorsOnDisk) {
    const Dsv4Config cfg = tiny_config();  // SWA, CSA, HCA layers; hash and score routing
    auto rc = random_checkpoint(cfg, 7, "tiny");
    ASSERT_TRUE(rc.is_ok()) << rc.message();
    EXPECT_LT(rc->host_bytes, rc->tensor_bytes);  // shared buffers, not one per tensor
    const std::string dir = write_to_disk(rc->checkpoint, cfg, "tiny");
    auto disk_cfg = load_config(dir);
    ASSERT_TRUE(disk_cfg.is_ok()) << disk_cfg.message();
    const std::vector<int32_t> ids{3, 17, 500, 1023, 0, 42, 9, 77, 300, 5, 6, 7, 8, 900, 11, 12, 13, 14};
    for (Numerics n : {Numerics::exact, Numerics::reference}) {
        auto from_disk = Model::load(dir, quiet(n));
        ASSERT_TRUE(from_disk.is_ok()) << from_disk.message();
        // the in-memory checkpoint is handed over (a copy of it keeps the buffers alive)
        auto in_mem = Model::load_from(disk_cfg.value(), rc->checkpoint, quiet(n));
        ASSERT_TRUE(in_mem.is_ok()) << in_mem.message();
        std::vector<float> a, b;
        auto sa = (*from_disk)->new_state(), sb = (*in_mem)->new_state();
        ASSERT_TRUE((*from_disk)->forward(*sa, ids, a, true).is_ok());
        ASSERT_TRUE((*in_mem)->forward(*sb, ids, b, true).is_ok());
        ASSERT_EQ(a.size(), ids.size() * size_t(cfg.vocab_size));
        ASSERT_EQ(a.size(), b.size());
        double sum = 0, sum2 = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            ASSERT_TRUE(std::isfinite(a[i])) << "logit " << i << " (" << numerics_name(n) << ")";
            ASSERT_EQ(std::memcmp(&a[i], &b[i], 4), 0) << "logit " << i << ": " << a[i] << " vs " << b[i];
            sum += a[i], sum2 += double(a[i]) * a[i];
        }
        const double mean = sum / double(a.size());
        EXPECT_GT(sum2 / double(a.size()) - mean * mean, 1e-8) << "logits are constant";
    }
    fs::remove_all(dir);
}

TEST(MemoryCheckpoint, ModelOutlivesTheRandomCheckpointItWasBuiltFrom) {
    const Dsv4Config cfg = tiny_config();
    std::unique_ptr<Model> m;
    {
        auto rc = random_checkpoint(cfg, 3);
        ASSERT_TRUE(rc.is_ok()) << rc.message();
        auto r = Model::load_from(cfg, std::move(rc->checkpoint), quiet(Numerics::exact));
        ASSERT_TRUE(r.is_ok()) << r.message();
        m = std::move(r).value();
    }  // the RandomCheckpoint is gone; the model's checkpoint owns the buffers (ASan checks the reads)
    std::vector<float> lg;
    auto st = m->new_state();
    ASSERT_TRUE(m->forward(*st, std::vector<int32_t>{1, 2, 3}, lg).is_ok());
    for (float v : lg) ASSERT_TRUE(std::isfinite(v));
}

TEST(MemoryCheckpoint, TensorsDifferAndTid2eidRowsAreDistinctExpertsInRange) {
    Dsv4Config cfg = tiny_config();
    auto rc = random_checkpoint(cfg, 11);
    ASSERT_TRUE(rc.is_ok()) << rc.message();
    const Checkpoint& ck = rc->checkpoint;
    auto differ = [&](const char* x, const char* y) {
        const TensorInfo *a = ck.find(x), *b = ck.find(y);
        EXPECT_TRUE(a && b) << x << " / " << y;
        if (!a || !b) return;
        EXPECT_NE(std::memcmp(a->data, b->data, size_t(std::min(a->nbytes, b->nbytes))), 0)
            << x << " == " << y;
    };
    differ("embed.weight", "head.weight");
    differ("layers.0.ffn.experts.0.w1.weight", "layers.0.ffn.experts.1.w1.weight");
    differ("layers.0.ffn.experts.0.w1.scale", "layers.1.ffn.experts.0.w1.scale");
    differ("layers.0.hc_attn_fn", "layers.0.hc_ffn_fn");
    const TensorInfo* fp4 = ck.find("layers.3.ffn.experts.2.w2.weight");
    ASSERT_NE(fp4, nullptr);
    EXPECT_EQ(fp4->dtype, DType::i8);  // packed FP4 [N, K/2]
    EXPECT_EQ(fp4->shape, (std::vector<int64_t>{cfg.hidden_size, cfg.moe_intermediate_size / 2}));
    const TensorInfo* fp8 = ck.find("layers.2.attn.wq_b.weight");
    ASSERT_NE(fp8, nullptr);
    for (int64_t i = 0; i < fp8->nbytes; ++i) ASSERT_NE(fp8->data[i] & 0x7f, 0x7f) << "FP8 NaN code at " << i;
    for (int il = 0; il < cfg.num_hash_layers; ++il) {
        const TensorInfo* t = ck.find("layers." + std::to_string(il) + ".ffn.gate.tid2eid");
        ASSERT_NE(t, nullptr);
        const int64_t k = t->shape[1];
        for (int64_t v = 0; v < t->shape[0]; ++v) {
            std::set<int64_t> row;
            for (int64_t j = 0; j < k; ++j) {
                int64_t e;
                std::memcpy(&e, t->data + (v * k + j) * 8, 8);
                ASSERT_TRUE(e >= 0 && e < cfg.n_routed_experts) << "row " << v << ": " << e;
                row.insert(e);
            }
            ASSERT_EQ(int64_t(row.size()), k) << "row " << v << " repeats an expert";
        }
    }
    EXPECT_EQ(ck.find("mtp.0.e_proj.weight"), nullptr);  // no MTP block
}

TEST(MemoryCheckpoint, FromMemoryRejectsDuplicatesAndWrongSizesByName) {
    static const float data[6] = {1, 2, 3, 4, 5, 6};
    auto info = [](const std::string& name, std::vector<int64_t> shape, int64_t nbytes) {
        TensorInfo t;
        t.name = name;
        t.dtype = DType::f32;
        t.shape = std::move(shape);
        t.data = reinterpret_cast<const uint8_t*>(data);
        t.nbytes = nbytes;
        return t;
    };
    auto ok = Checkpoint::from_memory({info("a", {2, 3}, 24), info("b", {6}, 24)}, nullptr, "<mem>");
    ASSERT_TRUE(ok.is_ok()) << ok.message();
    EXPECT_EQ(ok->names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(ok->total_bytes(), 48);
    EXPECT_EQ(ok->dir(), "<mem>");
    auto dup = Checkpoint::from_memory({info("a", {6}, 24), info("a", {6}, 24)}, nullptr, "<mem>");
    ASSERT_FALSE(dup.is_ok());
    EXPECT_NE(dup.message().find("'a' appears twice"), std::string::npos) << dup.message();
    auto size = Checkpoint::from_memory({info("w", {2, 3}, 20)}, nullptr, "<mem>");
    ASSERT_FALSE(size.is_ok());
    EXPECT_NE(size.message().find("'w'"), std::string::npos) << size.message();
    EXPECT_NE(size.message().find("expected 24"), std::string::npos) << size.message();
}

}  // namespace
}  // namespace dsv4
