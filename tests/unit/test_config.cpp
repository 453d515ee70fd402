// config.json parsing in both key sets (spec §1, §15): the released Flash/Pro configs give the schedules of
// §1.2, the HF-saved tiny config parses identically to its released-style twin, config_to_json round-trips,
// and each unsupported value is rejected with a message naming it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include <nlohmann/json.hpp>

#include "format/config.h"

namespace dsv4 {
namespace {

using json = nlohmann::json;

std::string fixture(const std::string& name) {
    return std::string(DSV4_FIXTURES_DIR) + "/configs/" + name;
}

struct Counts {
    int swa = 0, csa = 0, hca = 0;
};
Counts count_kinds(const Dsv4Config& c) {
    Counts n;
    for (int il = 0; il < c.num_hidden_layers; ++il) {
        switch (c.attn_kind(il)) {
            case AttnKind::swa:
                ++n.swa;
                break;
            case AttnKind::csa:
                ++n.csa;
                break;
            case AttnKind::hca:
                ++n.hca;
                break;
        }
    }
    return n;
}

void expect_released_rope(const Dsv4Config& c) {
    EXPECT_EQ(c.qk_rope_head_dim, 64);
    EXPECT_EQ(c.rope_main.rope_theta, 10000.0);
    EXPECT_FALSE(c.rope_main.yarn);
    EXPECT_EQ(c.rope_compress.rope_theta, 160000.0);
    EXPECT_TRUE(c.rope_compress.yarn);
    EXPECT_EQ(c.rope_compress.factor, 16.0);
    EXPECT_EQ(c.rope_compress.original_max_position_embeddings, 65536.0);
    EXPECT_EQ(c.rope_compress.beta_fast, 32.0);
    EXPECT_EQ(c.rope_compress.beta_slow, 1.0);
}

void expect_released_quant(const Dsv4Config& c) {
    EXPECT_EQ(c.quant_method, "fp8");
    EXPECT_EQ(c.quant_fmt, "e4m3");
    EXPECT_EQ(c.scale_fmt, "ue8m0");
    EXPECT_EQ(c.weight_block_size, (std::vector<int>{128, 128}));
    EXPECT_EQ(c.activation_scheme, "dynamic");
    EXPECT_EQ(c.expert_dtype, "fp4");
}

TEST(Config, ReleasedFlash) {
    auto r = load_config(fixture("v4-flash.config.json"));
    ASSERT_TRUE(r.is_ok()) << r.message();
    const Dsv4Config& c = *r;
    EXPECT_EQ(c.num_hidden_layers, 43);
    EXPECT_EQ(c.hidden_size, 4096);
    EXPECT_EQ(c.num_attention_heads, 64);
    EXPECT_EQ(c.q_lora_rank, 1024);
    EXPECT_EQ(c.n_routed_experts, 256);
    EXPECT_EQ(c.index_topk, 512);
    EXPECT_EQ(c.routed_scaling_factor, 1.5);
    ASSERT_EQ(c.compress_ratios.size(), 43u);
    Counts n = count_kinds(c);
    EXPECT_EQ(n.swa, 2);
    EXPECT_EQ(n.csa, 21);
    EXPECT_EQ(n.hca, 20);
    EXPECT_EQ(c.attn_kind(0), AttnKind::swa);
    EXPECT_EQ(c.attn_kind(1), AttnKind::swa);
    for (int il = 2; il < 43; ++il) {
        EXPECT_EQ(c.attn_kind(il), il % 2 == 0 ? AttnKind::csa : AttnKind::hca) << il;
        EXPECT_EQ(c.compress_ratio(il), il % 2 == 0 ? 4 : 128) << il;
    }
    EXPECT_EQ(c.mtp_compress_ratio, 0);
    EXPECT_EQ(c.num_hash_layers, 3);
    ASSERT_EQ(c.mlp_layer_types.size(), 43u);
    for (int il = 0; il < 43; ++il) EXPECT_EQ(c.is_hash_layer(il), il < 3) << il;
    expect_released_rope(c);
    EXPECT_EQ(&c.rope_for_layer(0), &c.rope_main);
    EXPECT_EQ(&c.rope_for_layer(2), &c.rope_compress);
    expect_released_quant(c);
    EXPECT_EQ(c.scoring_func, "sqrtsoftplus");
    EXPECT_EQ(c.max_position_embeddings, 1048576);
}

TEST(Config, ReleasedPro) {
    auto r = load_config(fixture("v4-pro.config.json"));
    ASSERT_TRUE(r.is_ok()) << r.message();
    const Dsv4Config& c = *r;
    EXPECT_EQ(c.num_hidden_layers, 61);
    EXPECT_EQ(c.hidden_size, 7168);
    EXPECT_EQ(c.num_attention_heads, 128);
    EXPECT_EQ(c.o_groups, 16);
    EXPECT_EQ(c.index_topk, 1024);
    EXPECT_EQ(c.n_routed_experts, 384);
    EXPECT_EQ(c.moe_intermediate_size, 3072);
    EXPECT_EQ(c.routed_scaling_factor, 2.5);
    Counts n = count_kinds(c);
    EXPECT_EQ(n.swa, 0);
    EXPECT_EQ(n.csa, 30);
    EXPECT_EQ(n.hca, 31);
    EXPECT_EQ(c.attn_kind(0), AttnKind::hca);
    EXPECT_EQ(c.attn_kind(1), AttnKind::hca);
    EXPECT_EQ(c.attn_kind(2), AttnKind::csa);  // the HF default schedule gets this one wrong (§1.2)
    EXPECT_EQ(c.attn_kind(3), AttnKind::hca);
    EXPECT_EQ(c.mtp_compress_ratio, 0);
    EXPECT_EQ(c.num_hash_layers, 3);
    for (int il = 0; il < 61; ++il) EXPECT_EQ(c.is_hash_layer(il), il < 3) << il;
    expect_released_rope(c);
    expect_released_quant(c);
}

// Spec §15 tiny config, released key style: HCA ratio 8 written as 128 + compress_rate_hca.
json tiny_released() {
    return json::parse(R"({
        "model_type": "deepseek_v4", "vocab_size": 1024, "hidden_size": 256, "num_hidden_layers": 5,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 128, "qk_rope_head_dim": 64,
        "q_lora_rank": 128, "o_groups": 2, "o_lora_rank": 64, "sliding_window": 8,
        "compress_ratios": [0, 0, 4, 128, 4, 0], "compress_rate_hca": 8,
        "rope_theta": 10000.0, "compress_rope_theta": 160000.0,
        "rope_scaling": {"type": "yarn", "factor": 16.0, "original_max_position_embeddings": 65536,
                         "beta_fast": 32, "beta_slow": 1},
        "max_position_embeddings": 1048576, "index_n_heads": 16, "index_head_dim": 128, "index_topk": 4,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 128,
        "routed_scaling_factor": 1.5, "scoring_func": "sqrtsoftplus", "num_hash_layers": 3,
        "swiglu_limit": 10.0, "hc_mult": 4, "hc_sinkhorn_iters": 20, "hc_eps": 1e-06, "rms_norm_eps": 1e-06,
        "num_nextn_predict_layers": 1, "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": false
    })");
}

// The same model as HF's save_pretrained writes it: HF keys only, nested rope_parameters after __post_init__.
json tiny_hf() {
    return json::parse(R"({
        "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
        "vocab_size": 1024, "hidden_size": 256, "num_hidden_layers": 5,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 128, "partial_rotary_factor": 0.5,
        "q_lora_rank": 128, "o_groups": 2, "o_lora_rank": 64, "sliding_window": 8,
        "layer_types": ["sliding_attention", "sliding_attention", "compressed_sparse_attention",
                        "heavily_compressed_attention", "compressed_sparse_attention"],
        "compress_rates": {"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
        "mlp_layer_types": ["hash_moe", "hash_moe", "hash_moe", "moe", "moe"],
        "rope_parameters": {
            "main": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
            "compress": {"rope_type": "yarn", "type": "yarn", "factor": 16.0,
                         "original_max_position_embeddings": 65536, "beta_fast": 32, "beta_slow": 1,
                         "rope_theta": 160000.0, "partial_rotary_factor": 0.5, "attention_factor": 1.0}},
        "rope_scaling": null,
        "max_position_embeddings": 1048576, "index_n_heads": 16, "index_head_dim": 128, "index_topk": 4,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 128,
        "routed_scaling_factor": 1.5, "scoring_func": "sqrtsoftplus",
        "swiglu_limit": 10.0, "hc_mult": 4, "hc_sinkhorn_iters": 20, "hc_eps": 1e-06, "rms_norm_eps": 1e-06,
        "num_nextn_predict_layers": 1, "hidden_act": "silu", "attention_bias": false,
        "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": false, "torch_dtype": "float32"
    })");
}

Dsv4Config parse_ok(const json& j) {
    auto r = parse_config(j.dump(), "tiny.json");
    EXPECT_TRUE(r.is_ok()) << r.message();
    return r.is_ok() ? *r : Dsv4Config{};
}

TEST(Config, TinyReleasedStyle) {
    Dsv4Config c = parse_ok(tiny_released());
    EXPECT_EQ(c.compress_ratios, (std::vector<int>{0, 0, 4, 8, 4}));
    EXPECT_EQ(c.attn_kind(3), AttnKind::hca);
    EXPECT_EQ(c.mtp_compress_ratio, 0);
    EXPECT_EQ(c.qk_rope_head_dim, 64);
    EXPECT_EQ(c.num_hash_layers, 3);
    EXPECT_TRUE(c.rope_compress.yarn);
    EXPECT_TRUE(c.quant_method.empty());  // no quantization_config: a non-quantized checkpoint
}

TEST(Config, HfNestedEqualsReleasedTwin) {
    Dsv4Config released = parse_ok(tiny_released());
    Dsv4Config hf = parse_ok(tiny_hf());
    EXPECT_EQ(hf.compress_ratios, released.compress_ratios);
    EXPECT_EQ(hf.mlp_layer_types, released.mlp_layer_types);
    EXPECT_EQ(hf.rope_main, released.rope_main);
    EXPECT_EQ(hf.rope_compress, released.rope_compress);
    EXPECT_EQ(hf.qk_rope_head_dim, 64);
    EXPECT_TRUE(hf == released);
}

TEST(Config, HfFlatRopeParametersEqualsReleasedTwin) {
    // HF constructor form (spec §15): flat YaRN parameters for the compress table, thetas at the top.
    json j = tiny_hf();
    j["rope_parameters"] = json::parse(R"({"rope_type": "yarn", "factor": 16.0,
        "original_max_position_embeddings": 65536, "beta_fast": 32, "beta_slow": 1})");
    j["rope_theta"] = 10000.0;
    j["compress_rope_theta"] = 160000.0;
    EXPECT_TRUE(parse_ok(j) == parse_ok(tiny_released()));
}

