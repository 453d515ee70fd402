// Binds checkpoint tensors to the weight table (spec §3). One Binder call per tensor names it in both
// schemes; every mismatch is collected so a broken checkpoint reports all its problems at once.
#include "model/weights.h"

#include <set>

#include "core/log.h"

namespace dsv4 {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

class Binder {
public:
    Binder(const Checkpoint& ck, NamingScheme scheme) : ck_(ck), scheme_(scheme) {}

    // A plain tensor (norm weights, biases, hc params, sinks, ape): exact element count and a float dtype;
    // 2-D expected shapes are checked exactly.
    void vec(WeightRef& out, const std::string& rel, const std::string& hf, std::vector<int64_t> shape) {
        const TensorInfo* t = find(rel, hf);
        if (!t) return;
        int64_t want = 1;
        for (int64_t d : shape) want *= d;
        bool ok = shape.size() == 2 ? t->shape == shape : t->numel() == want;
        if (!ok) return fail(*t, fmt::format("has shape {}, expected {}", t->shape_str(), shape_str(shape)));
        if (t->dtype != DType::f32 && t->dtype != DType::bf16 && t->dtype != DType::f16)
            return fail(*t, fmt::format("has dtype {}, expected f32, bf16 or f16", dtype_name(t->dtype)));
        out = plain(*t, shape.size() == 2 ? shape[0] : 1, shape.size() == 2 ? shape[1] : want);
    }

    // An int64 table (tid2eid [V, k]).
    void index_table(WeightRef& out, const std::string& rel, const std::string& hf,
                     std::vector<int64_t> shape) {
        const TensorInfo* t = find(rel, hf);
        if (!t) return;
        if (t->shape != shape)
            return fail(*t, fmt::format("has shape {}, expected {}", t->shape_str(), shape_str(shape)));
        if (t->dtype != DType::i64)
            return fail(*t, fmt::format("has dtype {}, expected i64", dtype_name(t->dtype)));
        out = plain(*t, shape[0], shape[1]);
    }

    // A linear weight [N, K]: f32/bf16/f16, FP8 e4m3 + 128x128 UE8M0 scale, or FP4 e2m1 packed in I8/U8
    // [N, K/2] + per-32 UE8M0 scale [N, K/32] (spec §10.2-10.3).
    void matrix(WeightRef& out, const std::string& rel, const std::string& hf, int64_t N, int64_t K) {
        const TensorInfo* t = find(rel, hf);
        if (!t) return;
        switch (t->dtype) {
            case DType::f32:
            case DType::bf16:
            case DType::f16:
                if (t->shape != std::vector<int64_t>{N, K})
                    return fail(*t, fmt::format("has shape {}, expected [{}, {}]", t->shape_str(), N, K));
                out = plain(*t, N, K);
                return;
            case DType::f8_e4m3: {
                if (t->shape != std::vector<int64_t>{N, K})
                    return fail(*t, fmt::format("has shape {}, expected [{}, {}]", t->shape_str(), N, K));
                const TensorInfo* s = scale_of(*t, rel, hf, {ceil_div(N, 128), ceil_div(K, 128)});
                if (!s) return;
                out = plain(*t, N, K);
                out.dtype = DType::f8_e4m3;
                out.scale = s->data;
                out.scale_cols = s->shape[1];
                out.block_rows = out.block_cols = 128;
                return;
            }
            case DType::i8:
            case DType::u8: {
                if (t->shape != std::vector<int64_t>{N, K / 2} || K % 32 != 0)
                    return fail(*t, fmt::format("has shape {} (packed FP4), expected [{}, {}]",
                                                t->shape_str(), N, K / 2));
                const TensorInfo* s = scale_of(*t, rel, hf, {N, K / 32});
                if (!s) return;
                out = plain(*t, N, K);
                out.dtype = DType::fp4_e2m1;
                out.scale = s->data;
                out.scale_cols = s->shape[1];
                out.block_rows = 1;
                out.block_cols = 32;
                return;
            }
            default:
                return fail(
                    *t, fmt::format("has dtype {}, expected bf16, f32, f16, f8_e4m3 (+scale) or packed fp4 "
                                    "(I8 + scale)",
                                    dtype_name(t->dtype)));
        }
    }

