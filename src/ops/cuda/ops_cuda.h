// Launchers of the Hopper (sm_90a) CUDA backend: one per op of ops/cpu/ops_cpu.h with the same
// semantics, plus the few model-side helpers (compressor state, key lists, MoE combine). They take
// raw device pointers, dims and a stream, and are tested against the CPU reference in
// tests/ops/test_ops.cpp (model helpers: tests/model/test_cuda_model.cpp). Notes: docs/kernels/.
// They allocate nothing, with one exception: the GEMM paths of linear / linear_grouped keep, per (device,
// stream), a cuBLAS handle, a 32 MB cuBLAS workspace, a weight scratch (≤ 256 MB), an activation scratch
// (≤ 64 MB, grouped only) and a small device + pinned host chunk table, created by the first such call and
// grown (never shrunk, never freed) by a later call that needs more. Growing synchronizes the stream and is
// refused under CUDA graph capture: make one call of each large shape (a warm-up forward) before capturing.
// Weights are WeightRefs whose data/scale point to DEVICE memory, in the stored format (f32/bf16/f16,
// FP8 e4m3 + 128x128 UE8M0, packed FP4 + per-32 UE8M0). Small weights (norms, sinks, hc parameters,
// biases) are plain f32 device arrays.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/status.h"
#include "ops/sample_params.h"
#include "ops/weight.h"

