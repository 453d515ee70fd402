// Attention sublayer of one layer (spec §6; HF DeepseekV4Attention), order of steps as spec §6.10:
// low-rank q with q_norm and a weightless per-head norm, shared K=V head with kv_norm, partial
// interleaved RoPE (per-layer table), compressor / indexer updates, sink attention over
// window ∪ compressed keys, de-rotation of the output, grouped wo_a then wo_b.
#include <algorithm>
#include <cmath>

#include "model/blocks.h"
#include "model/numerics.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4 {

namespace {

// Lightning indexer (spec §6.6): top-k compressed entries per query, −1 padded. sel [n, index_topk].
std::vector<int32_t> indexer_select(const ForwardCtx& ctx, const LayerWeights& L, const float* x,
                                    const float* cq, LayerState& st) {
    const auto& cfg = ctx.cfg;
    const int64_t n = ctx.n, HI = cfg.index_n_heads, dI = cfg.index_head_dim, rd = cfg.qk_rope_head_dim;
    compressor_update(ctx, L.idx_cmp_wkv, L.idx_cmp_wgate, L.idx_cmp_ape, L.idx_cmp_norm, x, st.idx,
                      EntryRounding::index_fp4);
    std::vector<float> qi = fvec(n * HI * dI), wts = fvec(n * HI);
    numerics_linear(ctx, cq, n, L.idx_wq_b, qi.data());
    cpu::rope(qi.data(), n, HI, dI, dI - rd, rd / 2, ctx.pos.data(), ctx.inv_compress.data(), false);
    if (ctx.ref_numerics) round_index_fp4(qi.data(), n * HI, dI);
    cpu::linear(x, n, L.idx_weights_proj, wts.data());
    const float wscale = 1.0f / (std::sqrt(float(dI)) * std::sqrt(float(HI)));
    for (float& v : wts) v *= wscale;
    const int64_t n_keys = st.idx.n_entries();
    std::vector<int64_t> n_avail(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) n_avail[i] = std::min<int64_t>((ctx.pos[i] + 1) / 4, n_keys);
    std::vector<float> scores = fvec(n * std::max<int64_t>(n_keys, 1));
    cpu::indexer_scores(qi.data(), wts.data(), n, HI, dI, st.idx.entries.data(), n_keys, n_avail.data(),
                        scores.data());
    std::vector<int32_t> sel(static_cast<size_t>(n * cfg.index_topk));
    cpu::topk_lower_index(scores.data(), n, n_keys, n_avail.data(), cfg.index_topk, sel.data());
    return sel;
}

}  // namespace

