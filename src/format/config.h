// Dsv4Config: config.json of a V4 checkpoint, in either key set (spec §1, §15):
//  released: compress_ratios (len L+1), num_hash_layers, qk_rope_head_dim, rope_scaling{type: yarn, ...}
//  HF:       layer_types, compress_rates, mlp_layer_types, partial_rotary_factor, rope_parameters{main,
//  compress}
// Field names are the config.json names verbatim. Unsupported values are rejected with a clear message.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace dsv4 {

enum class AttnKind { swa, csa, hca };  // compress ratio 0, 4, any other (128 in the real models)
enum class MlpKind { hash_moe, moe };

struct RopeParams {
    double rope_theta = 10000.0;
    bool yarn = false;
    double factor = 1.0;
    double original_max_position_embeddings = 0.0;
    double beta_fast = 32.0;
    double beta_slow = 1.0;

    bool operator==(const RopeParams&) const = default;
};

struct Dsv4Config {
    int vocab_size = 129280;
    int hidden_size = 4096;
    int num_hidden_layers = 43;
    int num_attention_heads = 64;
    int num_key_value_heads = 1;
    int head_dim = 512;
    int qk_rope_head_dim = 64;  // = head_dim * partial_rotary_factor
    int q_lora_rank = 1024;
    int o_groups = 8;
    int o_lora_rank = 1024;
    int sliding_window = 128;
    int index_n_heads = 64;
    int index_head_dim = 128;
    int index_topk = 512;
    int n_routed_experts = 256;
    int num_experts_per_tok = 6;
    int n_shared_experts = 1;
    int moe_intermediate_size = 2048;
    double routed_scaling_factor = 1.5;
    std::string scoring_func = "sqrtsoftplus";
    bool norm_topk_prob = true;
    int num_hash_layers = 3;
    double swiglu_limit = 10.0;
    int hc_mult = 4;
    int hc_sinkhorn_iters = 20;
    double hc_eps = 1e-6;
    double rms_norm_eps = 1e-6;
    int num_nextn_predict_layers = 1;
    int64_t max_position_embeddings = 1048576;
    bool tie_word_embeddings = false;
    int bos_token_id = 0;
    int eos_token_id = 1;

    RopeParams rope_main;      // SWA layers: theta 10000, no YaRN
    RopeParams rope_compress;  // CSA/HCA layers: compress_rope_theta + YaRN

    std::vector<int> compress_ratios;      // per main layer (length num_hidden_layers): 0, 4 or other
    int mtp_compress_ratio = 0;            // entry L of the released list (MTP block)
    std::vector<MlpKind> mlp_layer_types;  // per main layer

    // quantization_config (issue 5): empty quant_method means a non-quantized checkpoint.
    std::string quant_method;            // "fp8"
    std::string quant_fmt;               // "e4m3"
    std::string scale_fmt;               // "ue8m0"
    std::vector<int> weight_block_size;  // [128, 128]
    std::string activation_scheme;       // "dynamic"
    std::string expert_dtype;            // "fp4" | "fp8" | ""

    bool operator==(const Dsv4Config&) const = default;  // field by field (round-trip tests)

    AttnKind attn_kind(int il) const {
        int m = compress_ratios[il];
        return m == 0 ? AttnKind::swa : (m == 4 ? AttnKind::csa : AttnKind::hca);
    }
    int compress_ratio(int il) const { return compress_ratios[il]; }
    bool is_hash_layer(int il) const { return mlp_layer_types[il] == MlpKind::hash_moe; }
    const RopeParams& rope_for_layer(int il) const {
        return compress_ratios[il] == 0 ? rope_main : rope_compress;
    }
};

// Parses config.json text; `source` names the file in messages.
Result<Dsv4Config> parse_config(const std::string& json_text, const std::string& source = "config.json");
Result<Dsv4Config> load_config(const std::string& path);  // a file, or a directory holding config.json
// Writes the released key set (compress_ratios, num_hash_layers, qk_rope_head_dim, rope_scaling, ...);
// an HCA ratio other than 128 is written as 128 plus compress_rate_hca (spec §15).
std::string config_to_json(const Dsv4Config& cfg);

}  // namespace dsv4