namespace dsv4::cuda {

bool device_available();
// A tuning switch DSV4_...=0..max from the environment: unset gives fallback; anything else is warned about
// (naming the variable) and gives fallback too.
int env_choice(const char* name, int fallback, int max);

// A weight as kernels see it (trivially copyable; an array of these can live on the device).
struct DevWeight {
    DType dtype;
    const uint8_t* data;
    const uint8_t* scale;
    int64_t n_rows, n_cols, scale_cols;
    int block_rows, block_cols;
    int64_t scale_row0;  // row 0 sits at this row of its scale block (row views inside a block)
    static DevWeight from(const WeightRef& w) {
        return {w.dtype,      static_cast<const uint8_t*>(w.data),
                w.scale,      w.n_rows,
                w.n_cols,     w.scale_cols,
                w.block_rows, w.block_cols,
                w.scale_row0};
    }
};

#ifdef __CUDACC__
// The token rows one CTA of a dense-or-grouped linear kernel takes. Grouped (chunks non-null): chunk
// blockIdx.y = {expert, start, count} of the pairs sorted by expert (moe_group) → w = table[expert], rows
// perm[start ..]; false for a slot past *n_chunks (the CTA has nothing to do; block-uniform). Dense: T rows
// from blockIdx.y·T (n_valid ≤ T).
struct RowBlock {
    int n_valid = 0;
    int64_t t0 = 0;                 // dense: first token row
    const int32_t* prow = nullptr;  // grouped: the chunk's entries of perm
};
__device__ __forceinline__ bool row_block(int64_t n, int T, const DevWeight* table, const int32_t* perm,
                                          const int32_t* chunks, const int32_t* n_chunks, DevWeight& w,
                                          RowBlock& rb) {
    if (chunks) {
        const int c = int(blockIdx.y);
        if (c >= *n_chunks) return false;
        const int32_t* ch = chunks + 3 * c;
        w = table[ch[0]];
        rb.n_valid = ch[2];
        rb.prow = perm + ch[1];
    } else {
        rb.t0 = int64_t(blockIdx.y) * T;
        rb.n_valid = int(n - rb.t0 < T ? n - rb.t0 : T);
    }
    return true;
}

// Several weights over the same token rows in one launch (the multi-weight kernels of linear_multi):
// segment i owns CTAs cta0[i] .. cta0[i+1]−1 along x; extra: one int per segment for the kernel (the GEMV's
// threads per row group).
constexpr int kMaxLinearSegs = 8;
struct LinearSegs {
    DevWeight w[kMaxLinearSegs];
    const float* x[kMaxLinearSegs];
    float* y[kMaxLinearSegs];
    int64_t ldx[kMaxLinearSegs], ldy[kMaxLinearSegs];
    int extra[kMaxLinearSegs];
    unsigned cta0[kMaxLinearSegs + 1];
    int n;
};
struct LinearSeg1 {  // one segment's fields, and its first CTA
    DevWeight w;
    const float* x;
    float* y;
    int64_t ldx, ldy;
    int extra;
    unsigned c0;
};
// The segment that owns CTA blockIdx.x, by unrolled compares (a runtime index into the arrays of a
// __grid_constant__ parameter would go through local memory).
__device__ __forceinline__ LinearSeg1 pick_segment(const LinearSegs& t) {
    LinearSeg1 v{t.w[0], t.x[0], t.y[0], t.ldx[0], t.ldy[0], t.extra[0], 0u};
#pragma unroll
    for (int k = 1; k < kMaxLinearSegs; ++k)
        if (k < t.n && blockIdx.x >= t.cta0[k])
            v = LinearSeg1{t.w[k], t.x[k], t.y[k], t.ldx[k], t.ldy[k], t.extra[k], t.cta0[k]};
    return v;
}
#endif

// ---- linear_sm90.cu
// y[i·ldy + r] = Σ_k x[i·ldx + k]·W[r, k] for i < n, r < w.n_rows (fp32 accumulation). n < 16: GEMV
// kernel, weight dequantized in registers. n ≥ 16 (with ldx ≥ K, ldy ≥ N): W dequantized exactly into the
// f32 scratch (row slices of ≤ 256 MB; f32 weights are read in place), then cuBLAS SGEMM in true fp32
// (pedantic math: no TF32). Both agree with cpu::linear up to the summation order.
Status linear(const float* x, int64_t n, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
              cudaStream_t s);
// Several linears over the same n token rows at once (decode: the projections that read one input, the
// groups of wo_a): y_i = x_i·W_iᵀ exactly as linear(x_i, n, ldx_i, W_i, y_i, ldy_i) would compute it; with
// n < 16 the segments of one weight format share a launch (up to 8 per launch). No segment's y may overlap
// another segment's x or y (they run concurrently).
struct LinearSeg {
    const float* x;
    int64_t ldx;
    WeightRef w;
    float* y;
    int64_t ldy;
};
Status linear_multi(const LinearSeg* segs, int n_segs, int64_t n, cudaStream_t s);
// C[i·ldc + r] = Σ_j B[i·ldb + j]·A[r·lda + j] for r < m, i < n, j < k: cuBLAS SGEMM in true fp32 through
// the same per-stream handle as linear (used by the indexer's prefill path).
Status sgemm_f32(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t m, int64_t n, int64_t k,
                 float* C, int64_t ldc, cudaStream_t s);
// Routed experts, grouped: moe_group sorts the n_pairs (token, slot) pairs by expert (esel [n_pairs])
// into perm [n_pairs] and a chunk table chunks [moe_max_chunks, 3] = {expert, start, count} with
// *n_chunks used (scratch [E + 1] int32); stable (pair order within an expert), one CTA (parallel for
// E ≤ 512; a single thread only beyond). linear_grouped then computes y[p] = table[e]·x[p / x_div] for
// every pair p (all table entries of proto's dtype and shape), reading each expert's weight once per chunk.
// max_per_expert (0 = unknown): a bound on the pairs of one expert (e.g. the token count when every token
// picks distinct experts); it sizes the GEMV kernel's token pass and is never needed for correctness.
// n_pairs ≥ 128 (prefill; not under graph capture): the chunk table is read back to the host (one
// cudaStreamSynchronize); experts with ≥ 16 pairs gather their x rows into the activation scratch, run one
// SGEMM against their dequantized weight and scatter the rows back; the others keep the GEMV kernel.
// rows_per_chunk: the chunk size (8 for linear_grouped, fp8_gemm_group_rows() for fp8_gemm_grouped_q).
int64_t moe_max_chunks(int64_t n_pairs, int64_t E, int64_t rows_per_chunk = 8);
Status moe_group(const int32_t* esel, int64_t n_pairs, int64_t E, int32_t* perm, int32_t* chunks,
                 int32_t* n_chunks, int32_t* scratch, cudaStream_t s, int rows_per_chunk = 8);
Status linear_grouped(const float* x, int64_t n_pairs, int64_t ldx, int64_t x_div, const DevWeight* table,
                      const WeightRef& proto, const int32_t* perm, const int32_t* chunks,
                      const int32_t* n_chunks, int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s,
                      int64_t max_per_expert = 0);
// The gate/up pair of an FFN: h [n_pairs, I] (row stride I) = swiglu_clamp(x·W1ᵀ, x·W3ᵀ, limit) per pair,
// W1 / W3 from table1 / table3 (same shape and format). Batch 1 (max_per_expert == 1, FP4 / FP8 on the
// b1 kernel): one launch, the swiglu in its epilogue; else two linear_grouped into g, u [n_pairs, I] and
// swiglu_clamp (g, u: scratch of the caller, unused on the fused path).
Status linear_grouped_glu(const float* x, int64_t n_pairs, int64_t ldx, int64_t x_div,
                          const DevWeight* table1, const DevWeight* table3, const WeightRef& proto,
                          const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                          int64_t max_chunks, double limit, float* g, float* u, float* h, cudaStream_t s,
                          int64_t max_per_expert = 0);
// Dense: h [n, I] = swiglu_clamp(x·W1ᵀ, x·W3ᵀ, limit); one b1 launch for one row when both weights go to
// the b1 kernel, else linear_multi into g, u and swiglu_clamp.
Status linear_glu(const float* x, int64_t n, int64_t ldx, const WeightRef& w1, const WeightRef& w3,
                  double limit, float* g, float* u, float* h, cudaStream_t s);

// ---- norm_rope_sm90.cu
Status rms_norm(const float* x, int64_t rows, int64_t d, const float* w, double eps, float* out,
                cudaStream_t s);
Status rope(float* x, int64_t rows, int64_t heads, int64_t head_stride, int64_t off, int64_t n_pairs,
            const int64_t* pos, const float* inv_freq, bool inverse, cudaStream_t s);
// In place: rms_norm of each row of d (weight w or none), then rope on its pairs off + 2i, i < n_pairs, at
// position pos[row / heads] (rows = tokens·heads, one head of d per row) — what rms_norm followed by
// rope(x, rows / heads, heads, d, off, n_pairs, pos, inv_freq, false) computes, bit for bit, in one launch.
Status rms_norm_rope(float* x, int64_t rows, int64_t d, const float* w, double eps, int64_t heads,
                     int64_t off, int64_t n_pairs, const int64_t* pos, const float* inv_freq, cudaStream_t s);
Status embed(const int32_t* ids, int64_t n, const WeightRef& table, float* out, cudaStream_t s);
Status swiglu_clamp(const float* g, const float* u, int64_t n, int64_t I, int64_t ldg, double limit, float* h,
                    cudaStream_t s);
// x[i] *= a for i < count.
Status scale(float* x, int64_t count, float a, cudaStream_t s);

// ---- hc_sm90.cu (fn [(2+hc)·hc, hc·D], base [(2+hc)·hc], scale [3]; head: fn [hc, hc·D], base [hc], scale
// [1]). work: null = one CTA per token (phase A); else a device buffer of ≥ hc_work_floats(n, hc, D)
// floats (the same n, hc, D; one buffer serves hc_pre, hc_post_pre and hc_head) = the split paths, any n:
// partial dot products over slices on many CTAs, then a fixed-order reduction (deterministic). hc_pre and
// hc_post_pre with a workspace are ONE launch (the last CTA of each token tile finishes it) and use
// per-stream arrival counters created by the first such call on a stream (refused under graph capture:
// run one forward on the stream first). docs/kernels/hc.md.
// norm_w [D] (optional): y = RMSNorm_{norm_w}(y) with eps norm_eps (the model uses rms_norm_eps for both).
// defer_sinkhorn (workspace path only): comb gets the raw comb logits C = α2·μ + base instead of the
// Sinkhorn projection, which hc_sinkhorn(comb) then runs in place — e.g. on a side stream, off the
// critical path (the next hc_post_pre is the first reader of comb).
int64_t hc_work_floats(int64_t n, int64_t hc, int64_t D);
Status hc_pre(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
              const float* scale, int sinkhorn_iters, double hc_eps, double norm_eps, float* y, float* post,
              float* comb, cudaStream_t s, float* work = nullptr, const float* norm_w = nullptr,
              bool defer_sinkhorn = false);
// One site boundary: Xout = hc_post(X, F, post, comb), then (y, post_out, comb_out) = hc_pre(Xout) of the
// next site (fn, base, scale) and y = RMSNorm_{norm_w}(y) when norm_w is non-null. post_out/comb_out may
// alias post/comb; Xout must not alias X. work: as above (null: hc_post + phase-A hc_pre + rms_norm).
Status hc_post_pre(const float* X, const float* F, const float* post, const float* comb, int64_t n,
                   int64_t hc, int64_t D, float* Xout, const float* fn, const float* base, const float* scale,
                   int sinkhorn_iters, double hc_eps, double norm_eps, const float* norm_w, float* y,
                   float* post_out, float* comb_out, float* work, cudaStream_t s,
                   bool defer_sinkhorn = false);
// The Sinkhorn projection of [n, hc, hc] comb logits in place (after a defer_sinkhorn hc_pre/hc_post_pre).
Status hc_sinkhorn(float* comb, int64_t n, int64_t hc, int sinkhorn_iters, double hc_eps, cudaStream_t s);
Status hc_post(const float* X, const float* F, const float* post, const float* comb, int64_t n, int64_t hc,
               int64_t D, float* Xout, cudaStream_t s);
Status hc_head(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
               const float* scale, double hc_eps, double norm_eps, float* z, cudaStream_t s,
               float* work = nullptr);
// X [n, hc, D] = h [n, D] copied into every stream.
Status hc_expand(const float* h, int64_t n, int64_t hc, int64_t D, float* X, cudaStream_t s);

// ---- attention_sm90.cu
// Pool row r is kv[r] for r < split, else kv2[r − split] (split = INT64_MAX: one pool). sink [H] f32.
// work: null = one CTA per (query, head) (phase A); else a device buffer of ≥
// sink_attention_work_floats(n, H, d, max_keys) floats (may be 0: any non-null pointer) = the split-KV
// path for d % 4 == 0 and d ≤ 512 (other d keep phase A): a CTA per (query, 16 heads, key split) shares
// each key tile among its heads; with > 1 split a merge kernel adds the sink (deterministic).
// docs/kernels/attention.md.
// rope (optional): then out = rope(out, n, H, d, off, n_pairs, pos, inv_freq, inverse = true) — the
// attention output's de-rotation, in the merge kernel when the split path merges (off even), else a rope
// launch after.
struct OutRope {
    int64_t off = 0, n_pairs = 0;
    const int64_t* pos = nullptr;
    const float* inv_freq = nullptr;
};
int64_t sink_attention_work_floats(int64_t n, int64_t H, int64_t d, int64_t max_keys);
Status sink_attention(const float* q, int64_t n, int64_t H, int64_t d, const float* kv, const float* kv2,
                      int64_t split, const int32_t* idx, int64_t max_keys, const float* sink, float scale,
                      float* out, cudaStream_t s, float* work = nullptr, const OutRope* rope = nullptr);
Status compress_pool(const float* a, const float* z, int64_t slots, int64_t lda, int64_t ldz, int64_t d,
                     float* C, cudaStream_t s);
Status indexer_scores(const float* qi, const float* w, int64_t n, int64_t Hi, int64_t di, const float* keys,
                      int64_t n_keys, const int64_t* n_avail, float* scores, cudaStream_t s);

// ---- decode_batch_sm90.cu: decode steps of B sequences (one token each) in one launch per op. A device
// table of DecodeSeq (the state BEFORE this step; entries buffers already large enough for one more).
struct DecodeCompressor {
    float *pend_a, *pend_z, *prev_a, *prev_z, *entries;
    int64_t n_entries;
};
struct DecodeSeq {
    int64_t p;                  // position of this step's token
    float* ring;                // [W, head_dim]
    DecodeCompressor cmp, idx;  // main compressor (layers with m > 0), indexer compressor (m == 4)
};
// a, z [B, c·d]: the token's projections; which: 0 = cmp, 1 = idx. Emits (pool, RMSNorm with nrm, RoPE of
// the last rd dims at the window's first position) when the token completes a window, then commits.
Status compressor_decode(const float* a, const float* z, const float* ape, const DecodeSeq* seqs, int64_t B,
                         int which, int64_t m, int64_t c, int64_t d, const float* nrm, double eps, int64_t rd,
                         const float* inv_freq, cudaStream_t s);
// scores [B, max_keys] over each sequence's index keys (after this step's emit; −inf past them).
Status indexer_scores_decode(const float* qi, const float* w, int64_t B, int64_t Hi, int64_t di,
                             const DecodeSeq* seqs, int64_t max_keys, float* scores, cudaStream_t s);
// pool [B·max_keys, d], idx [B, max_keys]: each sequence's window keys (its ring), then its compressed
// entries (sel [B, topk] when non-null, else all available) — the key lists of build_attn_index.
// kv [B, d]: this step's keys — the newest window key is read from kv and written to its ring slot (the
// decode step's ring update); null: the ring already holds it.
Status gather_keys_decode(const DecodeSeq* seqs, int64_t B, int64_t W, int64_t m, const int32_t* sel,
                          int64_t topk, int64_t max_keys, int64_t d, float* pool, int32_t* idx,
                          cudaStream_t s, const float* kv = nullptr);

// ---- indexer_sm90.cu (prefill path of indexer_scores): the same scores, row stride ld ≥ n_keys (columns
// n_keys .. ld−1 are −inf), through cuBLAS SGEMM (true fp32) in blocks of queries. work: at least
// indexer_gemm_work_floats(n, Hi, n_keys) floats (capped at 256 MB; larger n runs in several blocks).
int64_t indexer_gemm_work_floats(int64_t n, int64_t Hi, int64_t n_keys);
Status indexer_scores_gemm(const float* qi, const float* w, int64_t n, int64_t Hi, int64_t di,
                           const float* keys, int64_t n_keys, const int64_t* n_avail, float* scores,
                           int64_t ld, float* work, cudaStream_t s);

// ---- topk_sm90.cu
Status topk_lower_index(const float* scores, int64_t n, int64_t n_cols, const int64_t* n_valid, int64_t k,
                        int32_t* sel, cudaStream_t s);
// tid2eid: i64 [V, k] device table (hash layers) or null; bias: f32 [E] or null. group (one token, k ≤ 32):
// the same kernel also writes what moe_group(out_idx, k, E, perm, chunks, n_chunks, ..., tok) would (pairs
// of one token, stable by expert, chunks of ≤ tok) — one launch less per decode step and layer.
struct MoeGroupOut {
    int32_t *perm = nullptr, *chunks = nullptr, *n_chunks = nullptr;
    int tok = 8;
};
Status moe_route(const float* logits, int64_t n, int64_t E, int64_t k, const int32_t* ids,
                 const int64_t* tid2eid, int64_t n_vocab, const float* bias, double route_scale,
                 int32_t* out_idx, float* out_w, cudaStream_t s, const MoeGroupOut* group = nullptr);

// ---- sample_sm90.cu
// The token of cpu::sample_row (ops/sample_params.h) for each row of logits [n_rows, n_vocab] (already biased
// and penalised), one CTA per row: sp [n_rows] and positions [n_rows] on the device, out [n_rows] int32. The
// same token as the CPU (same keyed noise, candidate order and double steps; docs/kernels/sample.md says
// where each side's libm enters). With top-p, a row whose candidates exceed kSampleMaxCandidates gets out =
// kSampleFallback: the caller samples it with cpu::sample_row. No workspace; 160 KB of shared memory.
constexpr int64_t kSampleMaxCandidates = 8192;
constexpr int32_t kSampleFallback = -1;
Status sample_rows(const float* logits, int64_t n_rows, int64_t n_vocab, const SampleParams* sp,
                   const int64_t* positions, int32_t* out, cudaStream_t s);

// ---- model_helpers_sm90.cu (positions of this call: p0 .. p0+n−1, all sizes known on the host)
// out[t, :] += Σ_j w[t, j]·y[t·k + j, :]   (routed expert outputs, y [n·k, D]; w null: all weights 1)
Status moe_combine(const float* y, const float* w, int64_t n, int64_t k, int64_t D, float* out,
                   cudaStream_t s);
// dst [n, w] = rows rows[0..n) of src [·, w] (rows: device i64).
Status gather_rows(const float* src, int64_t w, const int64_t* rows, int64_t n, float* dst, cudaStream_t s);
// Sliding-window ring [W, d]: writes kv rows of positions p0.. (the last min(n, W) only).
Status ring_write(const float* kv, int64_t n, int64_t d, int64_t p0, int64_t W, float* ring, cudaStream_t s);
// pool [n_hist + n, d] = ring rows of positions p0−n_hist .. p0−1, then kv rows.
Status attn_pool_build(const float* ring, int64_t W, int64_t p0, int64_t n_hist, const float* kv, int64_t n,
                       int64_t d, float* pool, cudaStream_t s);
// Key lists of model/attention.cpp step 4: idx [n, max_keys] (−1 padded); window keys, then compressed
// entries (all available ones, or the indexer's sel [n, topk] when sel is non-null).
Status build_attn_index(int64_t p0, int64_t n, int64_t W, int64_t n_hist, int64_t m, int64_t n_cmp,
                        const int32_t* sel, int64_t topk, int64_t max_keys, int32_t* idx, cudaStream_t s);

// Compressor (spec §6.5) over a whole call at once. a, z [n, c·d] projections of this call's tokens; ape
// [m, c·d] f32; pend_* [m, c·d], prev_* [m, d] the state at the start of the call. Emits entries of
// windows w_first .. w_first+n_emit−1 (pooled, before norm/RoPE) into C [n_emit, d] and their RoPE
// positions into pos_out [n_emit].
Status compressor_emit(const float* a, const float* z, const float* ape, const float* pend_a,
                       const float* pend_z, const float* prev_a, const float* prev_z, int64_t p0, int64_t n,
                       int64_t m, int64_t c, int64_t d, int64_t w_first, int64_t n_emit, float* C,
                       int64_t* pos_out, cudaStream_t s);
// Updates prev (A halves of the last window completed in this call) and then pend (this call's tokens
// of the last, possibly incomplete, window). Call after compressor_emit.
Status compressor_commit(const float* a, const float* z, const float* ape, float* pend_a, float* pend_z,
                         float* prev_a, float* prev_z, int64_t p0, int64_t n, int64_t m, int64_t c, int64_t d,
                         cudaStream_t s);

// ---- quant_sm90.cu: the REF roundings of Numerics::reference (ops/cpu/quant.h), bit-identical to the CPU.
// y[r·ldy + i] = x[r·ldx + i] rounded through FP8 e4m3 (cpu::fp8_roundtrip) / FP4 e2m1 (cpu::fp4_roundtrip)
// in blocks of `block` along i < n (the last block may be partial), r < rows; x == y (with ldx == ldy) is
// in place; columns n.. of y are not touched.
Status fp8_roundtrip_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n,
                          int64_t block, cudaStream_t s);
