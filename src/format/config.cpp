// config.json -> Dsv4Config for both key sets of spec §1 and §15 (released: compress_ratios,
// num_hash_layers, qk_rope_head_dim, rope_scaling; HF: layer_types, compress_rates, mlp_layer_types,
// partial_rotary_factor, rope_parameters), and the writer of the released set.
// Tested by tests/unit/test_config.cpp on the released Flash/Pro configs and on each rejected value.
#include "format/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

namespace dsv4 {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* kCsa = "compressed_sparse_attention";
constexpr const char* kHca = "heavily_compressed_attention";
constexpr const char* kSwa = "sliding_attention";

// Present and not null (HF writes null for unset optional fields such as rope_scaling).
const json* find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return (it == obj.end() || it->is_null()) ? nullptr : &*it;
}

// Integer, or a float with an integral value (some writers emit 65536.0); within [lo, hi].
Status to_int64(const json& v, const std::string& where, int64_t& out) {
    if (v.is_number_integer() || v.is_number_unsigned()) {
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
            return error("'{}' = {} is out of range", where, v.dump());
        out = v.get<int64_t>();
        return Status::ok();
    }
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18) {
            out = int64_t(d);
            return Status::ok();
        }
    }
    return error("'{}' must be an integer, found {}", where, v.dump());
}

Status to_int(const json& v, const std::string& where, int& out) {
    int64_t x = 0;
    DSV4_TRY(to_int64(v, where, x));
    if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
        return error("'{}' = {} is out of range", where, x);
    out = int(x);
    return Status::ok();
}

// Optional typed fields: leave `out` (the default) alone when the key is absent or null.
Status get(const json& obj, const char* key, int& out) {
    const json* v = find(obj, key);
    return v ? to_int(*v, key, out) : Status::ok();
}
Status get(const json& obj, const char* key, int64_t& out) {
    const json* v = find(obj, key);
    return v ? to_int64(*v, key, out) : Status::ok();
}
Status get(const json& obj, const char* key, double& out, const std::string& where = "") {
    const json* v = find(obj, key);
    if (!v) return Status::ok();
    if (!v->is_number()) return error("'{}{}' must be a number, found {}", where, key, v->dump());
    out = v->get<double>();
    return Status::ok();
}
Status get(const json& obj, const char* key, bool& out) {
    const json* v = find(obj, key);
    if (!v) return Status::ok();
    if (!v->is_boolean()) return error("'{}' must be true or false, found {}", key, v->dump());
    out = v->get<bool>();
    return Status::ok();
}
Status get(const json& obj, const char* key, std::string& out, const std::string& where = "") {
    const json* v = find(obj, key);
    if (!v) return Status::ok();
    if (!v->is_string()) return error("'{}{}' must be a string, found {}", where, key, v->dump());
    out = v->get<std::string>();
    return Status::ok();
}
// bos/eos may be one id or a list (generation configs); the first id is the one we use.
Status get_token_id(const json& obj, const char* key, int& out) {
    const json* v = find(obj, key);
    if (v && v->is_array()) {
        if (v->empty()) return error("'{}' is an empty list", key);
        return to_int((*v)[0], key, out);
    }
    return get(obj, key, out);
}

