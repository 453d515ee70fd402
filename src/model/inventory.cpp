// Released tensor inventory (spec §3.1) and the parameter / byte counts of spec §12.
// Per decoded token at batch 1 every non-expert weight is read once, plus k routed experts per layer,
// the whole LM head and one embedding row (and one tid2eid row in hash layers); the MTP block is unused.
#include "model/inventory.h"

#include <fmt/format.h>

namespace dsv4 {

namespace {

int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

struct Builder {
    std::vector<InventoryEntry> inv;
    int layer = -1;

    void plain(const std::string& name, std::vector<int64_t> shape, DType dt, WeightGroup g) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        InventoryEntry e{name, shape, dt, dt == DType::i64 ? 0 : n, dtype_bytes(dt, n), 0, g, layer};
        inv.push_back(std::move(e));
    }
    void fp8(const std::string& name, int64_t N, int64_t K, WeightGroup g, int expert = -1) {
        const int64_t sb = ceil_div(N, 128) * ceil_div(K, 128);
        inv.push_back({name, {N, K}, DType::f8_e4m3, N * K, N * K + sb, sb, g, layer, expert});
    }
    void fp4(const std::string& name, int64_t N, int64_t K, WeightGroup g, int expert) {
        const int64_t sb = N * (K / 32);
        inv.push_back({name, {N, K}, DType::fp4_e2m1, N * K, N * K / 2 + sb, sb, g, layer, expert});
    }
};

// One decoder block (main layer or MTP) in released names under prefix p.
void add_block(Builder& b, const Dsv4Config& cfg, const std::string& p, int ratio, bool hash,
               bool expert_fp8) {
    using G = WeightGroup;
    const int64_t D = cfg.hidden_size, hc = cfg.hc_mult, M = (2 + hc) * hc, H = cfg.num_attention_heads;
    const int64_t dh = cfg.head_dim, rq = cfg.q_lora_rank, Go = cfg.o_groups, ro = cfg.o_lora_rank;
    const int64_t E = cfg.n_routed_experts, I = cfg.moe_intermediate_size, k = cfg.num_experts_per_tok;
    for (const char* site : {"attn", "ffn"}) {
        b.plain(fmt::format("{}hc_{}_fn", p, site), {M, hc * D}, DType::f32, G::hyper_connection);
        b.plain(fmt::format("{}hc_{}_base", p, site), {M}, DType::f32, G::hyper_connection);
        b.plain(fmt::format("{}hc_{}_scale", p, site), {3}, DType::f32, G::hyper_connection);
    }
    b.plain(p + "attn_norm.weight", {D}, DType::bf16, G::attention_core);
    b.plain(p + "ffn_norm.weight", {D}, DType::bf16, G::attention_core);
    b.plain(p + "attn.attn_sink", {H}, DType::f32, G::attention_core);
    b.fp8(p + "attn.wq_a.weight", rq, D, G::attention_core);
    b.plain(p + "attn.q_norm.weight", {rq}, DType::bf16, G::attention_core);
    b.fp8(p + "attn.wq_b.weight", H * dh, rq, G::attention_core);
    b.fp8(p + "attn.wkv.weight", dh, D, G::attention_core);
    b.plain(p + "attn.kv_norm.weight", {dh}, DType::bf16, G::attention_core);
    b.fp8(p + "attn.wo_a.weight", Go * ro, H * dh / Go, G::attention_core);
    b.fp8(p + "attn.wo_b.weight", D, Go * ro, G::attention_core);
    auto compressor = [&](const std::string& cp, int64_t m, int64_t d, G g) {
        const int64_t c = m == 4 ? 2 : 1;
        b.plain(cp + "ape", {m, c * d}, DType::f32, g);
        b.plain(cp + "wkv.weight", {c * d, D}, DType::bf16, g);
        b.plain(cp + "wgate.weight", {c * d, D}, DType::bf16, g);
        b.plain(cp + "norm.weight", {d}, DType::bf16, g);
    };
    if (ratio != 0) compressor(p + "attn.compressor.", ratio, dh, G::compressor);
    if (ratio == 4) {
        const int64_t HI = cfg.index_n_heads, dI = cfg.index_head_dim;
        b.fp8(p + "attn.indexer.wq_b.weight", HI * dI, rq, G::indexer);
        b.plain(p + "attn.indexer.weights_proj.weight", {HI, D}, DType::bf16, G::indexer);
        compressor(p + "attn.indexer.compressor.", 4, dI, G::indexer);
    }
    b.plain(p + "ffn.gate.weight", {E, D}, DType::bf16, G::router);
    if (hash)
        b.plain(p + "ffn.gate.tid2eid", {cfg.vocab_size, k}, DType::i64, G::router);
    else
        b.plain(p + "ffn.gate.bias", {E}, DType::f32, G::router);
    for (int e = 0; e < E; ++e) {
        const std::string ep = fmt::format("{}ffn.experts.{}.", p, e);
        for (auto [w, N, K] : {std::tuple{"w1", I, D}, std::tuple{"w2", D, I}, std::tuple{"w3", I, D}}) {
            if (expert_fp8)
                b.fp8(ep + w + ".weight", N, K, G::routed_experts, e);
            else
                b.fp4(ep + w + ".weight", N, K, G::routed_experts, e);
        }
    }
    const int64_t Is = I * cfg.n_shared_experts;
    b.fp8(p + "ffn.shared_experts.w1.weight", Is, D, G::shared_expert);
    b.fp8(p + "ffn.shared_experts.w2.weight", D, Is, G::shared_expert);
    b.fp8(p + "ffn.shared_experts.w3.weight", Is, D, G::shared_expert);
}

}  // namespace

