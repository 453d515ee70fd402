// Released <-> HF tensor names (spec §3.2 table), global tensors and per-layer suffixes.
#include "model/naming.h"

#include <utility>

namespace dsv4 {

namespace {

using Pair = std::pair<const char*, const char*>;

constexpr Pair kGlobal[] = {
    {"embed.weight", "model.embed_tokens.weight"}, {"head.weight", "lm_head.weight"},
    {"norm.weight", "model.norm.weight"},          {"hc_head_fn", "model.hc_head.hc_fn"},
    {"hc_head_base", "model.hc_head.hc_base"},     {"hc_head_scale", "model.hc_head.hc_scale"}};

// Per-layer suffixes: released after "layers.N.", HF after "model.layers.N.".
constexpr Pair kLayer[] = {
    {"hc_attn_fn", "attn_hc.fn"},
    {"hc_attn_base", "attn_hc.base"},
    {"hc_attn_scale", "attn_hc.scale"},
    {"hc_ffn_fn", "ffn_hc.fn"},
    {"hc_ffn_base", "ffn_hc.base"},
    {"hc_ffn_scale", "ffn_hc.scale"},
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn.wq_a.weight", "self_attn.q_a_proj.weight"},
    {"attn.q_norm.weight", "self_attn.q_a_norm.weight"},
    {"attn.wq_b.weight", "self_attn.q_b_proj.weight"},
    {"attn.wkv.weight", "self_attn.kv_proj.weight"},
    {"attn.kv_norm.weight", "self_attn.kv_norm.weight"},
    {"attn.wo_a.weight", "self_attn.o_a_proj.weight"},
    {"attn.wo_b.weight", "self_attn.o_b_proj.weight"},
    {"attn.attn_sink", "self_attn.sinks"},
    {"attn.compressor.ape", "self_attn.compressor.position_bias"},
    {"attn.compressor.wkv.weight", "self_attn.compressor.kv_proj.weight"},
    {"attn.compressor.wgate.weight", "self_attn.compressor.gate_proj.weight"},
    {"attn.compressor.norm.weight", "self_attn.compressor.kv_norm.weight"},
    {"attn.indexer.wq_b.weight", "self_attn.compressor.indexer.q_b_proj.weight"},
    {"attn.indexer.weights_proj.weight", "self_attn.compressor.indexer.scorer.weights_proj.weight"},
    {"attn.indexer.compressor.ape", "self_attn.compressor.indexer.position_bias"},
    {"attn.indexer.compressor.wkv.weight", "self_attn.compressor.indexer.kv_proj.weight"},
    {"attn.indexer.compressor.wgate.weight", "self_attn.compressor.indexer.gate_proj.weight"},
    {"attn.indexer.compressor.norm.weight", "self_attn.compressor.indexer.kv_norm.weight"},
    {"ffn.gate.weight", "mlp.gate.weight"},
    {"ffn.gate.bias", "mlp.gate.e_score_correction_bias"},
    {"ffn.gate.tid2eid", "mlp.gate.tid2eid"},
    {"ffn.shared_experts.w1.weight", "mlp.shared_experts.gate_proj.weight"},
    {"ffn.shared_experts.w2.weight", "mlp.shared_experts.down_proj.weight"},
    {"ffn.shared_experts.w3.weight", "mlp.shared_experts.up_proj.weight"}};

// Splits "<prefix><digits>.<rest>" and returns {"<prefix><digits>.", rest}, or {"", ""} when absent.
std::pair<std::string, std::string> split_layer(const std::string& name, const std::string& prefix) {
    if (name.rfind(prefix, 0) != 0) return {"", ""};
    size_t i = prefix.size();
    while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
    if (i == prefix.size() || i >= name.size() || name[i] != '.') return {"", ""};
    return {name.substr(0, i + 1), name.substr(i + 1)};
}

}  // namespace

std::string hf_name_of(const std::string& rel) {
    for (const auto& [r, h] : kGlobal)
        if (rel == r) return h;
    auto [layer, rest] = split_layer(rel, "layers.");
    if (layer.empty()) return rel;
    for (const auto& [r, h] : kLayer)
        if (rest == r) return "model." + layer + h;
    // routed experts, one tensor per expert: ffn.experts.E.w1/w2/w3 <-> mlp.experts.E.gate/down/up_proj
    auto [ex, wname] = split_layer(rest, "ffn.experts.");
    if (!ex.empty()) {
        const std::string e = ex.substr(12);
        if (wname == "w1.weight") return "model." + layer + "mlp.experts." + e + "gate_proj.weight";
        if (wname == "w2.weight") return "model." + layer + "mlp.experts." + e + "down_proj.weight";
        if (wname == "w3.weight") return "model." + layer + "mlp.experts." + e + "up_proj.weight";
    }
    return rel;
}

std::string released_name_of(const std::string& hf) {
    for (const auto& [r, h] : kGlobal)
        if (hf == h) return r;
    auto [layer, rest] = split_layer(hf, "model.layers.");
    if (layer.empty()) return hf;
    const std::string rl = layer.substr(6);  // "layers.N."
    for (const auto& [r, h] : kLayer)
        if (rest == h) return rl + r;
    auto [ex, wname] = split_layer(rest, "mlp.experts.");
    if (!ex.empty()) {
        const std::string e = ex.substr(12);
        if (wname == "gate_proj.weight") return rl + "ffn.experts." + e + "w1.weight";
        if (wname == "down_proj.weight") return rl + "ffn.experts." + e + "w2.weight";
        if (wname == "up_proj.weight") return rl + "ffn.experts." + e + "w3.weight";
    }
    return hf;
}

}  // namespace dsv4