// One RoPE table: rope_type/type ("default" or "yarn"), YaRN parameters, and rope_theta if read_theta.
Status parse_rope_table(const json& obj, const std::string& where, bool read_theta, RopeParams& r) {
    if (!obj.is_object()) return error("'{}' must be an object, found {}", where, obj.dump());
    std::string type, legacy_type;
    DSV4_TRY(get(obj, "rope_type", type, where + "."));
    DSV4_TRY(get(obj, "type", legacy_type, where + "."));
    if (!type.empty() && !legacy_type.empty() && type != legacy_type)
        return error("'{}' has rope_type '{}' but type '{}'", where, type, legacy_type);
    if (type.empty()) type = legacy_type;
    if (read_theta) DSV4_TRY(get(obj, "rope_theta", r.rope_theta, where + "."));
    if (type.empty() && find(obj, "factor"))
        return error("'{}' gives a factor but no rope_type (expected \"yarn\")", where);
    if (type.empty() || type == "default") {
        r.yarn = false;
        return Status::ok();
    }
    if (type != "yarn")
        return error("'{}': rope type '{}' is not supported (expected \"yarn\" or \"default\")", where, type);
    r.yarn = true;
    if (!find(obj, "factor") || !find(obj, "original_max_position_embeddings"))
        return error("'{}': YaRN needs 'factor' and 'original_max_position_embeddings'", where);
    DSV4_TRY(get(obj, "factor", r.factor, where + "."));
    DSV4_TRY(get(obj, "original_max_position_embeddings", r.original_max_position_embeddings, where + "."));
    DSV4_TRY(get(obj, "beta_fast", r.beta_fast, where + "."));
    DSV4_TRY(get(obj, "beta_slow", r.beta_slow, where + "."));
    // V4 never scales cos/sin (HF forces attention_factor = 1.0, spec §6.3); any other value is a
    // config we would silently mis-run, so refuse it.
    double attention_factor = 1.0;
    DSV4_TRY(get(obj, "attention_factor", attention_factor, where + "."));
    if (attention_factor != 1.0)
        return error("'{}': YaRN attention_factor {} is not supported (V4 uses 1.0, spec §6.3)", where,
                     attention_factor);
    return Status::ok();
}

// Both RoPE tables: top-level thetas, then released rope_scaling, then HF rope_parameters (nested or flat).
Status parse_rope(const json& root, Dsv4Config& c) {
    c.rope_main = RopeParams{};
    c.rope_compress = RopeParams{};
    c.rope_compress.rope_theta = 160000.0;  // released value for Flash and Pro (spec §1.1, §14 item 7)
    DSV4_TRY(get(root, "rope_theta", c.rope_main.rope_theta));
    DSV4_TRY(get(root, "compress_rope_theta", c.rope_compress.rope_theta));
    if (const json* rs = find(root, "rope_scaling"))
        DSV4_TRY(parse_rope_table(*rs, "rope_scaling", false, c.rope_compress));
    if (const json* rp = find(root, "rope_parameters")) {
        if (!rp->is_object()) return error("'rope_parameters' must be an object, found {}", rp->dump());
        if (rp->contains("main") || rp->contains("compress")) {
            if (const json* m = find(*rp, "main"))
                DSV4_TRY(parse_rope_table(*m, "rope_parameters.main", true, c.rope_main));
            if (const json* m = find(*rp, "compress"))
                DSV4_TRY(parse_rope_table(*m, "rope_parameters.compress", true, c.rope_compress));
        } else {
            // Flat form (HF constructor argument): the YaRN parameters of the compress table only.
            DSV4_TRY(parse_rope_table(*rp, "rope_parameters", false, c.rope_compress));
        }
    }
    return Status::ok();
}

// qk_rope_head_dim directly, or head_dim * partial_rotary_factor (top level or inside rope_parameters).
Status parse_rope_dim(const json& root, Dsv4Config& c) {
    std::vector<std::pair<std::string, double>> factors;
    auto collect = [&](const json& obj, const std::string& where) -> Status {
        double f = 0.0;
        if (!find(obj, "partial_rotary_factor")) return Status::ok();
        DSV4_TRY(get(obj, "partial_rotary_factor", f, where));
        factors.emplace_back(where + "partial_rotary_factor", f);
        return Status::ok();
    };
    DSV4_TRY(collect(root, ""));
    if (const json* rp = find(root, "rope_parameters"); rp && rp->is_object()) {
        DSV4_TRY(collect(*rp, "rope_parameters."));
        for (const char* k : {"main", "compress"}) {
            if (const json* t = find(*rp, k); t && t->is_object())
                DSV4_TRY(collect(*t, fmt::format("rope_parameters.{}.", k)));
        }
    }
    std::vector<std::pair<std::string, int>> dims;
    for (const auto& [where, f] : factors) {
        double d = c.head_dim * f;
        if (!(d > 0.0) || d != std::floor(d))
            return error("'{}' = {} times head_dim {} is not a positive whole number of rotary dims", where,
                         f, c.head_dim);
        dims.emplace_back(where, int(d));
    }
    if (const json* v = find(root, "qk_rope_head_dim")) {
        DSV4_TRY(to_int(*v, "qk_rope_head_dim", c.qk_rope_head_dim));
        dims.insert(dims.begin(), std::make_pair(std::string("qk_rope_head_dim"), c.qk_rope_head_dim));
    } else if (!dims.empty()) {
        c.qk_rope_head_dim = dims[0].second;
    } else if (c.head_dim % 8 == 0) {
        c.qk_rope_head_dim = c.head_dim / 8;  // HF class default partial_rotary_factor 0.125
    }
    for (const auto& [where, d] : dims) {
        if (d != c.qk_rope_head_dim)
            return error("'{}' gives {} rotary dims but '{}' gives {}", where, d, dims[0].first,
                         dims[0].second);
    }
    return Status::ok();
}

