// MoE sublayer (spec §7; HF DeepseekV4MoE): router (sqrtsoftplus; hash layers take experts from
// tid2eid, score layers top-k of score + bias), clamped SwiGLU experts, routed weights applied after
// the down projection (as HF), plus the shared expert. Tokens are grouped per expert so each expert's
// weights are converted once per call.
#include <algorithm>

#include "model/blocks.h"
#include "model/numerics.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4 {

namespace {
// y [n, D] = W2 · (silu(min(W1 x, lim)) · clamp(W3 x, ±lim) · row_w), row_w [n] optional: REF applies the
// routing weight before W2 (so it is inside the FP8 activation rounding), HF after (spec §7.3).
void expert_ffn(const ForwardCtx& ctx, const float* x, int64_t n, const WeightRef& w1, const WeightRef& w3,
                const WeightRef& w2, double limit, const float* row_w, float* y) {
    const int64_t I = w1.n_rows;
    std::vector<float> g = fvec(n * I), u = fvec(n * I), h = fvec(n * I);
    numerics_linear(ctx, x, n, w1, g.data());
    numerics_linear(ctx, x, n, w3, u.data());
    cpu::swiglu_clamp(g.data(), u.data(), n, I, I, limit, h.data());
    if (row_w)
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < I; ++j) h[i * I + j] *= row_w[i];
    numerics_linear(ctx, h.data(), n, w2, y);
}
}  // namespace

void moe_block(const ForwardCtx& ctx, int il, const float* x, float* out) {
    const auto& cfg = ctx.cfg;
    const LayerWeights& L = ctx.w.layers[il];
    const int64_t n = ctx.n, D = cfg.hidden_size, E = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
    std::vector<float> logits = fvec(n * E), wsel = fvec(n * k);
    std::vector<int32_t> esel(static_cast<size_t>(n * k));
    cpu::linear(x, n, L.gate, logits.data());
    const bool hash = cfg.is_hash_layer(il);
    cpu::moe_route(logits.data(), n, E, k, ctx.ids, hash ? &L.tid2eid : nullptr,
                   hash ? nullptr : &L.gate_bias, cfg.routed_scaling_factor, esel.data(), wsel.data());

    // shared expert first: out = shared(x)
    expert_ffn(ctx, x, n, L.sh_w1, L.sh_w3, L.sh_w2, cfg.swiglu_limit, nullptr, out);
    std::vector<float> xe, ye;
    std::vector<int64_t> tok;
    std::vector<float> tw;
    for (int64_t e = 0; e < E; ++e) {
        tok.clear();
        tw.clear();
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < k; ++j)
                if (esel[i * k + j] == e) tok.push_back(i), tw.push_back(wsel[i * k + j]);
        if (tok.empty()) continue;
        const int64_t ne = int64_t(tok.size());
        xe.resize(size_t(ne * D));
        ye.resize(size_t(ne * D));
        for (int64_t r = 0; r < ne; ++r) std::copy_n(x + tok[r] * D, D, xe.begin() + r * D);
        const bool weight_first = ctx.ref_numerics;
        expert_ffn(ctx, xe.data(), ne, L.w1[e], L.w3[e], L.w2[e], cfg.swiglu_limit,
                   weight_first ? tw.data() : nullptr, ye.data());
        for (int64_t r = 0; r < ne; ++r) {
            const float wr = weight_first ? 1.0f : tw[r];
            for (int64_t d = 0; d < D; ++d) out[tok[r] * D + d] += wr * ye[r * D + d];
        }
    }
}

}  // namespace dsv4