Status fp4_roundtrip_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n,
                          int64_t block, cudaStream_t s);
// In place on x [rows, d] (d a power of two ≤ 8192): cpu::hadamard_rows, then with fp4_after the FP4 round
// trip in blocks of 32 (model/numerics round_index_fp4).
Status hadamard_rows(float* x, int64_t rows, int64_t d, bool fp4_after, cudaStream_t s);
// Decode steps, after compressor_decode with the same table: the entry that compressor `which` (0 = cmp:
// FP8 on the first `nope` dims in blocks of 64; 1 = idx: Hadamard + FP4) emitted this step, in place.
Status round_decode_entries(const DecodeSeq* seqs, int64_t B, int which, int64_t m, int64_t d, int64_t nope,
                            cudaStream_t s);
// The FP8 operand of the block-scaled GEMM: e4m3 codes qv [rows_pad, K] (row-major) and 1x128 power-of-two
// scales scale [K/128, rows_pad] (rows contiguous), K % 128 == 0; code·scale is exactly
// fp8_roundtrip_rows(x, block 128). Rows rows.. rows_pad−1 get zero codes and scale 1.
Status fp8_quantize_act(const float* x, int64_t rows, int64_t ldx, int64_t K, int64_t rows_pad, uint8_t* qv,
                        float* scale, cudaStream_t s);