// Per-layer compress ratios from layer_types (+ compress_rates) and/or compress_ratios (+ compress_rate_hca).
Status parse_layer_schedule(const json& root, Dsv4Config& c) {
    const int n_layers = c.num_hidden_layers;
    int csa_rate = 4, hca_rate = 128;
    bool hca_from_rates = false;
    if (const json* cr = find(root, "compress_rates")) {
        if (!cr->is_object()) return error("'compress_rates' must be an object, found {}", cr->dump());
        for (const auto& [k, v] : cr->items()) {
            std::string where = "compress_rates." + k;
            if (k == kCsa) {
                DSV4_TRY(to_int(v, where, csa_rate));
            } else if (k == kHca) {
                DSV4_TRY(to_int(v, where, hca_rate));
                hca_from_rates = true;
            } else {
                return error("'compress_rates' has unknown layer type '{}' (expected {} or {})", k, kCsa,
                             kHca);
            }
        }
    }
    if (const json* v = find(root, "compress_rate_hca")) {
        // Legacy key that HF folds into compress_rates[heavily_compressed_attention] (spec §15).
        int legacy = 0;
        DSV4_TRY(to_int(*v, "compress_rate_hca", legacy));
        if (hca_from_rates && legacy != hca_rate)
            return error("'compress_rate_hca' = {} disagrees with compress_rates.{} = {}", legacy, kHca,
                         hca_rate);
        hca_rate = legacy;
    }
    if (csa_rate != 4)
        return error(
            "CSA compress ratio must be 4 (the overlapping compressor and the indexer assume it), "
            "found {}",
            csa_rate);
    if (hca_rate < 2 || hca_rate == 4)
        return error("HCA compress ratio must be >= 2 and not 4, found {}", hca_rate);

    const json* lt = find(root, "layer_types");
    const json* ratios = find(root, "compress_ratios");
    if (!lt && !ratios)
        return error(
            "neither 'layer_types' nor 'compress_ratios' is given; refusing to guess the layer schedule "
            "(HF's default is shifted by one against the released Pro schedule, spec §1.2)");

    std::vector<int> from_types, from_ratios;
    if (lt) {
        if (!lt->is_array()) return error("'layer_types' must be a list, found {}", lt->type_name());
        if (int(lt->size()) != n_layers)
            return error("'layer_types' has {} entries, expected num_hidden_layers = {}", lt->size(),
                         n_layers);
        for (size_t il = 0; il < lt->size(); ++il) {
            const json& t = (*lt)[il];
            std::string s = t.is_string() ? t.get<std::string>() : t.dump();
            if (s == kSwa)
                from_types.push_back(0);
            else if (s == kCsa)
                from_types.push_back(csa_rate);
            else if (s == kHca)
                from_types.push_back(hca_rate);
            else
                return error("layer_types[{}] = '{}' is not one of {}, {}, {}", il, s, kSwa, kCsa, kHca);
        }
    }
    c.mtp_compress_ratio = 0;  // HF keeps no MTP entry; the MTP block is SWA in both released models
    if (ratios) {
        if (!ratios->is_array())
            return error("'compress_ratios' must be a list, found {}", ratios->type_name());
        const int n = int(ratios->size());
        if (n != n_layers + 1 && n != n_layers)
            return error(
                "'compress_ratios' has {} entries, expected num_hidden_layers + 1 = {} (last = MTP) "
                "or num_hidden_layers = {}",
                n, n_layers + 1, n_layers);
        for (int il = 0; il < n; ++il) {
            int m = 0;
            DSV4_TRY(to_int((*ratios)[il], fmt::format("compress_ratios[{}]", il), m));
            if (m == 128) m = hca_rate;  // HF's legacy fold: 128 means "the HCA ratio"
            if (il < n_layers)
                from_ratios.push_back(m);
            else
                c.mtp_compress_ratio = m;
        }
    }
    if (lt && ratios) {
        for (int il = 0; il < n_layers; ++il) {
            if (from_types[il] != from_ratios[il])
                return error("layer {}: layer_types gives ratio {} but compress_ratios gives {}", il,
                             from_types[il], from_ratios[il]);
        }
    }
    c.compress_ratios = lt ? from_types : from_ratios;
    for (int il = 0; il <= n_layers; ++il) {
        int m = il < n_layers ? c.compress_ratios[il] : c.mtp_compress_ratio;
        if (m != 0 && m < 2)
            return error("{}: compress ratio {} is not supported (0 = SWA, 4 = CSA, >= 2 = HCA)",
                         il < n_layers ? fmt::format("layer {}", il) : std::string("MTP layer"), m);
    }
    return Status::ok();
}