    const TensorInfo* find(const std::string& rel, const std::string& hf) {
        const std::string& name = scheme_ == NamingScheme::released ? rel : hf;
        const TensorInfo* t = ck_.find(name);
        if (!t) {
            errors_.push_back(fmt::format("missing tensor '{}'", name));
            return nullptr;
        }
        used_.insert(name);
        return t;
    }
    bool has(const std::string& rel, const std::string& hf) const {
        return ck_.find(scheme_ == NamingScheme::released ? rel : hf) != nullptr;
    }
    void fail(const TensorInfo& t, const std::string& what) {
        errors_.push_back(fmt::format("{}: tensor '{}' {}", t.file, t.name, what));
    }
    void mark_used(const std::string& name) { used_.insert(name); }

    Status finish() const {
        for (const auto& name : ck_.names()) {
            if (used_.count(name) || name.rfind("mtp.", 0) == 0) continue;
            log_warn("{}: unexpected tensor '{}' ignored", ck_.dir(), name);
        }
        if (errors_.empty()) return Status::ok();
        std::string msg = fmt::format("{}: {} problem(s) with the weights:", ck_.dir(), errors_.size());
        for (size_t i = 0; i < errors_.size() && i < 20; ++i) msg += "\n  " + errors_[i];
        if (errors_.size() > 20) msg += fmt::format("\n  ... and {} more", errors_.size() - 20);
        return Status::error(msg);
    }

private:
    static WeightRef plain(const TensorInfo& t, int64_t rows, int64_t cols) {
        WeightRef w;
        w.dtype = t.dtype;
        w.data = t.data;
        w.n_rows = rows;
        w.n_cols = cols;
        return w;
    }
    // `<x>.scale` (released) or `<x>.weight_scale_inv` (HF FP8 quantizer) next to `<x>.weight`.
    const TensorInfo* scale_of(const TensorInfo& t, const std::string& rel, const std::string& hf,
                               std::vector<int64_t> shape) {
        auto strip = [](const std::string& n) {
            return n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 ? n.substr(0, n.size() - 7) : n;
        };
        std::string name = scheme_ == NamingScheme::released ? strip(rel) + ".scale" : hf + "_scale_inv";
        const TensorInfo* s = ck_.find(name);
        if (!s && scheme_ == NamingScheme::hf) s = ck_.find(name = strip(hf) + ".scale");
        if (!s) {
            fail(t, fmt::format("is {} but its scale tensor '{}' is missing", dtype_name(t.dtype), name));
            return nullptr;
        }
        used_.insert(name);
        if (s->dtype != DType::f8_e8m0) {
            fail(*s,
                 fmt::format("has dtype {}, expected f8_e8m0 (UE8M0 block scales)", dtype_name(s->dtype)));
            return nullptr;
        }
        if (s->shape != shape) {
            fail(*s, fmt::format("has shape {}, expected {} for weight {}", s->shape_str(), shape_str(shape),
                                 t.shape_str()));
            return nullptr;
        }
        return s;
    }