// x[r·ld + i] *= w[r] for r < rows, i < d (the REF routed-expert weight applied before W2).
Status scale_rows(float* x, int64_t rows, int64_t ld, int64_t d, const float* w, cudaStream_t s);
Status fill_f32(float* x, int64_t count, float v, cudaStream_t s);

// ---- gemv_mma_sm90.cu: the decode linear on the tensor cores — y = x·Wᵀ for few token rows (or routed
// experts: the chunk table of linear_grouped) at fp32 accuracy: weight·scale exact in bf16, x split into
// three bf16 pieces, bf16 mma.sync with fp32 accumulation; = cpu::linear up to the summation order. W: bf16,
// FP8 e4m3 (block scales), FP4 e2m1 (per-32 scales); linear_mma_ok says whether the call qualifies (K a
// multiple of 32 / 64 / 128 values, 16 B aligned weight and x rows). Arguments as linear_grouped's (chunks
// null: n dense token rows); tok_hint unused but kept for the dispatch signature. cuda::linear and
// linear_grouped route 2..15 token rows here (DSV4_LINEAR_MMA=0 off, 2 also for 1 row; docs/env.md).
bool linear_mma_ok(const WeightRef& w, const float* x, int64_t ldx);
Status linear_mma(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
                  const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                  int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s, int64_t tok_hint);

