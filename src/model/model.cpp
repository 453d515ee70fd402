// Model: load (config + weight table) and the CPU reference forward pass (spec §2):
// embed -> hc streams -> per layer {hc_pre, attn_norm, attention, hc_post, hc_pre, ffn_norm, MoE, hc_post}
// -> hc_head -> norm -> head. Tested against HF golden files in tests/model/test_golden.cpp.
#include "model/model.h"

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "model/blocks.h"
#include "model/forward_cuda.h"
#include "model/numerics.h"
#include "model/rope_table.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4 {

Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& dir, const LoadOptions& opts) {
    if (opts.backend != "cpu" && opts.backend != "cuda")
        return error("backend '{}' is not available for the model (supported: cpu, cuda)", opts.backend);
    DSV4_TRY_ASSIGN(Dsv4Config cfg, load_config(dir));
    DSV4_TRY_ASSIGN(Checkpoint ck, Checkpoint::open(dir));
    return load_from(cfg, std::move(ck), opts);
}

Result<std::unique_ptr<Model>> Model::load_from(const Dsv4Config& cfg, Checkpoint ckpt,
                                                const LoadOptions& opts) {
    if (opts.backend != "cpu" && opts.backend != "cuda")
        return error("backend '{}' is not available for the model (supported: cpu, cuda)", opts.backend);
    auto t0 = std::chrono::steady_clock::now();
    const std::string dir = ckpt.dir();
    std::unique_ptr<Model> m(new Model());
    m->cfg_ = cfg;
    DSV4_TRY_ASSIGN(m->weights_, Weights::bind(std::move(ckpt), m->cfg_));
    // Both backends default to the REF demo's numerics for FP8-quantized checkpoints (CUDA: quant_sm90.cu
    // roundings, FP8 tensor cores for ≥ 16 tokens), exact (HF parity) otherwise.
    m->numerics_ =
        opts.numerics.value_or(m->cfg_.quant_method == "fp8" ? Numerics::reference : Numerics::exact);
    if (m->numerics_ == Numerics::reference) DSV4_TRY(check_reference_numerics(m->cfg_));
    m->inv_main_ = rope_inv_freq(m->cfg_.rope_main, m->cfg_.qk_rope_head_dim);
    m->inv_compress_ = rope_inv_freq(m->cfg_.rope_compress, m->cfg_.qk_rope_head_dim);
    if (opts.backend == "cuda") {
        DSV4_TRY_ASSIGN(m->cuda_, CudaForward::create(m->cfg_, *m->weights_, m->inv_main_, m->inv_compress_,
                                                      m->numerics_ == Numerics::reference));
    }
    if (opts.verbose) {
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        log_info("loaded {} ({} layers, {:.1f} MB of weights in {} file(s), {} numerics) in {:.2f} s", dir,
                 m->cfg_.num_hidden_layers, double(m->weights_->checkpoint().total_bytes()) / 1e6,
                 m->weights_->checkpoint().n_files(), numerics_name(m->numerics_), s);
    }
    return m;
}

std::unique_ptr<SeqState> Model::new_state() const {
    auto st = std::make_unique<SeqState>();
    if (cuda_) {
        st->device.p = cuda_->new_state();
        return st;
    }
    for (int il = 0; il < cfg_.num_hidden_layers; ++il) st->layers.push_back(make_layer_state(cfg_, il));
    return st;
}

int64_t Model::n_past(const SeqState& st) {
    return st.n_past;
}

std::unique_ptr<SeqState> Model::clone_state(const SeqState& st) {
    return std::make_unique<SeqState>(st);
}

namespace {
Status check_ids(const Dsv4Config& cfg, const SeqState& st, std::span<const int32_t> ids) {
    const int64_t n = int64_t(ids.size()), V = cfg.vocab_size;
    if (n == 0) return error("forward: no tokens");
    for (int64_t i = 0; i < n; ++i)
        if (ids[i] < 0 || ids[i] >= V)
            return error("token id {} at index {} is outside the vocabulary [0, {})", ids[i], i, V);
    if (st.n_past + n > cfg.max_position_embeddings)
        return error("sequence of {} tokens exceeds max_position_embeddings {}", st.n_past + n,
                     cfg.max_position_embeddings);
    return Status::ok();
}
}  // namespace