    const Checkpoint& ck_;
    NamingScheme scheme_;
    std::set<std::string> used_;
    std::vector<std::string> errors_;
};

void bind_layer(Binder& b, const Dsv4Config& cfg, int il, LayerWeights& L) {
    const std::string r = fmt::format("layers.{}.", il), h = fmt::format("model.layers.{}.", il);
    const int64_t D = cfg.hidden_size, hc = cfg.hc_mult, M = (2 + hc) * hc;
    const int64_t H = cfg.num_attention_heads, dh = cfg.head_dim, rq = cfg.q_lora_rank;
    const int64_t G = cfg.o_groups, ro = cfg.o_lora_rank;
    b.matrix(L.hc_attn_fn, r + "hc_attn_fn", h + "attn_hc.fn", M, hc * D);
    b.vec(L.hc_attn_base, r + "hc_attn_base", h + "attn_hc.base", {M});
    b.vec(L.hc_attn_scale, r + "hc_attn_scale", h + "attn_hc.scale", {3});
    b.matrix(L.hc_ffn_fn, r + "hc_ffn_fn", h + "ffn_hc.fn", M, hc * D);
    b.vec(L.hc_ffn_base, r + "hc_ffn_base", h + "ffn_hc.base", {M});
    b.vec(L.hc_ffn_scale, r + "hc_ffn_scale", h + "ffn_hc.scale", {3});
    b.vec(L.attn_norm, r + "attn_norm.weight", h + "input_layernorm.weight", {D});
    b.vec(L.ffn_norm, r + "ffn_norm.weight", h + "post_attention_layernorm.weight", {D});

    const std::string ra = r + "attn.", ha = h + "self_attn.";
    b.matrix(L.wq_a, ra + "wq_a.weight", ha + "q_a_proj.weight", rq, D);
    b.vec(L.q_norm, ra + "q_norm.weight", ha + "q_a_norm.weight", {rq});
    b.matrix(L.wq_b, ra + "wq_b.weight", ha + "q_b_proj.weight", H * dh, rq);
    b.matrix(L.wkv, ra + "wkv.weight", ha + "kv_proj.weight", dh, D);
    b.vec(L.kv_norm, ra + "kv_norm.weight", ha + "kv_norm.weight", {dh});
    b.matrix(L.wo_a, ra + "wo_a.weight", ha + "o_a_proj.weight", G * ro, H * dh / G);
    b.matrix(L.wo_b, ra + "wo_b.weight", ha + "o_b_proj.weight", D, G * ro);
    b.vec(L.attn_sink, ra + "attn_sink", ha + "sinks", {H});

    const int m = cfg.compress_ratio(il);
    if (m != 0) {
        const int64_t c = m == 4 ? 2 : 1;
        const std::string rc = ra + "compressor.", hcmp = ha + "compressor.";
        b.vec(L.cmp_ape, rc + "ape", hcmp + "position_bias", {m, c * dh});
        b.matrix(L.cmp_wkv, rc + "wkv.weight", hcmp + "kv_proj.weight", c * dh, D);
        b.matrix(L.cmp_wgate, rc + "wgate.weight", hcmp + "gate_proj.weight", c * dh, D);
        b.vec(L.cmp_norm, rc + "norm.weight", hcmp + "kv_norm.weight", {dh});
    }
    if (m == 4) {
        const int64_t HI = cfg.index_n_heads, dI = cfg.index_head_dim;
        const std::string ri = ra + "indexer.", hi = ha + "compressor.indexer.";
        b.matrix(L.idx_wq_b, ri + "wq_b.weight", hi + "q_b_proj.weight", HI * dI, rq);
        b.matrix(L.idx_weights_proj, ri + "weights_proj.weight", hi + "scorer.weights_proj.weight", HI, D);
        b.vec(L.idx_cmp_ape, ri + "compressor.ape", hi + "position_bias", {4, 2 * dI});
        b.matrix(L.idx_cmp_wkv, ri + "compressor.wkv.weight", hi + "kv_proj.weight", 2 * dI, D);
        b.matrix(L.idx_cmp_wgate, ri + "compressor.wgate.weight", hi + "gate_proj.weight", 2 * dI, D);
        b.vec(L.idx_cmp_norm, ri + "compressor.norm.weight", hi + "kv_norm.weight", {dI});
    }

    const std::string rf = r + "ffn.", hf = h + "mlp.";
    const int64_t E = cfg.n_routed_experts, I = cfg.moe_intermediate_size, k = cfg.num_experts_per_tok;
    b.matrix(L.gate, rf + "gate.weight", hf + "gate.weight", E, D);
    if (cfg.is_hash_layer(il))
        b.index_table(L.tid2eid, rf + "gate.tid2eid", hf + "gate.tid2eid", {cfg.vocab_size, k});
    else
        b.vec(L.gate_bias, rf + "gate.bias", hf + "gate.e_score_correction_bias", {E});
    L.w1.resize(size_t(E));
    L.w2.resize(size_t(E));
    L.w3.resize(size_t(E));
    if (b.has("", hf + "experts.gate_up_proj")) {  // HF fused [E, 2I, D] and [E, D, I]
        WeightRef gu, dn;
        b.vec(gu, "", hf + "experts.gate_up_proj", {E * 2 * I * D});
        b.vec(dn, "", hf + "experts.down_proj", {E * D * I});
        gu.n_rows = E * 2 * I, gu.n_cols = D;
        dn.n_rows = E * D, dn.n_cols = I;
        if (!gu.valid() || !dn.valid()) return;
        for (int64_t e = 0; e < E; ++e) {
            L.w1[size_t(e)] = gu.rows(e * 2 * I, I);
            L.w3[size_t(e)] = gu.rows(e * 2 * I + I, I);
            L.w2[size_t(e)] = dn.rows(e * D, D);
        }
    } else {
        for (int64_t e = 0; e < E; ++e) {
            const std::string re = fmt::format("{}experts.{}.", rf, e),
                              he = fmt::format("{}experts.{}.", hf, e);
            b.matrix(L.w1[size_t(e)], re + "w1.weight", he + "gate_proj.weight", I, D);
            b.matrix(L.w2[size_t(e)], re + "w2.weight", he + "down_proj.weight", D, I);
            b.matrix(L.w3[size_t(e)], re + "w3.weight", he + "up_proj.weight", I, D);
        }
    }
    const int64_t Is = I * cfg.n_shared_experts;
    b.matrix(L.sh_w1, rf + "shared_experts.w1.weight", hf + "shared_experts.gate_proj.weight", Is, D);
    b.matrix(L.sh_w2, rf + "shared_experts.w2.weight", hf + "shared_experts.down_proj.weight", D, Is);
    b.matrix(L.sh_w3, rf + "shared_experts.w3.weight", hf + "shared_experts.up_proj.weight", Is, D);
}

}  // namespace