// ---- gemv_b1_sm90.cu: the batch-1 linear on the tensor cores — y = x·Wᵀ one token row at a time (dense
// rows, or the pairs of linear_grouped's chunk table) for packed FP4 e2m1 W with per-32 UE8M0 scales or
// FP8 e4m3 W with 128x128 UE8M0 scales: codes exact in fp16, x scaled by a power of two and split into two
// fp16 pieces, fp16 mma.sync with fp32 accumulation, block scales on fp32 partial sums; = cpu::linear up
// to the summation order. linear_b1_ok: K % 128 == 0, K ≤ 16384, 16 B aligned codes and x rows.
// cuda::linear (n == 1) and linear_grouped (max_per_expert == 1) route FP4 here (DSV4_FP4_B1=0 off) and
// FP8 with DSV4_FP8_B1=1 (docs/env.md).
bool linear_b1_ok(const WeightRef& w, const float* x, int64_t ldx);
Status linear_b1(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
                 const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                 int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s);
// Several FP8 weights over the same n token rows in one launch (linear_multi's one-row FP8 segments): up
// to 8 segments, each its own x / y, as linear_b1 per segment would compute them.
Status linear_b1_multi(const LinearSeg* segs, int n_segs, int64_t n, cudaStream_t s);
// The gate/up form: y = swiglu_clamp(x·W1ᵀ, x·W3ᵀ, limit) (W1, W3 of one shape and format; tables both or
// neither), one launch: half of a CTA's row tiles read W1, the other half the same rows of W3.
Status linear_b1_glu(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w1,
                     const DevWeight& w3, const DevWeight* table1, const DevWeight* table3,
                     const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks, int64_t max_chunks,
                     double limit, float* h, int64_t ldh, cudaStream_t s);