TEST(Config, DefaultsForOptionalKeys) {
    json j = tiny_released();
    j.erase("compress_rope_theta");            // default 160000 (not the REF dataclass's 40000)
    j.erase("num_hash_layers");                // default 3
    j["compress_ratios"] = {0, 0, 4, 128, 4};  // exactly num_hidden_layers entries: MTP defaults to SWA
    j.erase("compress_rate_hca");
    j.erase("qk_rope_head_dim");  // default head_dim * 0.125
    Dsv4Config c = parse_ok(j);
    EXPECT_EQ(c.rope_compress.rope_theta, 160000.0);
    EXPECT_EQ(c.num_hash_layers, 3);
    EXPECT_EQ(c.compress_ratios, (std::vector<int>{0, 0, 4, 128, 4}));
    EXPECT_EQ(c.mtp_compress_ratio, 0);
    EXPECT_EQ(c.qk_rope_head_dim, 16);
}

TEST(Config, ListValuedEosAndIntegralFloats) {
    json j = tiny_released();
    j["eos_token_id"] = {1, 7};
    j["hidden_size"] = 256.0;
    Dsv4Config c = parse_ok(j);
    EXPECT_EQ(c.eos_token_id, 1);
    EXPECT_EQ(c.hidden_size, 256);
}

void expect_round_trip(const Dsv4Config& c) {
    std::string text = config_to_json(c);
    auto r = parse_config(text, "round_trip.json");
    ASSERT_TRUE(r.is_ok()) << r.message() << "\n" << text;
    EXPECT_TRUE(*r == c) << text;
    EXPECT_EQ(config_to_json(*r), text);
}