Status Model::forward_batch(std::span<const BatchItem> items, std::vector<float>& logits) const {
    if (items.empty()) return error("forward_batch: no sequences");
    for (size_t i = 0; i < items.size(); ++i) {
        DSV4_TRY(check_ids(cfg_, *items[i].st, items[i].ids));
        for (size_t j = 0; j < i; ++j)
            if (items[i].st == items[j].st)
                return error("forward_batch: the same sequence appears twice in one batch");
    }
    if (cuda_) return cuda_->forward_batch(items, logits);
    logits.clear();
    std::vector<float> one;
    for (const BatchItem& it : items) {
        DSV4_TRY(forward(*it.st, it.ids, one, it.all_logits));
        logits.insert(logits.end(), one.begin(), one.end());
    }
    return Status::ok();
}

Status Model::forward(SeqState& st, std::span<const int32_t> ids, std::vector<float>& logits,
                      bool all_logits) const {
    const int64_t n = int64_t(ids.size()), D = cfg_.hidden_size, hc = cfg_.hc_mult, V = cfg_.vocab_size;
    DSV4_TRY(check_ids(cfg_, st, ids));
    if (cuda_) return cuda_->forward(st, ids, logits, all_logits);
    ForwardCtx ctx{cfg_, *weights_, st.n_past,     n,     ids.data(),
                   {},   inv_main_, inv_compress_, taps_, numerics_ == Numerics::reference};
    ctx.pos.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) ctx.pos[i] = st.n_past + i;

    // embedding, copied into every hyper-connection stream
    std::vector<float> h = fvec(n * D), X = fvec(n * hc * D), X2 = fvec(n * hc * D);
    cpu::embed(ids.data(), n, weights_->embed, h.data());
    if (taps_) taps_->put("hidden.embed", h.data(), n * D);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < hc; ++j) std::copy_n(h.begin() + i * D, D, X.begin() + (i * hc + j) * D);

    std::vector<float> y = fvec(n * D), post = fvec(n * hc), comb = fvec(n * hc * hc), sub = fvec(n * D);
    const int iters = cfg_.hc_sinkhorn_iters;
    for (int il = 0; il < cfg_.num_hidden_layers; ++il) {
        const LayerWeights& L = weights_->layers[il];
        cpu::hc_pre(X.data(), n, hc, D, L.hc_attn_fn, L.hc_attn_base, L.hc_attn_scale, iters, cfg_.hc_eps,
                    cfg_.rms_norm_eps, y.data(), post.data(), comb.data());
        cpu::rms_norm(y.data(), n, D, &L.attn_norm, cfg_.rms_norm_eps, y.data());
        attention_block(ctx, il, y.data(), st.layers[il], sub.data());
        if (taps_) taps_->put(fmt::format("attn.{}", il), sub.data(), n * D);
        cpu::hc_post(X.data(), sub.data(), post.data(), comb.data(), n, hc, D, X2.data());

        cpu::hc_pre(X2.data(), n, hc, D, L.hc_ffn_fn, L.hc_ffn_base, L.hc_ffn_scale, iters, cfg_.hc_eps,
                    cfg_.rms_norm_eps, y.data(), post.data(), comb.data());
        cpu::rms_norm(y.data(), n, D, &L.ffn_norm, cfg_.rms_norm_eps, y.data());
        moe_block(ctx, il, y.data(), sub.data());
        if (taps_) taps_->put(fmt::format("mlp.{}", il), sub.data(), n * D);
        cpu::hc_post(X2.data(), sub.data(), post.data(), comb.data(), n, hc, D, X.data());
        if (taps_) taps_->put(fmt::format("hidden.{}", il), X.data(), n * hc * D);
    }

    // head: collapse the streams, final norm, logits for all positions or the last one
    const int64_t first = all_logits ? 0 : n - 1, n_out = n - first;
    std::vector<float> z = fvec(n_out * D);
    cpu::hc_head(X.data() + first * hc * D, n_out, hc, D, weights_->hc_head_fn, weights_->hc_head_base,
                 weights_->hc_head_scale, cfg_.hc_eps, cfg_.rms_norm_eps, z.data());
    cpu::rms_norm(z.data(), n_out, D, &weights_->norm, cfg_.rms_norm_eps, z.data());
    logits.resize(size_t(n_out * V));
    cpu::linear(z.data(), n_out, weights_->head, logits.data());
    st.n_past += n;
    return Status::ok();
}

}  // namespace dsv4
