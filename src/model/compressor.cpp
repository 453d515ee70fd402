// KV compressor (spec §6.5; HF DeepseekV4Compressor with its cache semantics): every m tokens pool into
// one entry by a per-channel softmax over the window (fp32). CSA (m = 4) overlaps: entry w pools the A
// halves of window w−1 and the B halves of window w (8 slots; 4 when w = 0). The pending window and the
// previous window's A halves persist across calls, so any chunking gives the same entries.
#include <cmath>

#include "model/blocks.h"
#include "model/numerics.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4 {

namespace {
CompressorState make_compressor(int m, int d) {
    CompressorState s;
    s.m = m;
    s.c = m == 4 ? 2 : 1;
    s.d = d;
    s.pend_a.assign(size_t(m) * s.c * d, 0.0f);
    s.pend_z.assign(size_t(m) * s.c * d, 0.0f);
    if (s.c == 2) {
        s.prev_a.assign(size_t(m) * d, 0.0f);
        s.prev_z.assign(size_t(m) * d, 0.0f);
    }
    return s;
}
}  // namespace

LayerState make_layer_state(const Dsv4Config& cfg, int il) {
    LayerState ls;
    ls.window.assign(size_t(cfg.sliding_window) * cfg.head_dim, 0.0f);
    const int m = cfg.compress_ratio(il);
    if (m != 0) ls.cmp = make_compressor(m, cfg.head_dim);
    if (m == 4) ls.idx = make_compressor(4, cfg.index_head_dim);
    return ls;
}

void compressor_update(const ForwardCtx& ctx, const WeightRef& wkv, const WeightRef& wgate,
                       const WeightRef& ape, const WeightRef& norm, const float* x, CompressorState& st,
                       EntryRounding rounding) {
    const int64_t n = ctx.n, m = st.m, c = st.c, d = st.d, cd = c * d;
    const int64_t rd = ctx.cfg.qk_rope_head_dim;
    std::vector<float> a = fvec(n * cd), z = fvec(n * cd), ape_row = fvec(cd);
    cpu::linear(x, n, wkv, a.data());
    cpu::linear(x, n, wgate, z.data());
    std::vector<float> sa = fvec(2 * m * d), sz = fvec(2 * m * d), C = fvec(d);
    for (int64_t i = 0; i < n; ++i) {
        const int64_t t = ctx.pos[i], j = t % m;
        ape.row_to_f32(j, ape_row.data());
        for (int64_t k = 0; k < cd; ++k) {
            st.pend_a[j * cd + k] = a[i * cd + k];
            st.pend_z[j * cd + k] = z[i * cd + k] + ape_row[k];
        }
        if (j != m - 1) continue;
        const int64_t w = t / m;
        if (c == 1) {
            cpu::compress_pool(st.pend_a.data(), st.pend_z.data(), m, d, d, d, C.data());
        } else {
            // slots 0..m−1: previous window's A halves (absent for w = 0); m..2m−1: this window's B halves
            int64_t slots = 0;
            if (st.has_prev) {
                for (int64_t s = 0; s < m; ++s, ++slots)
                    for (int64_t k = 0; k < d; ++k) {
                        sa[slots * d + k] = st.prev_a[s * d + k];
                        sz[slots * d + k] = st.prev_z[s * d + k];
                    }
            }
            for (int64_t s = 0; s < m; ++s, ++slots)
                for (int64_t k = 0; k < d; ++k) {
                    sa[slots * d + k] = st.pend_a[s * cd + d + k];
                    sz[slots * d + k] = st.pend_z[s * cd + d + k];
                }
            cpu::compress_pool(sa.data(), sz.data(), slots, d, d, d, C.data());
            for (int64_t s = 0; s < m; ++s)
                for (int64_t k = 0; k < d; ++k) {
                    st.prev_a[s * d + k] = st.pend_a[s * cd + k];
                    st.prev_z[s * d + k] = st.pend_z[s * cd + k];
                }
            st.has_prev = true;
        }
        cpu::rms_norm(C.data(), 1, d, &norm, ctx.cfg.rms_norm_eps, C.data());
        const int64_t entry_pos = w * m;  // RoPE at the window's first token (spec §14.5)
        cpu::rope(C.data(), 1, 1, d, d - rd, rd / 2, &entry_pos, ctx.inv_compress.data(), false);
        if (ctx.ref_numerics && rounding == EntryRounding::kv_fp8) round_kv_fp8(C.data(), 1, d, d - rd);
        if (ctx.ref_numerics && rounding == EntryRounding::index_fp4) round_index_fp4(C.data(), 1, d);
        st.entries.insert(st.entries.end(), C.begin(), C.end());
    }
}

}  // namespace dsv4