// Hash-routed (hash_moe) vs score-routed (moe) layers, from mlp_layer_types or num_hash_layers.
Status parse_mlp_schedule(const json& root, Dsv4Config& c) {
    const int n_layers = c.num_hidden_layers;
    const json* mlt = find(root, "mlp_layer_types");
    const json* nh = find(root, "num_hash_layers");
    c.mlp_layer_types.clear();
    if (mlt) {
        if (!mlt->is_array()) return error("'mlp_layer_types' must be a list, found {}", mlt->type_name());
        if (int(mlt->size()) != n_layers)
            return error("'mlp_layer_types' has {} entries, expected num_hidden_layers = {}", mlt->size(),
                         n_layers);
        int n_hash = 0;
        for (size_t il = 0; il < mlt->size(); ++il) {
            const json& t = (*mlt)[il];
            std::string s = t.is_string() ? t.get<std::string>() : t.dump();
            if (s == "hash_moe") {
                c.mlp_layer_types.push_back(MlpKind::hash_moe);
                ++n_hash;
            } else if (s == "moe") {
                c.mlp_layer_types.push_back(MlpKind::moe);
            } else {
                return error("mlp_layer_types[{}] = '{}' is not hash_moe or moe", il, s);
            }
        }
        if (nh) {
            int given = 0;
            DSV4_TRY(to_int(*nh, "num_hash_layers", given));
            if (given != n_hash)
                return error("'num_hash_layers' = {} but mlp_layer_types has {} hash_moe layers", given,
                             n_hash);
        }
        c.num_hash_layers = n_hash;
        return Status::ok();
    }
    DSV4_TRY(get(root, "num_hash_layers", c.num_hash_layers));
    if (c.num_hash_layers < 0 || c.num_hash_layers > n_layers)
        return error("'num_hash_layers' = {} must be in [0, num_hidden_layers = {}]", c.num_hash_layers,
                     n_layers);
    for (int il = 0; il < n_layers; ++il)
        c.mlp_layer_types.push_back(il < c.num_hash_layers ? MlpKind::hash_moe : MlpKind::moe);
    return Status::ok();
}