// ---- fp8_gemm_sm90.cu: y [n, N] (row stride ldy) = act_quant(x) [n, K] · W [N, K]ᵀ in fp32 on the FP8
// tensor cores (mma.sync e4m3, our kernel): W FP8 e4m3 + 128x128 UE8M0 or packed FP4 e2m1 + UE8M0 per 32
// (nibbles expanded to e4m3 in registers, exactly), x as e4m3 codes + 1x128 power-of-two scales from
// fp8_quantize_act; each 128-K block (FP8) or 32-K sub-block (FP4) of the tensor-core sum is promoted to
// fp32 with its scales. = cpu::linear of the FP8-rounded x up to the summation order.
// docs/kernels/fp8_gemm.md. W must pass fp8_gemm_weight_ok: K % 128 == 0, 16 B aligned codes; FP8 with
// 128x128 scales whose row view starts on a block (scale_row0 % 128 == 0), or FP4 with per-32 scales (4 B
// aligned). Any N, any n.
bool fp8_gemm_weight_ok(const WeightRef& w);
// Bytes of fp8_gemm's work buffer (codes + scales of n rows of K).
int64_t fp8_gemm_work_bytes(int64_t n, int64_t K);
// Quantizes x into work, then fp8_gemm_q.
Status fp8_gemm(const float* x, int64_t n, int64_t ldx, const WeightRef& w, float* y, int64_t ldy, void* work,
                cudaStream_t s);