const char* weight_group_name(WeightGroup g) {
    static const char* kNames[] = {"attention core", "routed experts", "shared experts", "LM head",
                                   "embedding",      "compressors",    "indexers",       "mHC",
                                   "router",         "other"};
    static_assert(std::size(kNames) == size_t(WeightGroup::count), "name every group");
    return kNames[size_t(g)];
}

std::vector<InventoryEntry> released_inventory(const Dsv4Config& cfg, bool expert_fp8) {
    using G = WeightGroup;
    Builder b;
    const int64_t V = cfg.vocab_size, D = cfg.hidden_size, hc = cfg.hc_mult;
    b.plain("embed.weight", {V, D}, DType::bf16, G::embed);
    b.plain("head.weight", {V, D}, DType::bf16, G::head);
    b.plain("norm.weight", {D}, DType::bf16, G::other);
    b.plain("hc_head_fn", {hc, hc * D}, DType::f32, G::hyper_connection);
    b.plain("hc_head_base", {hc}, DType::f32, G::hyper_connection);
    b.plain("hc_head_scale", {1}, DType::f32, G::hyper_connection);
    for (int il = 0; il < cfg.num_hidden_layers; ++il) {
        b.layer = il;
        add_block(b, cfg, fmt::format("layers.{}.", il), cfg.compress_ratio(il), cfg.is_hash_layer(il),
                  expert_fp8);
    }
    for (int i = 0; i < cfg.num_nextn_predict_layers; ++i) {  // MTP: a score-routed block of ratio entry L
        b.layer = cfg.num_hidden_layers + i;
        const std::string p = fmt::format("mtp.{}.", i);
        add_block(b, cfg, p, cfg.mtp_compress_ratio, false, expert_fp8);
        b.fp8(p + "e_proj.weight", D, D, G::other);
        b.fp8(p + "h_proj.weight", D, D, G::other);
        for (const char* nrm : {"enorm.weight", "hnorm.weight", "norm.weight"})
            b.plain(p + nrm, {D}, DType::bf16, G::other);
        b.plain(p + "hc_head_fn", {hc, hc * D}, DType::f32, G::hyper_connection);
        b.plain(p + "hc_head_base", {hc}, DType::f32, G::hyper_connection);
        b.plain(p + "hc_head_scale", {1}, DType::f32, G::hyper_connection);
    }
    return b.inv;
}

ModelCounts count_inventory(const Dsv4Config& cfg, const std::vector<InventoryEntry>& inv) {
    ModelCounts c;
    const int64_t k = cfg.num_experts_per_tok, D = cfg.hidden_size;
    for (const InventoryEntry& e : inv) {
        const bool mtp = e.layer >= cfg.num_hidden_layers;
        c.n_tensors += e.has_scale() ? 2 : 1;
        c.bytes_total += e.bytes;
        c.params_total += e.params;
        if (mtp) continue;
        c.params_main += e.params;
        // Active per token: k of the routed experts (any k: all experts of a layer have one size).
        const bool active_expert = e.group != WeightGroup::routed_experts || e.expert < k;
        int64_t active = active_expert ? e.params : 0, read = active_expert ? e.bytes : 0;
        if (e.group == WeightGroup::embed) active = D, read = e.bytes / cfg.vocab_size;  // one row
        if (e.dtype == DType::i64) read = e.bytes / e.shape[0];                          // one tid2eid row
        c.params_active += active;
        if (e.group != WeightGroup::head) c.params_active_no_head += active;
        c.token_bytes[size_t(e.group)] += read;
        c.token_bytes_total += read;
    }
    return c;
}

}  // namespace dsv4