// quantization_config and the root expert_dtype (spec §10).
Status parse_quant(const json& root, Dsv4Config& c) {
    DSV4_TRY(get(root, "expert_dtype", c.expert_dtype));
    if (!c.expert_dtype.empty() && c.expert_dtype != "fp4" && c.expert_dtype != "fp8")
        return error("'expert_dtype' = '{}' is not supported (expected fp4 or fp8)", c.expert_dtype);
    const json* q = find(root, "quantization_config");
    if (!q) return Status::ok();
    if (!q->is_object()) return error("'quantization_config' must be an object, found {}", q->dump());
    const std::string w = "quantization_config.";
    DSV4_TRY(get(*q, "quant_method", c.quant_method, w));
    DSV4_TRY(get(*q, "fmt", c.quant_fmt, w));
    DSV4_TRY(get(*q, "scale_fmt", c.scale_fmt, w));
    DSV4_TRY(get(*q, "activation_scheme", c.activation_scheme, w));
    if (c.quant_method != "fp8")
        return error("'quantization_config.quant_method' = '{}' is not supported (expected fp8)",
                     c.quant_method);
    if (!c.quant_fmt.empty() && c.quant_fmt != "e4m3")
        return error("'quantization_config.fmt' = '{}' is not supported (expected e4m3)", c.quant_fmt);
    if (!c.scale_fmt.empty() && c.scale_fmt != "ue8m0")
        return error("'quantization_config.scale_fmt' = '{}' is not supported (expected ue8m0)", c.scale_fmt);
    if (!c.activation_scheme.empty() && c.activation_scheme != "dynamic")
        return error("'quantization_config.activation_scheme' = '{}' is not supported (expected dynamic)",
                     c.activation_scheme);
    if (const json* b = find(*q, "weight_block_size")) {
        if (!b->is_array() || b->size() != 2)
            return error("'quantization_config.weight_block_size' must be [n, k], found {}", b->dump());
        c.weight_block_size.clear();
        for (size_t i = 0; i < 2; ++i) {
            int v = 0;
            DSV4_TRY(to_int((*b)[i], fmt::format("quantization_config.weight_block_size[{}]", i), v));
            if (v <= 0)
                return error("'quantization_config.weight_block_size' must be positive, found {}", b->dump());
            c.weight_block_size.push_back(v);
        }
    }
    return Status::ok();
}

Status check_rope(const RopeParams& r, const char* which) {
    if (!(r.rope_theta > 0.0)) return error("{} rope_theta must be positive, found {}", which, r.rope_theta);
    if (!r.yarn) return Status::ok();
    if (!(r.factor >= 1.0)) return error("{} YaRN factor must be >= 1, found {}", which, r.factor);
    if (!(r.original_max_position_embeddings > 0.0))
        return error("{} YaRN original_max_position_embeddings must be positive, found {}", which,
                     r.original_max_position_embeddings);
    if (!(r.beta_fast > r.beta_slow && r.beta_slow > 0.0))
        return error("{} YaRN needs beta_fast > beta_slow > 0, found {} and {}", which, r.beta_fast,
                     r.beta_slow);
    return Status::ok();
}