TEST(Config, ToJsonRoundTrips) {
    for (const char* name : {"v4-flash.config.json", "v4-pro.config.json"}) {
        auto r = load_config(fixture(name));
        ASSERT_TRUE(r.is_ok()) << r.message();
        expect_round_trip(*r);
    }
    Dsv4Config tiny = parse_ok(tiny_hf());
    expect_round_trip(tiny);
    std::string text = config_to_json(tiny);
    json j = json::parse(text);
    EXPECT_EQ(j["compress_ratios"], json({0, 0, 4, 128, 4, 0}));  // HF-readable: 128 + compress_rate_hca
    EXPECT_EQ(j["compress_rate_hca"], 8);
    EXPECT_EQ(j["qk_rope_head_dim"], 64);
    EXPECT_EQ(j["rope_scaling"]["type"], "yarn");
    EXPECT_EQ(j["rope_scaling"]["original_max_position_embeddings"], 65536);

    // Shapes no released key can say: hash layers that are not a prefix, YaRN on the main table,
    // two different HCA ratios.
    Dsv4Config odd = tiny;
    odd.mlp_layer_types = {MlpKind::moe, MlpKind::hash_moe, MlpKind::moe, MlpKind::hash_moe, MlpKind::moe};
    odd.num_hash_layers = 2;
    odd.rope_main.yarn = true;
    odd.rope_main.factor = 4.0;
    odd.rope_main.original_max_position_embeddings = 4096;
    odd.compress_ratios = {16, 0, 4, 8, 4};
    odd.mtp_compress_ratio = 4;
    expect_round_trip(odd);
}