void attention_block(const ForwardCtx& ctx, int il, const float* x, LayerState& st, float* out) {
    const auto& cfg = ctx.cfg;
    const LayerWeights& L = ctx.w.layers[il];
    const int64_t n = ctx.n, H = cfg.num_attention_heads, dh = cfg.head_dim;
    const int64_t rd = cfg.qk_rope_head_dim, nope = dh - rd, rq = cfg.q_lora_rank, W = cfg.sliding_window;
    const int64_t G = cfg.o_groups, ro = cfg.o_lora_rank, m = cfg.compress_ratio(il);
    const float* inv = m == 0 ? ctx.inv_main.data() : ctx.inv_compress.data();
    const double eps = cfg.rms_norm_eps;

    // 1. queries: c_q = RMSNorm(W_qa x), q = W_qb c_q, per-head weightless RMSNorm, RoPE on the last rd dims
    std::vector<float> cq = fvec(n * rq), q = fvec(n * H * dh), kv = fvec(n * dh);
    numerics_linear(ctx, x, n, L.wq_a, cq.data());
    cpu::rms_norm(cq.data(), n, rq, &L.q_norm, eps, cq.data());
    numerics_linear(ctx, cq.data(), n, L.wq_b, q.data());
    cpu::rms_norm(q.data(), n * H, dh, nullptr, eps, q.data());
    cpu::rope(q.data(), n, H, dh, nope, rd / 2, ctx.pos.data(), inv, false);
    // 2. the shared K=V head
    numerics_linear(ctx, x, n, L.wkv, kv.data());
    cpu::rms_norm(kv.data(), n, dh, &L.kv_norm, eps, kv.data());
    cpu::rope(kv.data(), n, 1, dh, nope, rd / 2, ctx.pos.data(), inv, false);
    if (ctx.ref_numerics) round_kv_fp8(kv.data(), n, dh, nope);

    // 3. compressed entries (and the indexer's choice among them)
    std::vector<int32_t> sel;
    if (m != 0)
        compressor_update(ctx, L.cmp_wkv, L.cmp_wgate, L.cmp_ape, L.cmp_norm, x, st.cmp,
                          EntryRounding::kv_fp8);
    if (m == 4) sel = indexer_select(ctx, L, x, cq.data(), st);

    // 4. key pool = [window history from the ring | this call's kv | compressed entries]
    const int64_t hist0 = std::max<int64_t>(0, ctx.p0 - (W - 1)), n_hist = ctx.p0 - hist0;
    const int64_t n_cmp = m ? st.cmp.n_entries() : 0;
    std::vector<float> pool = fvec((n_hist + n + n_cmp) * dh);
    for (int64_t p = hist0; p < ctx.p0; ++p)
        std::copy_n(st.window.begin() + (p % W) * dh, dh, pool.begin() + (p - hist0) * dh);
    std::copy_n(kv.begin(), n * dh, pool.begin() + n_hist * dh);
    if (n_cmp) std::copy_n(st.cmp.entries.begin(), n_cmp * dh, pool.begin() + (n_hist + n) * dh);
    const int64_t cmp_keys = m == 0 ? 0 : (m == 4 ? cfg.index_topk : n_cmp);
    const int64_t max_keys = W + cmp_keys;
    std::vector<int32_t> idx(static_cast<size_t>(n * max_keys), -1);
    for (int64_t i = 0; i < n; ++i) {
        const int64_t t = ctx.pos[i];
        int32_t* row = idx.data() + i * max_keys;
        int64_t k = 0;
        for (int64_t p = std::max<int64_t>(0, t - W + 1); p <= t; ++p) row[k++] = int32_t(p - hist0);
        const int64_t avail = m ? std::min<int64_t>((t + 1) / m, n_cmp) : 0;
        if (m == 4) {
            for (int64_t j = 0; j < cfg.index_topk; ++j) {
                int32_t s = sel[i * cfg.index_topk + j];
                if (s >= 0 && s < avail) row[k++] = int32_t(n_hist + n + s);
            }
        } else {
            for (int64_t s = 0; s < avail; ++s) row[k++] = int32_t(n_hist + n + s);
        }
    }

    // 5. sink attention, 6. de-rotation, grouped low-rank output
    std::vector<float> o = fvec(n * H * dh);
    cpu::sink_attention(q.data(), n, H, dh, pool.data(), idx.data(), max_keys, L.attn_sink,
                        1.0f / std::sqrt(float(dh)), o.data());
    cpu::rope(o.data(), n, H, dh, nope, rd / 2, ctx.pos.data(), inv, true);
    const int64_t gin = H * dh / G;
    std::vector<float> og = fvec(n * gin), ug = fvec(n * ro), u = fvec(n * G * ro);
    for (int64_t g = 0; g < G; ++g) {
        for (int64_t i = 0; i < n; ++i)
            std::copy_n(o.begin() + i * H * dh + g * gin, gin, og.begin() + i * gin);
        cpu::linear(og.data(), n, L.wo_a.rows(g * ro, ro), ug.data());  // REF: bf16, no FP8 activations
        for (int64_t i = 0; i < n; ++i) std::copy_n(ug.begin() + i * ro, ro, u.begin() + i * G * ro + g * ro);
    }
    numerics_linear(ctx, u.data(), n, L.wo_b, out);

    // window ring update
    for (int64_t i = 0; i < n; ++i)
        std::copy_n(kv.begin() + i * dh, dh, st.window.begin() + (ctx.pos[i] % W) * dh);
}

}  // namespace dsv4