// Value checks that the parsers above do not already make (spec §1.1; the engine's assumptions).
Status validate(const Dsv4Config& c) {
    const std::pair<const char*, int> positive[] = {
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"num_attention_heads", c.num_attention_heads},
        {"head_dim", c.head_dim},
        {"q_lora_rank", c.q_lora_rank},
        {"o_groups", c.o_groups},
        {"o_lora_rank", c.o_lora_rank},
        {"sliding_window", c.sliding_window},
        {"index_n_heads", c.index_n_heads},
        {"index_head_dim", c.index_head_dim},
        {"index_topk", c.index_topk},
        {"n_routed_experts", c.n_routed_experts},
        {"num_experts_per_tok", c.num_experts_per_tok},
        {"moe_intermediate_size", c.moe_intermediate_size},
        {"hc_mult", c.hc_mult},
        {"hc_sinkhorn_iters", c.hc_sinkhorn_iters},
        {"qk_rope_head_dim", c.qk_rope_head_dim},
    };
    for (const auto& [name, v] : positive) {
        if (v <= 0) return error("'{}' must be positive, found {}", name, v);
    }
    if (c.num_key_value_heads != 1)
        return error("'num_key_value_heads' must be 1 (V4 has one shared K=V head), found {}",
                     c.num_key_value_heads);
    if (c.num_attention_heads % c.o_groups != 0)
        return error("'num_attention_heads' {} must be divisible by 'o_groups' {}", c.num_attention_heads,
                     c.o_groups);
    if (c.qk_rope_head_dim % 2 != 0 || c.qk_rope_head_dim > c.head_dim)
        return error("'qk_rope_head_dim' {} must be even and <= head_dim {}", c.qk_rope_head_dim, c.head_dim);
    if (c.index_head_dim < c.qk_rope_head_dim)
        return error(
            "'index_head_dim' {} must be >= qk_rope_head_dim {} (the indexer rotates its last dims too)",
            c.index_head_dim, c.qk_rope_head_dim);
    if (c.num_experts_per_tok > c.n_routed_experts)
        return error("'num_experts_per_tok' {} exceeds 'n_routed_experts' {}", c.num_experts_per_tok,
                     c.n_routed_experts);
    if (c.n_shared_experts < 0) return error("'n_shared_experts' must be >= 0, found {}", c.n_shared_experts);
    if (c.num_nextn_predict_layers < 0)
        return error("'num_nextn_predict_layers' must be >= 0, found {}", c.num_nextn_predict_layers);
    if (c.max_position_embeddings <= 0)
        return error("'max_position_embeddings' must be positive, found {}", c.max_position_embeddings);
    if (c.scoring_func != "sqrtsoftplus")
        return error("'scoring_func' = '{}' is not supported (V4 uses sqrtsoftplus)", c.scoring_func);
    if (!(c.rms_norm_eps > 0.0)) return error("'rms_norm_eps' must be positive, found {}", c.rms_norm_eps);
    if (!(c.hc_eps >= 0.0)) return error("'hc_eps' must be >= 0, found {}", c.hc_eps);
    if (!(c.routed_scaling_factor > 0.0))
        return error("'routed_scaling_factor' must be positive, found {}", c.routed_scaling_factor);
    if (!(c.swiglu_limit >= 0.0)) return error("'swiglu_limit' must be >= 0, found {}", c.swiglu_limit);
    DSV4_TRY(check_rope(c.rope_main, "main (SWA)"));
    DSV4_TRY(check_rope(c.rope_compress, "compress (CSA/HCA)"));
    return Status::ok();
}