Result<std::unique_ptr<Weights>> Weights::load(const std::string& dir, const Dsv4Config& cfg) {
    DSV4_TRY_ASSIGN(Checkpoint ck, Checkpoint::open(dir));
    return bind(std::move(ck), cfg);
}

Result<std::unique_ptr<Weights>> Weights::bind(Checkpoint ckpt, const Dsv4Config& cfg) {
    const std::string dir = ckpt.dir();
    if (!cfg.weight_block_size.empty() && cfg.weight_block_size != std::vector<int>{128, 128})
        return error(
            "{}: quantization_config.weight_block_size [{}, {}] is not supported (the V4 format uses "
            "[128, 128] FP8 blocks)",
            dir, cfg.weight_block_size[0], cfg.weight_block_size.size() > 1 ? cfg.weight_block_size[1] : 0);
    auto w = std::make_unique<Weights>();
    w->ckpt_ = std::move(ckpt);
    const Checkpoint& ck = w->ckpt_;
    if (ck.find("embed.weight"))
        w->scheme = NamingScheme::released;
    else if (ck.find("model.embed_tokens.weight"))
        w->scheme = NamingScheme::hf;
    else
        return error(
            "{}: neither 'embed.weight' (released naming) nor 'model.embed_tokens.weight' (HF naming) "
            "found; is this a DeepSeek V4 checkpoint?",
            dir);
    Binder b(ck, w->scheme);
    const int64_t V = cfg.vocab_size, D = cfg.hidden_size, hc = cfg.hc_mult;
    b.matrix(w->embed, "embed.weight", "model.embed_tokens.weight", V, D);
    b.matrix(w->head, "head.weight", "lm_head.weight", V, D);
    b.vec(w->norm, "norm.weight", "model.norm.weight", {D});
    b.matrix(w->hc_head_fn, "hc_head_fn", "model.hc_head.hc_fn", hc, hc * D);
    b.vec(w->hc_head_base, "hc_head_base", "model.hc_head.hc_base", {hc});
    b.vec(w->hc_head_scale, "hc_head_scale", "model.hc_head.hc_scale", {1});
    w->layers.resize(size_t(cfg.num_hidden_layers));
    for (int il = 0; il < cfg.num_hidden_layers; ++il) bind_layer(b, cfg, il, w->layers[size_t(il)]);
    if (w->embed.valid() && w->embed.dtype != DType::bf16 && w->embed.dtype != DType::f32 &&
        w->embed.dtype != DType::f16)
        return error("{}: the embedding must be f32/bf16/f16, found {}", dir, dtype_name(w->embed.dtype));
    DSV4_TRY(b.finish());
    return w;
}

}  // namespace dsv4