// On codes xq [≥ n, K] and scales xs [K/128, lds] of fp8_quantize_act (rows_pad = lds).
Status fp8_gemm_q(const uint8_t* xq, const float* xs, int64_t lds, int64_t n, const WeightRef& w, float* y,
                  int64_t ldy, cudaStream_t s);
// Routed experts: y[p] = act_quant(x)[p / x_div] · table[e]ᵀ for every pair p of every chunk, the chunk
// table from moe_group with rows_per_chunk = fp8_gemm_group_rows() (chunks past *n_chunks exit at once, so
// max_chunks only bounds the launch; no host sync). xq/xs/lds as fp8_gemm_q, over the x rows.
// Pairs per chunk: 128 under DSV4_FP8_WGMMA=1, 2, 5 (the wgmma kernel's 128-token grouped tiles), else 64.
int64_t fp8_gemm_group_rows();
// The FP8 GEMM kernel choice (DSV4_FP8_WGMMA, docs/env.md) overridden for this process: 0-5, or -1 back
// to the environment's. For tests that run both kernels.
void fp8_gemm_set_kernel(int mode);
Status fp8_gemm_grouped_q(const uint8_t* xq, const float* xs, int64_t lds, int64_t x_div,
                          const DevWeight* table, const WeightRef& proto, const int32_t* perm,
                          const int32_t* chunks, const int32_t* n_chunks, int64_t max_chunks, float* y,
                          int64_t ldy, cudaStream_t s);

}  // namespace dsv4::cuda