Status parse_root(const json& root, Dsv4Config& c) {
    if (!root.is_object()) return error("config must be a JSON object, found {}", root.type_name());
    std::string model_type;
    DSV4_TRY(get(root, "model_type", model_type));
    if (!model_type.empty() && model_type != "deepseek_v4")
        return error("'model_type' = '{}' is not deepseek_v4", model_type);
    std::string hidden_act = "silu";
    DSV4_TRY(get(root, "hidden_act", hidden_act));
    if (hidden_act != "silu")
        return error("'hidden_act' = '{}' is not supported (expected silu)", hidden_act);
    for (const char* key : {"attention_bias", "mlp_bias"}) {
        bool bias = false;
        DSV4_TRY(get(root, key, bias));
        if (bias) return error("'{}' = true is not supported (V4 has no biases)", key);
    }

    DSV4_TRY(get(root, "vocab_size", c.vocab_size));
    DSV4_TRY(get(root, "hidden_size", c.hidden_size));
    DSV4_TRY(get(root, "num_hidden_layers", c.num_hidden_layers));
    DSV4_TRY(get(root, "num_attention_heads", c.num_attention_heads));
    DSV4_TRY(get(root, "num_key_value_heads", c.num_key_value_heads));
    DSV4_TRY(get(root, "head_dim", c.head_dim));
    DSV4_TRY(get(root, "q_lora_rank", c.q_lora_rank));
    DSV4_TRY(get(root, "o_groups", c.o_groups));
    DSV4_TRY(get(root, "o_lora_rank", c.o_lora_rank));
    DSV4_TRY(get(root, "sliding_window", c.sliding_window));
    DSV4_TRY(get(root, "index_n_heads", c.index_n_heads));
    DSV4_TRY(get(root, "index_head_dim", c.index_head_dim));
    DSV4_TRY(get(root, "index_topk", c.index_topk));
    DSV4_TRY(get(root, "n_routed_experts", c.n_routed_experts));
    DSV4_TRY(get(root, "num_experts_per_tok", c.num_experts_per_tok));
    DSV4_TRY(get(root, "n_shared_experts", c.n_shared_experts));
    DSV4_TRY(get(root, "moe_intermediate_size", c.moe_intermediate_size));
    DSV4_TRY(get(root, "routed_scaling_factor", c.routed_scaling_factor));
    DSV4_TRY(get(root, "scoring_func", c.scoring_func));
    DSV4_TRY(get(root, "norm_topk_prob", c.norm_topk_prob));
    DSV4_TRY(get(root, "swiglu_limit", c.swiglu_limit));
    DSV4_TRY(get(root, "hc_mult", c.hc_mult));
    DSV4_TRY(get(root, "hc_sinkhorn_iters", c.hc_sinkhorn_iters));
    DSV4_TRY(get(root, "hc_eps", c.hc_eps));
    DSV4_TRY(get(root, "rms_norm_eps", c.rms_norm_eps));
    DSV4_TRY(get(root, "num_nextn_predict_layers", c.num_nextn_predict_layers));
    DSV4_TRY(get(root, "max_position_embeddings", c.max_position_embeddings));
    DSV4_TRY(get(root, "tie_word_embeddings", c.tie_word_embeddings));
    DSV4_TRY(get_token_id(root, "bos_token_id", c.bos_token_id));
    DSV4_TRY(get_token_id(root, "eos_token_id", c.eos_token_id));
    if (c.num_hidden_layers <= 0)
        return error("'num_hidden_layers' must be positive, found {}", c.num_hidden_layers);
    if (c.head_dim <= 0) return error("'head_dim' must be positive, found {}", c.head_dim);

    DSV4_TRY(parse_rope_dim(root, c));
    DSV4_TRY(parse_layer_schedule(root, c));
    DSV4_TRY(parse_mlp_schedule(root, c));
    DSV4_TRY(parse_rope(root, c));
    DSV4_TRY(parse_quant(root, c));
    return validate(c);
}

// Whole numbers print without ".0" so HF and REF read them as ints (original_max_position_embeddings).
ojson number(double v) {
    if (v == std::floor(v) && std::fabs(v) < 9.0e15) return ojson(int64_t(v));
    return ojson(v);
}

ojson rope_table_json(const RopeParams& r, bool with_theta) {
    ojson j = ojson::object();
    j["rope_type"] = r.yarn ? "yarn" : "default";
    if (with_theta) j["rope_theta"] = r.rope_theta;
    if (r.yarn) {
        j["factor"] = r.factor;
        j["original_max_position_embeddings"] = number(r.original_max_position_embeddings);
        j["beta_fast"] = number(r.beta_fast);
        j["beta_slow"] = number(r.beta_slow);
    }
    return j;
}

}  // namespace

Result<Dsv4Config> parse_config(const std::string& json_text, const std::string& source) {
    json root;
    try {
        root = json::parse(json_text);
    } catch (const json::exception& e) {
        return error("{}: invalid JSON: {}", source, e.what());
    }
    Dsv4Config c;
    if (Status s = parse_root(root, c); !s) return s.with_context(source);
    return c;
}

Result<Dsv4Config> load_config(const std::string& path) {
    std::string file = path;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/config.json";
    std::ifstream in(file, std::ios::binary);
    if (!in) return error("{}: cannot open config", file);
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_config(ss.str(), file);
}