TEST(Config, LoadFromDirectory) {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("dsv4_cfg_{}", ::getpid());
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.json") << tiny_hf().dump(2);
    auto r = load_config(dir.string());
    ASSERT_TRUE(r.is_ok()) << r.message();
    EXPECT_EQ(r->compress_ratios, (std::vector<int>{0, 0, 4, 8, 4}));
    std::filesystem::remove_all(dir);
    auto missing = load_config(dir.string());
    ASSERT_FALSE(missing.is_ok());
    EXPECT_NE(missing.message().find("cannot open"), std::string::npos) << missing.message();
}

// ---- rejected configs: (edit of a valid config, piece of the expected message) ----

struct Bad {
    const char* what;
    std::function<void(json&)> edit;
    const char* expected;
    bool hf = false;  // start from the HF tiny config instead of the released one
};

TEST(Config, RejectsInvalid) {
    const Bad cases[] = {
        {"no schedule", [](json& j) { j.erase("compress_ratios"); }, "refusing to guess the layer schedule"},
        {"CSA ratio", [](json& j) { j["compress_rates"]["compressed_sparse_attention"] = 8; },
         "CSA compress ratio must be 4", true},
        {"HCA ratio 4", [](json& j) { j["compress_rate_hca"] = 4; },
         "HCA compress ratio must be >= 2 and not 4"},
        {"HCA ratio 1", [](json& j) { j["compress_rates"]["heavily_compressed_attention"] = 1; },
         "HCA compress ratio must be >= 2", true},
        {"ratio 1", [](json& j) { j["compress_ratios"][2] = 1; },
         "layer 2: compress ratio 1 is not supported"},
        {"ratio -4", [](json& j) { j["compress_ratios"][1] = -4; }, "compress ratio -4 is not supported"},
        {"MTP ratio", [](json& j) { j["compress_ratios"][5] = 1; }, "MTP layer: compress ratio 1"},
        {"ratio type", [](json& j) { j["compress_ratios"][0] = "swa"; },
         "'compress_ratios[0]' must be an integer"},
        {"ratios length",
         [](json& j) {
             j["compress_ratios"] = {0, 4, 128};
         },
         "'compress_ratios' has 3 entries, expected num_hidden_layers + 1 = 6"},
        {"compress_rates key", [](json& j) { j["compress_rates"]["sparse"] = 4; },
         "unknown layer type 'sparse'", true},
        {"compress_rate_hca vs rates", [](json& j) { j["compress_rate_hca"] = 16; },
         "'compress_rate_hca' = 16 disagrees", true},
        {"layer_types length", [](json& j) { j["layer_types"].erase(0); }, "'layer_types' has 4 entries",
         true},
        {"layer type", [](json& j) { j["layer_types"][4] = "full_attention"; },
         "layer_types[4] = 'full_attention' is not one of", true},
        {"both schedules disagree", [](json& j) { j["compress_ratios"] = {0, 0, 4, 4, 4, 0}; },
         "layer 3: layer_types gives ratio 8 but compress_ratios gives 4", true},
        {"mlp type", [](json& j) { j["mlp_layer_types"][0] = "dense"; }, "mlp_layer_types[0] = 'dense'",
         true},
        {"mlp length", [](json& j) { j["mlp_layer_types"].erase(0); }, "'mlp_layer_types' has 4 entries",
         true},
        {"num_hash_layers vs list", [](json& j) { j["num_hash_layers"] = 2; },
         "'num_hash_layers' = 2 but mlp_layer_types has 3", true},
        {"num_hash_layers range", [](json& j) { j["num_hash_layers"] = 6; },
         "'num_hash_layers' = 6 must be in"},
        {"hidden_size", [](json& j) { j["hidden_size"] = 0; }, "'hidden_size' must be positive"},
        {"hidden_size type", [](json& j) { j["hidden_size"] = "256"; }, "'hidden_size' must be an integer"},
        {"num_hidden_layers", [](json& j) { j["num_hidden_layers"] = 0; },
         "'num_hidden_layers' must be positive"},
        {"kv heads", [](json& j) { j["num_key_value_heads"] = 4; }, "'num_key_value_heads' must be 1"},
        {"o_groups", [](json& j) { j["o_groups"] = 3; }, "must be divisible by 'o_groups' 3"},
        {"rope odd", [](json& j) { j["qk_rope_head_dim"] = 63; }, "'qk_rope_head_dim' 63 must be even"},
        {"rope > head", [](json& j) { j["qk_rope_head_dim"] = 256; }, "must be even and <= head_dim 128"},
        {"partial factor", [](json& j) { j["partial_rotary_factor"] = 0.3; }, "not a positive whole number",
         true},
        {"partial factor vs dim", [](json& j) { j["qk_rope_head_dim"] = 32; },
         "'partial_rotary_factor' gives 64 rotary dims but 'qk_rope_head_dim' gives 32", true},
        {"index dim", [](json& j) { j["index_head_dim"] = 32; },
         "'index_head_dim' 32 must be >= qk_rope_head_dim 64"},
        {"topk experts", [](json& j) { j["num_experts_per_tok"] = 9; }, "'num_experts_per_tok' 9 exceeds"},
        {"hc_mult", [](json& j) { j["hc_mult"] = 0; }, "'hc_mult' must be positive"},
        {"scoring", [](json& j) { j["scoring_func"] = "sigmoid"; },
         "'scoring_func' = 'sigmoid' is not supported"},
        {"rope type", [](json& j) { j["rope_scaling"]["type"] = "linear"; },
         "rope type 'linear' is not supported"},
        {"rope no type", [](json& j) { j["rope_scaling"].erase("type"); }, "gives a factor but no rope_type"},
        {"yarn missing", [](json& j) { j["rope_scaling"].erase("factor"); }, "YaRN needs 'factor'"},
        {"yarn factor", [](json& j) { j["rope_scaling"]["factor"] = 0.5; }, "YaRN factor must be >= 1"},
        {"yarn betas", [](json& j) { j["rope_scaling"]["beta_slow"] = 64; }, "beta_fast > beta_slow"},
        {"attention_factor", [](json& j) { j["rope_parameters"]["compress"]["attention_factor"] = 1.277; },
         "attention_factor 1.277 is not supported", true},
        {"rope_type vs type", [](json& j) { j["rope_parameters"]["compress"]["type"] = "default"; },
         "has rope_type 'yarn' but type 'default'", true},
        {"theta", [](json& j) { j["rope_theta"] = -1.0; }, "rope_theta must be positive"},
        {"quant method",
         [](json& j) {
             j["quantization_config"] = {{"quant_method", "gptq"}};
         },
         "quant_method' = 'gptq' is not supported"},
        {"quant block",
         [](json& j) {
             j["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {128}}};
         },
         "weight_block_size' must be [n, k]"},
        {"scale fmt",
         [](json& j) {
             j["quantization_config"] = {{"quant_method", "fp8"}, {"scale_fmt", "fp32"}};
         },
         "scale_fmt' = 'fp32' is not supported"},
        {"expert dtype", [](json& j) { j["expert_dtype"] = "int4"; },
         "'expert_dtype' = 'int4' is not supported"},
        {"model type", [](json& j) { j["model_type"] = "deepseek_v3"; }, "'model_type' = 'deepseek_v3'"},
        {"hidden act", [](json& j) { j["hidden_act"] = "gelu"; }, "'hidden_act' = 'gelu'"},
        {"bias", [](json& j) { j["attention_bias"] = true; }, "'attention_bias' = true is not supported"},
        {"bool type", [](json& j) { j["norm_topk_prob"] = 1; }, "'norm_topk_prob' must be true or false"},
        {"out of int range", [](json& j) { j["vocab_size"] = 1LL << 40; },
         "'vocab_size' = 1099511627776 is out of range"},
    };
    for (const Bad& b : cases) {
        json j = b.hf ? tiny_hf() : tiny_released();
        b.edit(j);
        auto r = parse_config(j.dump(), "bad_config.json");
        ASSERT_FALSE(r.is_ok()) << b.what << ": accepted";
        EXPECT_EQ(r.message().rfind("bad_config.json: ", 0), 0u) << b.what << ": " << r.message();
        EXPECT_NE(r.message().find(b.expected), std::string::npos)
            << b.what << ": expected '" << b.expected << "' in: " << r.message();
    }
}

TEST(Config, RejectsBadJson) {
    auto r = parse_config("{\"hidden_size\": 4096,", "cfg.json");
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("cfg.json: invalid JSON"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("parse error"), std::string::npos) << r.message();  // nlohmann's own detail
    r = parse_config("[1, 2]", "cfg.json");
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("config must be a JSON object"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace dsv4
