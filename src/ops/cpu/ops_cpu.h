// The CPU reference of every op: plain loops, fp32 accumulation, at most a parallel-for over rows
// (style.md §3). These functions DEFINE the ops; every faster backend is tested against them in
// tests/ops. Pointers are host f32 unless said; row-major; shapes in the comments.
#pragma once

#include <cstdint>

#include "ops/sample_params.h"
#include "ops/weight.h"

namespace dsv4::cpu {

// y[n, w.n_rows] = x[n, w.n_cols] · Wᵀ (any WeightRef format, dequantized row by row).
void linear(const float* x, int64_t n, const WeightRef& w, float* y);

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) * w (w may be null: weightless). In place allowed.
// w is a WeightRef of n_cols = d (f32/bf16), or nullptr.
void rms_norm(const float* x, int64_t rows, int64_t d, const WeightRef* w, double eps, float* out);

// Interleaved RoPE on a slice of each row: pairs (x[off+2i], x[off+2i+1]), i < n_pairs, rotated by
// pos[r]·inv_freq[i] (fp32 angle, like HF). Rows of `stride` floats; `heads` consecutive vectors of
// `head_stride` per row share the row's position. inverse rotates by −angle (output de-rotation, spec §6.8).
void rope(float* x, int64_t rows, int64_t heads, int64_t head_stride, int64_t off, int64_t n_pairs,
          const int64_t* pos, const float* inv_freq, bool inverse);

// Hyper-connection pre-mix (spec §5.1, HF DeepseekV4HyperConnection.forward):
// X [n, hc, D]; fn [(2+hc)·hc, hc·D]; base [(2+hc)·hc]; scale [3] (f32 WeightRefs).
// Outputs y [n, D] = Σ_j pre_j X_j, post [n, hc], comb [n, hc, hc] (row j, column k).
void hc_pre(const float* X, int64_t n, int64_t hc, int64_t D, const WeightRef& fn, const WeightRef& base,
            const WeightRef& scale, int sinkhorn_iters, double hc_eps, double norm_eps, float* y, float* post,
            float* comb);
// X'_k = post_k·F + Σ_j comb[j,k]·X_j  (spec §5.2). Xout may not alias X.
void hc_post(const float* X, const float* F, const float* post, const float* comb, int64_t n, int64_t hc,
             int64_t D, float* Xout);
// Head collapse (spec §5.3): fn [hc, hc·D], base [hc], scale [1]; z [n, D].
void hc_head(const float* X, int64_t n, int64_t hc, int64_t D, const WeightRef& fn, const WeightRef& base,
             const WeightRef& scale, double hc_eps, double norm_eps, float* z);

// Sink attention over explicit key lists (spec §6.7). q [n, H, d]; kv pool [P, d] (K = V);
// idx [n, max_keys] int32 row i lists pool rows for query i, −1 = unused slot. sink [H] (f32 WeightRef).
// out [n, H, d]. A query with no keys gets 0.
void sink_attention(const float* q, int64_t n, int64_t H, int64_t d, const float* kv, const int32_t* idx,
                    int64_t max_keys, const WeightRef& sink, float scale, float* out);

// Softmax-gated pooling of one compressed entry (spec §6.5): for each channel i,
// C[i] = Σ_s softmax_s(z[s][i]) · a[s][i] over `slots` rows with row strides lda / ldz.
void compress_pool(const float* a, const float* z, int64_t slots, int64_t lda, int64_t ldz, int64_t d,
                   float* C);

// Lightning-indexer scores (spec §6.6): qi [n, Hi, di], w [n, Hi], keys [n_keys, di];
// score[t, s] = Σ_h w[t,h]·ReLU(qi[t,h]·keys[s]) for s < n_avail[t], else −inf. scores [n, n_keys].
void indexer_scores(const float* qi, const float* w, int64_t n, int64_t Hi, int64_t di, const float* keys,
                    int64_t n_keys, const int64_t* n_avail, float* scores);
// Top-k with dsv4's tie rule: score descending, ties to the LOWER index, −0 == +0; only the first
// n_valid entries of each row count. sel [n, k] gets indices, −1 where fewer than k are valid.
void topk_lower_index(const float* scores, int64_t n, int64_t n_cols, const int64_t* n_valid, int64_t k,
                      int32_t* sel);

// Router (spec §7.1): logits [n, E] -> sqrtsoftplus scores; selection by tid2eid[ids] (hash, int64 WeightRef
// [V, k]) or top-k of score + bias; weights normalised (÷(Σ+1e-20)) and × route_scale.
// ids [n] token ids (hash layers only); bias may be null. out_idx [n, k], out_w [n, k].
void moe_route(const float* logits, int64_t n, int64_t E, int64_t k, const int32_t* ids,
               const WeightRef* tid2eid, const WeightRef* bias, double route_scale, int32_t* out_idx,
               float* out_w);
// SwiGLU with clamp (spec §7.2): h = silu(min(g, limit)) · clamp(u, ±limit); gu [n, 2I] = [g | u]; h [n, I].
// limit <= 0 disables the clamp.
void swiglu_clamp(const float* g, const float* u, int64_t n, int64_t I, int64_t ldg, double limit, float* h);

// Embedding rows: out [n, D] = table[ids[i]] (f32/bf16 WeightRef [V, D]).
void embed(const int32_t* ids, int64_t n, const WeightRef& table, float* out);

// Token choice from one row of already biased/penalised logits (runtime sampler steps 4-8):
// int32_t sample_row(const float* x, int64_t n_vocab, const SampleParams& sp, int64_t position);
// is declared in ops/sample_params.h (included above), where the runtime, which may not include ops/cpu
// (tools/check_layering.py), finds it; defined in ops/cpu/sample.cpp.

}  // namespace dsv4::cpu