std::string config_to_json(const Dsv4Config& c) {
    ojson j;
    j["architectures"] = {"DeepseekV4ForCausalLM"};
    j["model_type"] = "deepseek_v4";
    j["vocab_size"] = c.vocab_size;
    j["hidden_size"] = c.hidden_size;
    j["num_hidden_layers"] = c.num_hidden_layers;
    j["num_attention_heads"] = c.num_attention_heads;
    j["num_key_value_heads"] = c.num_key_value_heads;
    j["head_dim"] = c.head_dim;
    j["qk_rope_head_dim"] = c.qk_rope_head_dim;
    j["q_lora_rank"] = c.q_lora_rank;
    j["o_groups"] = c.o_groups;
    j["o_lora_rank"] = c.o_lora_rank;
    j["sliding_window"] = c.sliding_window;

    // HF's legacy reader only knows 0/4/128: one non-128 HCA ratio goes out as 128 + compress_rate_hca.
    // Several different HCA ratios cannot be folded, so they are written raw (REF reads those).
    std::vector<int> ratios = c.compress_ratios;
    ratios.push_back(c.mtp_compress_ratio);
    int hca = 0;
    bool one_hca = true;
    for (int m : ratios) {
        if (m == 0 || m == 4) continue;
        if (hca != 0 && m != hca) one_hca = false;
        hca = m;
    }
    if (one_hca && hca != 0 && hca != 128) {
        for (int& m : ratios) m = (m == hca) ? 128 : m;
    }
    j["compress_ratios"] = ratios;
    if (one_hca && hca != 0 && hca != 128) j["compress_rate_hca"] = hca;

    j["rope_theta"] = c.rope_main.rope_theta;
    j["compress_rope_theta"] = c.rope_compress.rope_theta;
    if (c.rope_compress.yarn) {
        ojson rs = rope_table_json(c.rope_compress, false);
        rs.erase("rope_type");
        ojson out = {{"type", "yarn"}};
        out.update(rs);
        j["rope_scaling"] = out;
    }
    if (c.rope_main.yarn) {
        // No released key for YaRN on the main table; the HF nested form carries it.
        j["rope_parameters"] = {{"main", rope_table_json(c.rope_main, true)},
                                {"compress", rope_table_json(c.rope_compress, true)}};
    }
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["index_n_heads"] = c.index_n_heads;
    j["index_head_dim"] = c.index_head_dim;
    j["index_topk"] = c.index_topk;
    j["n_routed_experts"] = c.n_routed_experts;
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["n_shared_experts"] = c.n_shared_experts;
    j["moe_intermediate_size"] = c.moe_intermediate_size;
    j["scoring_func"] = c.scoring_func;
    j["routed_scaling_factor"] = c.routed_scaling_factor;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["topk_method"] = "noaux_tc";

    int n_leading_hash = 0;
    while (n_leading_hash < int(c.mlp_layer_types.size()) &&
           c.mlp_layer_types[n_leading_hash] == MlpKind::hash_moe)
        ++n_leading_hash;
    int n_hash = 0;
    for (MlpKind k : c.mlp_layer_types) n_hash += k == MlpKind::hash_moe;
    j["num_hash_layers"] = n_hash;
    if (n_hash != n_leading_hash) {
        // Hash layers that are not a prefix have no released key; write the HF list as well.
        std::vector<std::string> types;
        for (MlpKind k : c.mlp_layer_types) types.push_back(k == MlpKind::hash_moe ? "hash_moe" : "moe");
        j["mlp_layer_types"] = types;
    }
    j["swiglu_limit"] = c.swiglu_limit;
    j["hc_mult"] = c.hc_mult;
    j["hc_sinkhorn_iters"] = c.hc_sinkhorn_iters;
    j["hc_eps"] = c.hc_eps;
    j["rms_norm_eps"] = c.rms_norm_eps;
    j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
    j["hidden_act"] = "silu";
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["bos_token_id"] = c.bos_token_id;
    j["eos_token_id"] = c.eos_token_id;
    j["torch_dtype"] = "bfloat16";
    if (!c.expert_dtype.empty()) j["expert_dtype"] = c.expert_dtype;
    if (!c.quant_method.empty()) {
        ojson q;
        q["quant_method"] = c.quant_method;
        if (!c.quant_fmt.empty()) q["fmt"] = c.quant_fmt;
        if (!c.scale_fmt.empty()) q["scale_fmt"] = c.scale_fmt;
        if (!c.weight_block_size.empty()) q["weight_block_size"] = c.weight_block_size;
        if (!c.activation_scheme.empty()) q["activation_scheme"] = c.activation_scheme;
        j["quantization_config"] = q;
    }
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    return j.dump(2) + "\n";
}

}  // namespace dsv4
