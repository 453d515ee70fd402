// Manifold-constrained hyper-connections (spec §5; HF DeepseekV4HyperConnection / HyperHead): pre-mix
// with Sinkhorn (optionally followed by the sublayer's RMSNorm), post (stream update), the fused post of
// one site + pre of the next, and the head collapse. With a workspace, pre and post+pre are one launch each
// (slices of the row on many CTAs, the last-arriving CTA of a token tile reduces in a fixed order and
// finishes); head keeps its two-kernel K-split; without one, the phase-A CTA-per-token kernels. Tested
// against compositions of cpu::hc_pre / hc_post / hc_head / rms_norm in tests/ops; note: docs/kernels/hc.md.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kMaxHc = 8;
constexpr int kMaxM = (2 + kMaxHc) * kMaxHc;  // mix rows of hc_pre
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// K-split plan (both kernels of the split path and hc_work_floats use it, so the sizes always agree).
constexpr int kSplitTok = 8;          // tokens per partial CTA: its fn slice is read once for all of them
constexpr int64_t kSplitCols = 128;   // columns per pass of the partial kernel (4 per lane)
constexpr int64_t kFinishCols = 256;  // columns of y per thread pass of the finish kernel
constexpr int64_t kTargetCtas = 264;  // 2 per SM on a 132-SM H100

int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

struct HcPlan {
    int64_t tiles;  // token tiles of kSplitTok
    int64_t S;      // slices of the hc·D axis
    int64_t chunk;  // columns per slice (a multiple of kSplitCols)
    int64_t Y;      // finish CTAs per token
    int64_t cols;   // columns of y per finish CTA (a multiple of kFinishCols)
};

// Enough CTAs for the whole GPU at decode (n = 1: 128 slices of 128 columns for hc·D = 16384), down to
// one slice per token tile when the tiles alone fill it (prefill: fn read once per 8 tokens).
HcPlan hc_plan(int64_t n, int64_t hc, int64_t D) {
    const int64_t len = std::max<int64_t>(hc * D, 1);
    HcPlan p{};
    p.tiles = ceil_div(n, kSplitTok);
    const int64_t s_want = std::clamp<int64_t>(ceil_div(kTargetCtas, p.tiles), 1, ceil_div(len, kSplitCols));
    p.chunk = ceil_div(ceil_div(len, s_want), kSplitCols) * kSplitCols;
    p.S = ceil_div(len, p.chunk);
    const int64_t Dp = std::max<int64_t>(D, 1);
    const int64_t y_want =
        std::clamp<int64_t>(ceil_div(kTargetCtas, std::max<int64_t>(n, 1)), 1, ceil_div(Dp, kFinishCols));
    p.cols = ceil_div(ceil_div(Dp, y_want), kFinishCols) * kFinishCols;
    p.Y = ceil_div(Dp, p.cols);
    return p;
}

__device__ __forceinline__ float sigmoid_dev(float v) {
    return 1.0f / (1.0f + expf(-v));
}

// Element e (< 32·Q) of a matrix spread over a warp (element lane + 32·q in register q of that lane), for
// every lane at once (e may differ per lane). All lanes must call it (full-mask shuffles).
template <int Q>
__device__ __forceinline__ float warp_elem(const float (&p)[Q], int e) {
    float v = 0.0f;
#pragma unroll
    for (int q = 0; q < Q; ++q) {
        const float t = __shfl_sync(0xffffffffu, p[q], e & 31);
        if ((e >> 5) == q) v = t;
    }
    return v;
}

// The Sinkhorn projection (spec §5.1 step 5) of one token's comb logits, by one whole warp: logit(e) gives
// C[e] (e = j·HC + k, row-major), comb [HC, HC] (global) gets P. Element e lives in lane e % 32 (register
// e / 32). Every element runs exactly cpu::hc_pre's operations in its order (row softmax, +eps, one column
// pass, iters−1 row/column pairs; sums gathered by shuffles and added in index order, true divisions), so
// the only difference from the CPU is expf/FMA rounding. The critical path per pass is ~HC independent
// shuffles, HC dependent adds and one division (~80 cycles: ~2 µs for 20 iterations) instead of HC²
// divisions issued by one thread. Each lane reads its logits before it writes its elements, so comb may
// hold the logits (hc_sinkhorn's in-place projection).
template <int HC, typename Logit>
__device__ __forceinline__ void sinkhorn_project(Logit logit, int iters, float eps, float* comb) {
    constexpr int E = HC * HC, Q = (E + 31) / 32;
    const int lane = threadIdx.x & 31;
    int row[Q], col[Q];
    float p[Q], t[Q];
#pragma unroll
    for (int q = 0; q < Q; ++q) {
        const int e = lane + 32 * q < E ? lane + 32 * q : 0;  // idle lanes shadow element 0
        row[q] = e / HC;
        col[q] = e % HC;
        p[q] = logit(e);
    }
#pragma unroll
    for (int q = 0; q < Q; ++q) {  // row softmax of the raw comb logits
        float mx = -INFINITY;
#pragma unroll
        for (int k = 0; k < HC; ++k) mx = fmaxf(mx, warp_elem(p, row[q] * HC + k));
        t[q] = expf(p[q] - mx);
    }
#pragma unroll
    for (int q = 0; q < Q; ++q) {
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < HC; ++k) sum += warp_elem(t, row[q] * HC + k);
        p[q] = t[q] / sum + eps;
    }
    for (int it = 0; it < (iters < 1 ? 1 : iters); ++it) {  // cpu: one column pass even for iters = 0
        if (it > 0) {
#pragma unroll
            for (int q = 0; q < Q; ++q) {
                float s = 0.0f;
#pragma unroll
                for (int k = 0; k < HC; ++k) s += warp_elem(p, row[q] * HC + k);
                t[q] = s;
            }
#pragma unroll
            for (int q = 0; q < Q; ++q) p[q] /= (t[q] + eps);
        }
#pragma unroll
        for (int q = 0; q < Q; ++q) {
            float s = 0.0f;
#pragma unroll
            for (int j = 0; j < HC; ++j) s += warp_elem(p, j * HC + col[q]);
            t[q] = s;
        }
#pragma unroll
        for (int q = 0; q < Q; ++q) p[q] /= (t[q] + eps);
    }
#pragma unroll
    for (int q = 0; q < Q; ++q)
        if (lane + 32 * q < E) comb[lane + 32 * q] = p[q];
}

// post [HC] and comb [HC, HC] (global) of one token from its scaled mix logits mu [M] (shared), by one whole
// warp. defer: comb gets the raw logits C = α2·μ + base (hc_sinkhorn projects them later, off the critical
// path); else the Sinkhorn runs here.
template <int HC>
__device__ __forceinline__ void mix_gates_warp(const float* mu, const float* base, const float* scale,
                                               int iters, float eps, bool defer, float* post, float* comb) {
    constexpr int E = HC * HC;
    const int lane = threadIdx.x & 31;
    const auto logit = [&](int e) { return scale[2] * mu[2 * HC + e] + base[2 * HC + e]; };
    if (defer) {
        for (int e = lane; e < E; e += 32) comb[e] = logit(e);
    } else {
        sinkhorn_project<HC>(logit, iters, eps, comb);
    }
    if (lane < HC) post[lane] = 2.0f * sigmoid_dev(scale[1] * mu[HC + lane] + base[HC + lane]);
}

// mu[m] = ρ·(fn[m]·X_t), ρ = 1/sqrt(mean(X_t²) + eps) over the hc·D values of token t.
__device__ void mix_logits(const float* Xt, int64_t len, const float* fn, int M, float norm_eps, float* mu,
                           float* red) {
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) ss += Xt[i] * Xt[i];
    ss = block_sum(ss, red);
    const float rho = 1.0f / sqrtf(ss / float(len) + norm_eps);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int m = warp; m < M; m += n_warps) {
        const float* f = fn + int64_t(m) * len;
        float acc = 0.0f;
        for (int64_t i = lane; i < len; i += 32) acc += f[i] * Xt[i];
        acc = warp_sum(acc);
        if (lane == 0) mu[m] = acc * rho;
    }
    __syncthreads();
}

__global__ void __launch_bounds__(kThreads)
    hc_pre_kernel(const float* X, int hc, int64_t D, const float* fn, const float* base, const float* scale,
                  int iters, float eps, float norm_eps, float* y, float* post, float* comb) {
    pdl_wait();
    __shared__ float red[32], mu[kMaxM], P[kMaxHc * kMaxHc], pre[kMaxHc];
    const int64_t t = blockIdx.x;
    const float* Xt = X + t * hc * D;
    const int M = (2 + hc) * hc;
    mix_logits(Xt, hc * D, fn, M, norm_eps, mu, red);
    if (threadIdx.x ==
        0) {  // follows cpu::hc_pre step by step (softmax rows, +eps, column pass, iters−1 pairs)
        // NOTE(hB): P stays in shared memory here; routing this kernel through hc_pre_weights (P in
        // registers, a switch over hc = 1..8) made ptxas spill 16 bytes, so phase A keeps its loop.
        for (int j = 0; j < hc; ++j) {
            pre[j] = sigmoid_dev(scale[0] * mu[j] + base[j]) + eps;
            post[t * hc + j] = 2.0f * sigmoid_dev(scale[1] * mu[hc + j] + base[hc + j]);
        }
        for (int j = 0; j < hc; ++j) {
            float mx = -INFINITY;
            for (int k = 0; k < hc; ++k) {
                const int m = 2 * hc + j * hc + k;
                P[j * hc + k] = scale[2] * mu[m] + base[m];
                mx = fmaxf(mx, P[j * hc + k]);
            }
            float sum = 0.0f;
            for (int k = 0; k < hc; ++k) sum += (P[j * hc + k] = expf(P[j * hc + k] - mx));
            for (int k = 0; k < hc; ++k) P[j * hc + k] = P[j * hc + k] / sum + eps;
        }
        for (int it = 0; it < (iters < 1 ? 1 : iters); ++it) {  // cpu: one column pass even for iters = 0
            if (it > 0)
                for (int j = 0; j < hc; ++j) {
                    float s = 0.0f;
                    for (int k = 0; k < hc; ++k) s += P[j * hc + k];
                    for (int k = 0; k < hc; ++k) P[j * hc + k] /= (s + eps);
                }
            for (int k = 0; k < hc; ++k) {
                float s = 0.0f;
                for (int j = 0; j < hc; ++j) s += P[j * hc + k];
                for (int j = 0; j < hc; ++j) P[j * hc + k] /= (s + eps);
            }
        }
        for (int e = 0; e < hc * hc; ++e) comb[t * hc * hc + e] = P[e];
    }
    __syncthreads();
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < hc; ++j) acc += pre[j] * Xt[j * D + d];
        y[t * D + d] = acc;
    }
}

// ---- K-split path. Kernel 1, grid (token tiles, S): CTA (tile, s) reads fn[:, slice s] once and forms,
// for each of its ≤ kSplitTok tokens, the partial dot products with all M rows (warp w owns rows
// w, w + 8, ...; R of them) and the partial Σx² of the slice. part [n, M + 1, S] (row M = Σx²): every
// entry is written by exactly one lane, summed in a fixed order (lane columns, then the warp butterfly).
template <int R>
__global__ void __launch_bounds__(kThreads)
    hc_mix_partial_kernel(const float* X, int64_t n, int64_t len, const float* fn, int M, int64_t chunk,
                          float* part) {
    pdl_wait();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t t0 = int64_t(blockIdx.x) * kSplitTok, s = blockIdx.y, S = gridDim.y;
    const int nt = int(n - t0 < kSplitTok ? n - t0 : kSplitTok);
    const int64_t c_begin = s * chunk, c_end = c_begin + chunk < len ? c_begin + chunk : len;
    float acc[R][kSplitTok], ss[kSplitTok];
#pragma unroll
    for (int u = 0; u < kSplitTok; ++u) {
        ss[u] = 0.0f;
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][u] = 0.0f;
    }
    for (int64_t c = c_begin; c < c_end; c += kSplitCols) {
        float x[kSplitTok][4];
#pragma unroll
        for (int u = 0; u < kSplitTok; ++u)
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const int64_t i = c + lane + 32 * v;
                x[u][v] = (u < nt && i < c_end) ? X[(t0 + u) * len + i] : 0.0f;
                ss[u] += x[u][v] * x[u][v];
            }
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const int m = warp + kWarps * r;
            if (m < M) {  // warp-uniform
                const float* f = fn + int64_t(m) * len;
                float fv[4];
#pragma unroll
                for (int v = 0; v < 4; ++v) {
                    const int64_t i = c + lane + 32 * v;
                    fv[v] = i < c_end ? f[i] : 0.0f;
                }
#pragma unroll
                for (int u = 0; u < kSplitTok; ++u)
#pragma unroll
                    for (int v = 0; v < 4; ++v) acc[r][u] += fv[v] * x[u][v];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int m = warp + kWarps * r;
        if (m < M) {
#pragma unroll
            for (int u = 0; u < kSplitTok; ++u) {
                const float v = warp_sum(acc[r][u]);
                if (lane == 0 && u < nt) part[((t0 + u) * (M + 1) + m) * S + s] = v;
            }
        }
    }
    if (warp == 0) {
#pragma unroll
        for (int u = 0; u < kSplitTok; ++u) {
            const float v = warp_sum(ss[u]);
            if (lane == 0 && u < nt) part[((t0 + u) * (M + 1) + M) * S + s] = v;
        }
    }
}

// Kernel 2 of hc_head, grid (n, Y): reduces token t's S partials (warp per row, lanes over slices, fixed
// order), then ρ, mu and the sigmoid gates on one thread, then its `cols` columns of z. Token t's X columns
// are loaded before the reduction so their latency overlaps it.
__global__ void __launch_bounds__(kThreads)
    hc_head_finish_kernel(const float* X, int hc, int64_t D, const float* part, int64_t S, const float* base,
                          const float* scale, float eps, float norm_eps, int64_t cols, float* y) {
    pdl_wait();
    __shared__ float mu[kMaxHc + 1], pre[kMaxHc];
    const int M = hc;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t t = blockIdx.x, d_begin = int64_t(blockIdx.y) * cols;
    const int64_t d_end = d_begin + cols < D ? d_begin + cols : D;
    const float* Xt = X + t * hc * D;
    const int64_t d0 = d_begin + threadIdx.x;
    float x0[kMaxHc];
#pragma unroll
    for (int j = 0; j < kMaxHc; ++j) x0[j] = (j < hc && d0 < d_end) ? Xt[j * D + d0] : 0.0f;
    for (int m = warp; m <= M; m += kWarps) {
        const float* p = part + (t * (M + 1) + m) * S;
        float a = 0.0f;
        for (int64_t s = lane; s < S; s += 32) a += p[s];
        a = warp_sum(a);
        if (lane == 0) mu[m] = a;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const float rho = 1.0f / sqrtf(mu[M] / float(hc * D) + norm_eps);
        for (int j = 0; j < hc; ++j) pre[j] = sigmoid_dev(scale[0] * (mu[j] * rho) + base[j]) + eps;
    }
    __syncthreads();
    for (int64_t d = d0; d < d_end; d += blockDim.x) {
        float acc = 0.0f;
#pragma unroll
        for (int j = 0; j < kMaxHc; ++j)
            if (j < hc) acc += pre[j] * (d == d0 ? x0[j] : Xt[j * D + d]);
        y[t * D + d] = acc;
    }
}

// The two kernels of hc_head's split path (M = hc mix rows).
Status hc_head_split_launch(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn,
                            const float* base, const float* scale, double hc_eps, double norm_eps, float* z,
                            float* work, cudaStream_t s) {
    const HcPlan p = hc_plan(n, hc, D);
    const dim3 g1(unsigned(p.tiles), unsigned(p.S));
    launch_pdl(hc_mix_partial_kernel<1>, g1, kThreads, 0, s, X, n, hc * D, fn, int(hc), p.chunk, work);
    DSV4_CUDA_LAUNCH_CHECK("hc_mix_partial_kernel");
    const dim3 g2(unsigned(n), unsigned(p.Y));
    launch_pdl(hc_head_finish_kernel, g2, kThreads, 0, s, X, int(hc), D, work, p.S, base, scale,
               float(hc_eps), float(norm_eps), p.cols, z);
    DSV4_CUDA_LAUNCH_CHECK("hc_head_finish_kernel");
    return Status::ok();
}

// ---- Fused path of hc_pre / hc_post_pre: one launch per site. Grid (token tiles of TOK, S slices of the
// D axis); CTA (b, s) owns columns [s·chunk, (s+1)·chunk) of D for ALL hc streams of its ≤ TOK tokens:
//  1. (hc_post_pre) X' = post·F + combᵀX for its columns (cpu::hc_post's order), written to Xout by warp
//     0; every warp keeps the values it needs in registers (no re-read);
//  2. partial Σx'² and the M dot products of its columns with fn (warp w: rows w, w+8, ...) → part
//     [n, M+1, S] (row M = Σx'²), each entry written by one lane after a fixed-order sum;
//  3. arrival: the CTA that increments its tile's counter last (atomicInc wraps it back to 0, so the
//     counters are left zero for the next launch) reduces the tile's partials in slice order — the result
//     does not depend on which CTA arrives last — then ρ, mu, pre (shared), and for each token u warp u
//     runs post/Sinkhorn (sinkhorn_warp) while the other warps form y = Σ_j pre_j·X'_j (read from L2);
//     with norm_w, y = RMSNorm_w(y) in a second pass over the row (Σy² reduced in a fixed order).
// Tiles: TOK = 8 tokens for hc ≤ 4 (each fn value read once per 8 tokens), 4 for hc > 4 (registers).
constexpr int64_t kMixCols = 32;       // D columns per pass (one per lane), all hc streams of each
constexpr int64_t kMaxArrivals = 264;  // tiles with S > 1 need ceil(kTargetCtas / tiles) ≥ 2: < 264 tiles

constexpr int mix_tok(int64_t hc) {
    return hc <= 4 ? 8 : 4;
}

struct MixPlan {
    int64_t tok, tiles, S, chunk;  // tokens per tile, tiles, slices of D, columns per slice
};

MixPlan mix_plan(int64_t n, int64_t hc, int64_t D) {
    MixPlan p{};
    p.tok = mix_tok(hc);
    p.tiles = std::max<int64_t>(ceil_div(n, p.tok), 1);
    const int64_t Dp = std::max<int64_t>(D, 1);
    const int64_t s_want = std::clamp<int64_t>(ceil_div(kTargetCtas, p.tiles), 1, ceil_div(Dp, kMixCols));
    p.chunk = ceil_div(ceil_div(Dp, s_want), kMixCols) * kMixCols;
    p.S = ceil_div(Dp, p.chunk);
    return p;
}

struct MixArgs {
    const float* X;     // [n, hc, D]: the streams (hc_post_pre: before the post-mix)
    const float* F;     // [n, D] sublayer output (post only)
    const float* post;  // [n, hc] (post only)
    const float* comb;  // [n, hc, hc] (post only)
    float* Xout;        // [n, hc, D] post-mixed streams (post only; never X)
    const float *fn, *base, *scale;
    const float* norm_w;  // [D] or null (y not normalised)
    float *y, *post_out, *comb_out;
    float* part;         // [n, M+1, S]
    unsigned* arrivals;  // [tiles] when S > 1: zero on entry, left zero (word kMaxArrivals − 2: grid_sync)
    int64_t n, D, chunk;
    int iters;
    float eps, norm_eps;
    bool defer;  // comb_out gets the comb logits; hc_sinkhorn projects them (mix_gates_warp)
};

// y columns of one token, d = d0, d0 + stride, ...: y[d] = Σ_j pre_j·x[j·D + d] (cpu order), returns the
// thread's Σy² in d order. float4 when the caller checked 16 B alignment and D % 4 == 0.
template <int HC, bool kVec>
__device__ __forceinline__ float mix_y(const float* x, int64_t D, const float* pre_s, int64_t d0,
                                       int64_t stride, float* y) {
    float pre[HC];
#pragma unroll
    for (int j = 0; j < HC; ++j) pre[j] = pre_s[j];
    float ssq = 0.0f;
    if (kVec) {
#pragma unroll(HC <= 4 ? 4 : 2)
        for (int64_t d = 4 * d0; d < D; d += 4 * stride) {
            float4 xv[HC];
#pragma unroll
            for (int j = 0; j < HC; ++j) xv[j] = __ldcg(reinterpret_cast<const float4*>(x + j * D + d));
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
            for (int j = 0; j < HC; ++j) {
                v.x += pre[j] * xv[j].x;
                v.y += pre[j] * xv[j].y;
                v.z += pre[j] * xv[j].z;
                v.w += pre[j] * xv[j].w;
            }
            *reinterpret_cast<float4*>(y + d) = v;
            ssq += v.x * v.x;
            ssq += v.y * v.y;
            ssq += v.z * v.z;
            ssq += v.w * v.w;
        }
    } else {
#pragma unroll 4
        for (int64_t d = d0; d < D; d += stride) {
            float v = 0.0f;
#pragma unroll
            for (int j = 0; j < HC; ++j) v += pre[j] * __ldcg(x + j * D + d);
            y[d] = v;
            ssq += v * v;
        }
    }
    return ssq;
}

// Grid barrier of the cooperative fused path (decode: one token tile, every CTA resident — the launch is
// cooperative), on one word of the stream's arrival counters that only grows: each launch adds exactly
// kBarStep to it (CTA 0 adds kBarStep − (S − 1), the others 1), so at every launch boundary it is a multiple
// of kBarStep, and a CTA that got `old` back from its add waits until the word reaches the next multiple
// (wrap-safe: 2^32 is a multiple of kBarStep). One atomic round trip per CTA, and the last arrival's add
// releases everyone (no second atomic). Thread 0 of each CTA, after a __syncthreads(): fence (release of
// the CTA's writes, as in cooperative groups' grid sync), add, spin with ld.acquire.gpu, fence; a
// __syncthreads() after it lets the CTA go on.
constexpr unsigned kBarStep = 1024;  // > any cooperative S (≤ resident CTAs, and ≤ 264 by mix_plan)
__device__ __forceinline__ unsigned ld_acquire_gpu(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void grid_sync(unsigned* bar, unsigned S, bool first) {
    __threadfence();
    const unsigned old = atomicAdd(bar, first ? kBarStep - (S - 1) : 1u);
    const unsigned target = old - old % kBarStep + kBarStep;
    while (int(ld_acquire_gpu(bar) - target) < 0) {
    }
    __threadfence();
}

// Rows of the partials per token: M dot products, Σx², and on the cooperative path the Gram matrix of the
// token's hc post-mixed streams (upper triangle, row-major: G_jk = Σ_d x'_j[d]·x'_k[d], j ≤ k).
constexpr int gram_rows(int hc) {
    return hc * (hc + 1) / 2;
}
template <int HC, bool kCoop>
constexpr int part_rows() {
    return (2 + HC) * HC + 1 + (kCoop ? gram_rows(HC) : 0);
}

// 1/sqrt(Σy²/D + eps) of y = Σ_j pre_j·x'_j from the Gram rows g (gram_rows(HC) values, upper triangle,
// row-major): Σy² = Σ_jk pre_j·pre_k·G_jk — what a cooperative CTA knows of the whole row after one barrier.
template <int HC>
__device__ __forceinline__ float gram_rms_inv(const float* pre, const float* g, int64_t D, float eps) {
    float q = 0.0f;
    int gi = 0;
#pragma unroll
    for (int j = 0; j < HC; ++j)
#pragma unroll
        for (int k = j; k < HC; ++k, ++gi) q += (j == k ? 1.0f : 2.0f) * (pre[j] * pre[k]) * g[gi];
    return 1.0f / sqrtf(fmaxf(q, 0.0f) / float(D) + eps);
}

// The cooperative path after the grid barrier (every CTA has reduced the partials into s_mu / s_pre):
// warp 0 forms y = Σ_j pre_j·x'_j for the CTA's 32 columns from the x' it still holds in registers, and with
// norm_w RMSNorm_w(y) with Σy² = Σ_jk pre_j·pre_k·G_jk from the reduced Gram rows — every CTA has the whole
// row's Σy² without a second barrier. CTA 0's warps < nt write post and the Sinkhorn (or, deferred, the comb
// logits).
template <int HC, int TOK>
__device__ __forceinline__ void coop_finish(const MixArgs& a, const float (&x)[TOK][HC], const float* s_pre,
                                            const float* s_mu, int mu_stride, int nt) {
    constexpr int M = (2 + HC) * HC;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t D = a.D, s = blockIdx.y, d = s * a.chunk + lane;
    const bool ok = d < D;
    if (warp == 0) {
#pragma unroll
        for (int u = 0; u < TOK; ++u) {
            if (u >= nt) continue;
            const float* pre = s_pre + u * HC;
            float v = 0.0f;
#pragma unroll
            for (int j = 0; j < HC; ++j) v += pre[j] * x[u][j];
            if (a.norm_w == nullptr) {
                if (ok) a.y[u * D + d] = v;
                continue;
            }
            const float inv = gram_rms_inv<HC>(pre, s_mu + u * mu_stride + M + 1, D, a.norm_eps);
            if (ok) a.y[u * D + d] = v * inv * a.norm_w[d];
        }
    }
    if (s == 0 && warp < nt)
        mix_gates_warp<HC>(s_mu + warp * mu_stride, a.base, a.scale, a.iters, a.eps, a.defer,
                           a.post_out + warp * HC, a.comb_out + warp * HC * HC);
}

// NOTE: (kThreads, 1): with the plain bound ptxas capped hc 2/3 at 64–80 registers and spilled 16–24 B;
// now 64–168 registers, no spills (hc 4 post: 168, one CTA per SM).
template <int HC, bool kPost, bool kCoop>
__global__ void __launch_bounds__(kThreads, 1) hc_mix_fused_kernel(MixArgs a) {
    constexpr int M = (2 + HC) * HC, TOK = mix_tok(HC), R = (M + kWarps - 1) / kWarps;
    constexpr int RW = part_rows<HC, kCoop>();  // partial rows per token
    __shared__ float s_post[TOK][HC], s_comb[TOK][HC * HC], s_mu[TOK][RW], s_pre[TOK][HC];
    __shared__ float s_red[TOK][kWarps], s_inv[TOK];
    __shared__ unsigned s_last;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t D = a.D, len = HC * D, S = gridDim.y, s = blockIdx.y;
    const int64_t d_begin = s * a.chunk, d_end = d_begin + a.chunk < D ? d_begin + a.chunk : D;
    // kCoop (one pass of 32 columns): the fn values of the pass before the wait — fn is a weight, no kernel
    // writes it (launch.cuh's exception), so its DRAM latency overlaps the previous kernel's tail
    float fpre[kCoop ? R : 1][HC];
    if (kCoop)
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const int m = warp + kWarps * r;
            const int64_t d = d_begin + lane;
#pragma unroll
            for (int k = 0; k < HC; ++k)
                fpre[r][k] = m < M && d < d_end ? __ldg(a.fn + int64_t(m) * len + k * D + d) : 0.0f;
        }
    pdl_wait();
    const int64_t t0 = int64_t(blockIdx.x) * TOK;
    const int nt = int(a.n - t0 < TOK ? a.n - t0 : TOK);
    if (kPost) {
        for (int i = threadIdx.x; i < nt * HC; i += kThreads) (&s_post[0][0])[i] = a.post[t0 * HC + i];
        for (int i = threadIdx.x; i < nt * HC * HC; i += kThreads)
            (&s_comb[0][0])[i] = a.comb[t0 * HC * HC + i];
        __syncthreads();
    }
    // ---- 1 + 2: post-mix and partial dot products of this CTA's columns
    float acc[R][TOK], ss[TOK];
#pragma unroll
    for (int u = 0; u < TOK; ++u) {
        ss[u] = 0.0f;
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][u] = 0.0f;
    }
    float x[TOK][HC];  // kCoop (one pass: chunk == kMixCols): kept for y after the grid barrier
    for (int64_t c = d_begin; c < d_end; c += kMixCols) {
        const int64_t d = c + lane;
        const bool ok = d < d_end;
#pragma unroll
        for (int u = 0; u < TOK; ++u) {
            const bool in = ok && u < nt;
            const float* Xu = a.X + (t0 + u) * len + d;
            if (kPost) {
                float xin[HC];
#pragma unroll
                for (int j = 0; j < HC; ++j) xin[j] = in ? Xu[j * D] : 0.0f;
                const float f = in ? a.F[(t0 + u) * D + d] : 0.0f;
#pragma unroll
                for (int k = 0; k < HC; ++k) {
                    float v = s_post[u][k] * f;
#pragma unroll
                    for (int j = 0; j < HC; ++j) v += s_comb[u][j * HC + k] * xin[j];
                    x[u][k] = in ? v : 0.0f;  // s_post/s_comb of u ≥ nt are not loaded
                }
            } else {
#pragma unroll
                for (int k = 0; k < HC; ++k) x[u][k] = in ? Xu[k * D] : 0.0f;
            }
#pragma unroll
            for (int k = 0; k < HC; ++k) ss[u] += x[u][k] * x[u][k];
        }
        if (kPost && warp == 0 && ok) {
#pragma unroll
            for (int u = 0; u < TOK; ++u)
                if (u < nt) {
#pragma unroll
                    for (int k = 0; k < HC; ++k) a.Xout[(t0 + u) * len + k * D + d] = x[u][k];
                }
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const int m = warp + kWarps * r;
            if (m < M) {  // warp-uniform
                const float* f = a.fn + int64_t(m) * len + d;
                float fv[HC];
#pragma unroll
                for (int k = 0; k < HC; ++k) fv[k] = kCoop ? fpre[kCoop ? r : 0][k] : ok ? f[k * D] : 0.0f;
#pragma unroll
                for (int u = 0; u < TOK; ++u)
#pragma unroll
                    for (int k = 0; k < HC; ++k) acc[r][u] += fv[k] * x[u][k];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int m = warp + kWarps * r;
        if (m < M) {
#pragma unroll
            for (int u = 0; u < TOK; ++u) {
                if (u >= nt) continue;  // warp-uniform: no butterflies for absent tokens (decode: 1 of 8)
                const float v = warp_sum(acc[r][u]);
                if (lane == 0) a.part[((t0 + u) * RW + m) * S + s] = v;
            }
        }
    }
    if (warp == 0) {
#pragma unroll
        for (int u = 0; u < TOK; ++u) {
            if (u >= nt) continue;
            const float v = warp_sum(ss[u]);
            if (lane == 0) a.part[((t0 + u) * RW + M) * S + s] = v;
        }
    }
    if (kCoop) {  // the slice's Gram matrix per token: pair g on warp g % kWarps
        int g = 0;
#pragma unroll
        for (int j = 0; j < HC; ++j)
#pragma unroll
            for (int k = j; k < HC; ++k, ++g) {
                if (g % kWarps != warp) continue;
#pragma unroll
                for (int u = 0; u < TOK; ++u) {
                    if (u >= nt) continue;
                    const float v = warp_sum(x[u][j] * x[u][k]);
                    if (lane == 0) a.part[((t0 + u) * RW + M + 1 + g) * S + s] = v;
                }
            }
    }
    // ---- 3: the last CTA of the tile finishes it; kCoop: every CTA goes on after a grid barrier. Fences
    // as cooperative groups' grid sync: the CTA barrier, then thread 0 alone fences (release) before its
    // atomic and again (acquire) before the barrier that lets the CTA read the others' partials and X'
    // through L2 (__ldcg). (Every thread fencing was 13 % of the partial pass's stall samples.)
    __syncthreads();
    unsigned* bar = kCoop ? a.arrivals + (kMaxArrivals - 2) : nullptr;
    if (kCoop) {
        if (threadIdx.x == 0) grid_sync(bar, unsigned(S), s == 0);
        __syncthreads();
    } else if (S > 1) {
        if (threadIdx.x == 0) {
            __threadfence();
            s_last = atomicInc(a.arrivals + blockIdx.x, unsigned(S - 1)) == unsigned(S - 1) ? 1u : 0u;
            if (s_last) __threadfence();
        }
        __syncthreads();
        if (s_last == 0u) return;
    }
    // reduce: warp per (token, row), lanes over slices in order, kFly rows per warp in flight (decode, one
    // token: every row of the token in one round trip)
    // kCoop: only CTA 0 needs every row (post and comb); the others reduce the rows of pre, Σx² and the
    // Gram matrix (row r of the shortened list is r for r < HC, else M + r − HC)
    constexpr int kFly = 8;
    const int nr = kCoop && s != 0 ? HC + 1 + gram_rows(HC) : RW;
    const auto row_of = [&](int r) { return kCoop && s != 0 && r >= HC ? M + r - HC : r; };
    const int nq = nt * nr;
    for (int q0 = warp; q0 < nq; q0 += kFly * kWarps) {
        float v[kFly];
        int64_t off[kFly];  // rows past nq re-read row q0 (valid), their sums are dropped
#pragma unroll
        for (int i = 0; i < kFly; ++i) {
            const int q = q0 + i * kWarps < nq ? q0 + i * kWarps : q0;
            off[i] = ((t0 + q / nr) * RW + row_of(q % nr)) * S;
            v[i] = 0.0f;
        }
#pragma unroll 4
        for (int64_t j = lane; j < S; j += 32)
#pragma unroll
            for (int i = 0; i < kFly; ++i) v[i] += __ldcg(a.part + off[i] + j);
#pragma unroll
        for (int i = 0; i < kFly; ++i) {
            const int q = q0 + i * kWarps;
            const float r = warp_sum(v[i]);
            if (lane == 0 && q < nq) s_mu[q / nr][row_of(q % nr)] = r;
        }
    }
    __syncthreads();
    const int mm = kCoop && s != 0 ? HC : M;                 // mix rows this CTA reduced
    for (int q = threadIdx.x; q < nt * mm; q += kThreads) {  // mu = ρ·dot, pre (cpu::hc_pre's formulas)
        const int u = q / mm, m = q % mm;
        const float rho = 1.0f / sqrtf(s_mu[u][M] / float(len) + a.norm_eps);
        const float v = s_mu[u][m] * rho;
        s_mu[u][m] = v;
        if (m < HC) s_pre[u][m] = sigmoid_dev(a.scale[0] * v + a.base[m]) + a.eps;
    }
    __syncthreads();
    if constexpr (kCoop) {
        coop_finish<HC, TOK>(a, x, &s_pre[0][0], &s_mu[0][0], RW, nt);
        return;
    } else {  // the tile's last CTA finishes it
        if (warp < nt)
            mix_gates_warp<HC>(&s_mu[warp][0], a.base, a.scale, a.iters, a.eps, a.defer,
                               a.post_out + (t0 + warp) * HC, a.comb_out + (t0 + warp) * HC * HC);
        // y: for 1–2 tokens (decode) warps nt.. form it while warps < nt run the Sinkhorn; for more tokens
        // all warps do, after the Sinkhorn (a few warps alone would take longer than the Sinkhorn)
        const int yw0 = nt <= 2 ? nt : 0;
        const int64_t ty = threadIdx.x - 32 * yw0, ny = kThreads - 32 * yw0;
        const float* xs = kPost ? a.Xout : a.X;
        const bool vec = D % 4 == 0 && (reinterpret_cast<uintptr_t>(xs) & 15) == 0 &&
                         (reinterpret_cast<uintptr_t>(a.y) & 15) == 0 &&
                         (a.norm_w == nullptr || (reinterpret_cast<uintptr_t>(a.norm_w) & 15) == 0);
        float ssq[TOK];
#pragma unroll
        for (int u = 0; u < TOK; ++u) {
            ssq[u] = 0.0f;
            if (warp >= yw0 && u < nt) {
                const float* xu = xs + (t0 + u) * len;
                float* yu = a.y + (t0 + u) * D;
                ssq[u] = vec ? mix_y<HC, true>(xu, D, s_pre[u], ty, ny, yu)
                             : mix_y<HC, false>(xu, D, s_pre[u], ty, ny, yu);
            }
        }
        // RMSNorm_w of y (cpu::rms_norm: inv = 1/sqrt(Σy²/D + eps), y·inv·w), Σy² over threads in order
        if (a.norm_w == nullptr) return;
#pragma unroll
        for (int u = 0; u < TOK; ++u) {
            const float v = warp_sum(ssq[u]);
            if (lane == 0) s_red[u][warp] = v;
        }
        __syncthreads();
        if (threadIdx.x < nt) {
            float v = 0.0f;
#pragma unroll
            for (int w = 0; w < kWarps; ++w) v += s_red[threadIdx.x][w];
            s_inv[threadIdx.x] = 1.0f / sqrtf(v / float(D) + a.norm_eps);
        }
        __syncthreads();
        if (warp < yw0) return;
#pragma unroll
        for (int u = 0; u < TOK; ++u) {
            if (u >= nt) continue;
            const float inv = s_inv[u];
            float* yu = a.y + (t0 + u) * D;
            if (vec) {
                for (int64_t d = 4 * ty; d < D; d += 4 * ny) {  // the thread's own y values (written above)
                    float4 v = *reinterpret_cast<const float4*>(yu + d);
                    const float4 w = *reinterpret_cast<const float4*>(a.norm_w + d);
                    v.x = v.x * inv * w.x;
                    v.y = v.y * inv * w.y;
                    v.z = v.z * inv * w.z;
                    v.w = v.w * inv * w.w;
                    *reinterpret_cast<float4*>(yu + d) = v;
                }
            } else {
                for (int64_t d = ty; d < D; d += ny) yu[d] = yu[d] * inv * a.norm_w[d];
            }
        }
    }
}

// One token (batch-1 decode), cooperative: hc_mix_fused_kernel<HC, kPost, true>'s work for n = 1 without its
// token-tile generality. That kernel runs ~1900 instructions per warp at ~16 cycles each (ncu: latency-bound
// on issue, 40 % of it waiting on instruction fetch; 128-210 KB of code per instantiation), most of them the
// predicated work of the 7 absent tokens of its 8-token tile, 64-bit index arithmetic and the general
// reduction. Here, with 32-bit indices (hc·D·M < 2^31 is checked by the caller): CTA s owns columns
// [32s, 32s + 32) (lane = column); warp w the mix rows w, w + 8, ... (R of them, fn prefetched before the PDL
// wait); the partials part [RW, S] as in the cooperative kernel (rows: M dots, Σx'², Gram); one grid barrier;
// CTA 0 reduces every row (post, comb), the others pre, Σx'² and Gram (float4 loads when S % 4 == 0, one per
// lane per row at D 4096); warp 0 writes y (RMSNorm_w via the Gram matrix), CTA 0's warp 1 the gates.
template <int HC, bool kPost>
__global__ void __launch_bounds__(kThreads, 1) hc_site1_kernel(MixArgs a) {
    constexpr int M = (2 + HC) * HC, R = (M + kWarps - 1) / kWarps, G = gram_rows(HC);
    constexpr int RW = M + 1 + G, kRows = (RW + kWarps - 1) / kWarps;
    __shared__ float s_pc[HC + HC * HC];  // kPost: post, comb
    __shared__ float s_mu[RW], s_pre[HC];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int D = int(a.D), len = HC * D, S = int(gridDim.y), s = int(blockIdx.y), d = 32 * s + lane;
    const bool ok = d < D;
    float f[R][HC];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int m = warp + kWarps * r;
#pragma unroll
        for (int k = 0; k < HC; ++k) f[r][k] = m < M && ok ? __ldg(a.fn + m * len + k * D + d) : 0.0f;
    }
    pdl_wait();
    float x[HC];
    if constexpr (kPost) {
        if (threadIdx.x < HC + HC * HC)
            s_pc[threadIdx.x] = threadIdx.x < HC ? a.post[threadIdx.x] : a.comb[threadIdx.x - HC];
        float xin[HC];
#pragma unroll
        for (int j = 0; j < HC; ++j) xin[j] = ok ? a.X[j * D + d] : 0.0f;
        const float fv = ok ? a.F[d] : 0.0f;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < HC; ++k) {  // cpu::hc_post's order
            float v = s_pc[k] * fv;
#pragma unroll
            for (int j = 0; j < HC; ++j) v += s_pc[HC + j * HC + k] * xin[j];
            x[k] = ok ? v : 0.0f;
        }
        if (warp == 0 && ok)
#pragma unroll
            for (int k = 0; k < HC; ++k) a.Xout[k * D + d] = x[k];
    } else {
#pragma unroll
        for (int k = 0; k < HC; ++k) x[k] = ok ? a.X[k * D + d] : 0.0f;
    }
    // partials of this CTA's 32 columns
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int m = warp + kWarps * r;
        if (m < M) {  // warp-uniform
            float acc = 0.0f;
#pragma unroll
            for (int k = 0; k < HC; ++k) acc += f[r][k] * x[k];
            acc = warp_sum(acc);
            if (lane == 0) a.part[m * S + s] = acc;
        }
    }
    {
        int g = 0;  // warp 0: Σx'²; pair g of the Gram matrix on warp (g + 1) % kWarps
        if (warp == 0) {
            float v = 0.0f;
#pragma unroll
            for (int k = 0; k < HC; ++k) v += x[k] * x[k];
            v = warp_sum(v);
            if (lane == 0) a.part[M * S + s] = v;
        }
#pragma unroll
        for (int j = 0; j < HC; ++j)
#pragma unroll
            for (int k = j; k < HC; ++k, ++g)
                if ((g + 1) % kWarps == warp) {
                    const float v = warp_sum(x[j] * x[k]);
                    if (lane == 0) a.part[(M + 1 + g) * S + s] = v;
                }
    }
    __syncthreads();
    if (threadIdx.x == 0) grid_sync(a.arrivals + (kMaxArrivals - 2), unsigned(S), s == 0);
    __syncthreads();
    // reduce (fixed order: a lane's slices in order, then the butterfly); row i of the shortened list of a
    // CTA other than 0 is i for i < HC, else M + i − HC
    const int nr = s == 0 ? RW : HC + 1 + G;
    const bool vec4 = S % 4 == 0;
    float v[kRows];
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
        const int q = warp + kWarps * i;
        const int row = s != 0 && q >= HC ? M + q - HC : q;
        v[i] = 0.0f;
        if (q < nr) {
            const float* p = a.part + row * S;
            if (vec4) {
#pragma unroll 1
                for (int j = 4 * lane; j < S; j += 128) {
                    const float4 t = __ldcg(reinterpret_cast<const float4*>(p + j));
                    v[i] += t.x;
                    v[i] += t.y;
                    v[i] += t.z;
                    v[i] += t.w;
                }
            } else {
#pragma unroll 1
                for (int j = lane; j < S; j += 32) v[i] += __ldcg(p + j);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
        const int q = warp + kWarps * i;
        if (q < nr) {  // warp-uniform
            const int row = s != 0 && q >= HC ? M + q - HC : q;
            const float r = warp_sum(v[i]);
            if (lane == 0) s_mu[row] = r;
        }
    }
    __syncthreads();
    if (threadIdx.x < (s == 0 ? M : HC)) {  // mu = ρ·dot, pre (cpu::hc_pre's formulas)
        const int m = threadIdx.x;
        const float rho = 1.0f / sqrtf(s_mu[M] / float(len) + a.norm_eps);
        const float mu = s_mu[m] * rho;
        s_mu[m] = mu;
        if (m < HC) s_pre[m] = sigmoid_dev(a.scale[0] * mu + a.base[m]) + a.eps;
    }
    __syncthreads();
    if (warp == 0) {
        float y = 0.0f;
#pragma unroll
        for (int j = 0; j < HC; ++j) y += s_pre[j] * x[j];
        if (a.norm_w != nullptr) {
            const float inv = gram_rms_inv<HC>(s_pre, s_mu + M + 1, D, a.norm_eps);
            if (ok) a.y[d] = y * inv * a.norm_w[d];
        } else if (ok) {
            a.y[d] = y;
        }
    } else if (warp == 1 && s == 0) {
        mix_gates_warp<HC>(s_mu, a.base, a.scale, a.iters, a.eps, a.defer, a.post_out, a.comb_out);
    }
}

// Arrival counters of the fused path, per (device, stream): kMaxArrivals zeroed unsigned ints, created by
// the first call that needs them on that stream (refused under graph capture: warm up first, as for
// linear's GEMM scratch) and never freed. Every launch leaves the tile counters zero and grows grid_sync's
// word by a multiple of its step, so launches in stream order (and graph replays on the capturing stream) can
// share them; two streams never do.
Result<unsigned*> arrival_counters(cudaStream_t s) {
    struct All {
        std::mutex mu;
        std::map<std::pair<int, cudaStream_t>, unsigned*> m;
    };
    static All* all = new All;  // NOLINT: deliberately never destroyed (process lifetime)
    int dev = 0;
    DSV4_CUDA_CHECK(cudaGetDevice(&dev));
    std::lock_guard<std::mutex> lock(all->mu);
    unsigned*& c = all->m[{dev, s}];
    if (c) return c;
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    DSV4_CUDA_CHECK(cudaStreamIsCapturing(s, &cap));
    if (cap != cudaStreamCaptureStatusNone)
        return error(
            "cuda::hc_pre/hc_post_pre: the arrival counters of this stream would be allocated during CUDA "
            "graph "
            "capture; hint: run one forward on this stream before capturing");
    void* p = nullptr;
    DSV4_CUDA_CHECK(cudaMalloc(&p, size_t(kMaxArrivals) * sizeof(unsigned)));
    if (cudaMemsetAsync(p, 0, size_t(kMaxArrivals) * sizeof(unsigned), s) != cudaSuccess) {
        cudaFree(p);
        return error("cuda::hc_pre: cudaMemsetAsync of the arrival counters failed");
    }
    c = static_cast<unsigned*>(p);
    return c;
}

// Whether one token tile's S slices can all be resident at once (cooperative launch of Kernel): the
// device's SM count × the kernel's resident CTAs per SM, queried once per kernel and device.
template <auto Kernel>
bool coop_fits(int64_t S) {
    static std::atomic<int64_t>
        cap[64];  // 0: not queried yet; else resident CTAs + 1 (1: no cooperative launch)
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev >= 64) {
        cudaGetLastError();
        return false;
    }
    int64_t c = cap[dev].load(std::memory_order_acquire);
    if (c == 0) {
        int sms = 0, coop = 0, per_sm = 0;
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kernel, kThreads, 0) != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        c = (coop != 0 ? int64_t(per_sm) * sms : 0) + 1;
        cap[dev].store(c, std::memory_order_release);
    }
    return c - 1 >= S;
}

// DSV4_HC_COOP: 1 (default) = a decode-sized call (one token tile, 32 columns per CTA, all CTAs resident)
// finishes on every CTA after a grid barrier (coop_finish); 0 = the last CTA finishes alone.
// A one-token call (batch-1 decode) takes hc_site1_kernel when its S CTAs fit at once.
template <int HC, bool kPost>
void mix_fused_launch_t(const MixArgs& a, const MixPlan& p, cudaStream_t s) {
    static const int mode = env_choice("DSV4_HC_COOP", 1, 1);
    const dim3 grid(unsigned(p.tiles), unsigned(p.S));
    const bool coop = mode == 1 && p.tiles == 1 && p.chunk == kMixCols && p.S >= 2;
    const bool idx32 = int64_t((2 + HC) * HC) * HC * a.D < (int64_t(1) << 31);  // hc_site1_kernel's indices
    if (coop && a.n == 1 && idx32 && coop_fits<hc_site1_kernel<HC, kPost>>(p.S))
        launch_pdl_coop(hc_site1_kernel<HC, kPost>, grid, kThreads, 0, s, a);
    else if (coop && coop_fits<hc_mix_fused_kernel<HC, kPost, true>>(p.S))
        launch_pdl_coop(hc_mix_fused_kernel<HC, kPost, true>, grid, kThreads, 0, s, a);
    else
        launch_pdl(hc_mix_fused_kernel<HC, kPost, false>, grid, kThreads, 0, s, a);
}
template <int HC>
void mix_fused_launch(const MixArgs& a, const MixPlan& p, bool post, cudaStream_t s) {
    if (post)
        mix_fused_launch_t<HC, true>(a, p, s);
    else
        mix_fused_launch_t<HC, false>(a, p, s);
}

// f(std::integral_constant<int, hc>{}) for hc in [1, kMaxHc] (the callers check the range): the one switch
// from a runtime hc_mult to the kernels' template parameter.
template <typename F>
void with_hc(int64_t hc, F&& f) {
    switch (hc) {
        case 1:
            f(std::integral_constant<int, 1>{});
            break;
        case 2:
            f(std::integral_constant<int, 2>{});
            break;
        case 3:
            f(std::integral_constant<int, 3>{});
            break;
        case 4:
            f(std::integral_constant<int, 4>{});
            break;
        case 5:
            f(std::integral_constant<int, 5>{});
            break;
        case 6:
            f(std::integral_constant<int, 6>{});
            break;
        case 7:
            f(std::integral_constant<int, 7>{});
            break;
        default:
            f(std::integral_constant<int, 8>{});
            break;
    }
}

Status hc_fused_launch(MixArgs a, int64_t hc, bool post, cudaStream_t s) {
    const MixPlan p = mix_plan(a.n, hc, a.D);
    a.chunk = p.chunk;
    a.arrivals = nullptr;
    if (p.S > 1) {
        if (p.tiles > kMaxArrivals - 2)
            return error("cuda::hc_pre: {} tiles exceed the arrival counters", p.tiles);
        DSV4_TRY_ASSIGN(a.arrivals, arrival_counters(s));
    }
    with_hc(hc, [&](auto c) { mix_fused_launch<decltype(c)::value>(a, p, post, s); });
    DSV4_CUDA_LAUNCH_CHECK("hc_mix_fused_kernel");
    return Status::ok();
}

__global__ void hc_post_kernel(const float* X, const float* F, const float* post, const float* comb,
                               int64_t n, int hc, int64_t D, float* Xout) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n * hc * D) return;
    const int64_t d = e % D, k = (e / D) % hc, t = e / (D * hc);
    const float* Xt = X + t * hc * D;
    const float* P = comb + t * hc * hc;
    float acc = post[t * hc + k] * F[t * D + d];
    for (int j = 0; j < hc; ++j) acc += P[j * hc + k] * Xt[j * D + d];
    Xout[e] = acc;
}

__global__ void __launch_bounds__(kThreads)
    hc_head_kernel(const float* X, int hc, int64_t D, const float* fn, const float* base, const float* scale,
                   float eps, float norm_eps, float* z) {
    pdl_wait();
    __shared__ float red[32], mu[kMaxHc];
    const int64_t t = blockIdx.x;
    const float* Xt = X + t * hc * D;
    mix_logits(Xt, hc * D, fn, hc, norm_eps, mu, red);
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < hc; ++j) acc += (sigmoid_dev(scale[0] * mu[j] + base[j]) + eps) * Xt[j * D + d];
        z[t * D + d] = acc;
    }
}

// hc_sinkhorn: warp w of CTA b projects token 8b + w's comb logits in place.
template <int HC>
__global__ void __launch_bounds__(kThreads) hc_sinkhorn_kernel(float* comb, int64_t n, int iters, float eps) {
    pdl_wait();
    const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    if (t >= n) return;
    float* c = comb + t * HC * HC;
    sinkhorn_project<HC>([&](int e) { return c[e]; }, iters, eps, c);
}
template <int HC>
void sinkhorn_launch(float* comb, int64_t n, int iters, float eps, cudaStream_t s) {
    launch_pdl(hc_sinkhorn_kernel<HC>, ceil_div_u(n, kWarps), kThreads, 0, s, comb, n, iters, eps);
}

__global__ void hc_expand_kernel(const float* h, int64_t n, int hc, int64_t D, float* X) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n * hc * D) return;
    X[e] = h[(e / (D * hc)) * D + e % D];
}

}  // namespace

int64_t hc_work_floats(int64_t n, int64_t hc, int64_t D) {
    if (n <= 0 || hc < 1 || D <= 0) return 0;
    const int64_t S = std::max(hc_plan(n, hc, D).S, mix_plan(n, hc, D).S);  // head split path, fused path
    return n * ((2 + hc) * hc + 1 + hc * (hc + 1) / 2) * S;  // part_rows of the cooperative path
}

Status hc_pre(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
              const float* scale, int sinkhorn_iters, double hc_eps, double norm_eps, float* y, float* post,
              float* comb, cudaStream_t s, float* work, const float* norm_w, bool defer_sinkhorn) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_pre: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (defer_sinkhorn && (work == nullptr || D <= 0))
        return error("cuda::hc_pre: a deferred Sinkhorn needs the workspace path (work and D > 0)");
    if (n == 0) return Status::ok();
    if (work != nullptr && D > 0) {
        MixArgs a{};
        a.X = X;
        a.fn = fn, a.base = base, a.scale = scale, a.norm_w = norm_w;
        a.y = y, a.post_out = post, a.comb_out = comb, a.part = work;
        a.n = n, a.D = D, a.iters = sinkhorn_iters;
        a.eps = float(hc_eps), a.norm_eps = float(norm_eps);
        a.defer = defer_sinkhorn;
        return hc_fused_launch(a, hc, false, s);
    }
    launch_pdl(hc_pre_kernel, unsigned(n), kThreads, 0, s, X, int(hc), D, fn, base, scale, sinkhorn_iters,
               float(hc_eps), float(norm_eps), y, post, comb);
    DSV4_CUDA_LAUNCH_CHECK("hc_pre_kernel");
    if (norm_w != nullptr) return rms_norm(y, n, D, norm_w, norm_eps, y, s);
    return Status::ok();
}

Status hc_post_pre(const float* X, const float* F, const float* post, const float* comb, int64_t n,
                   int64_t hc, int64_t D, float* Xout, const float* fn, const float* base, const float* scale,
                   int sinkhorn_iters, double hc_eps, double norm_eps, const float* norm_w, float* y,
                   float* post_out, float* comb_out, float* work, cudaStream_t s, bool defer_sinkhorn) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_post_pre: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (X == Xout) return error("cuda::hc_post_pre: Xout must not alias X");
    if (defer_sinkhorn && (work == nullptr || D <= 0))
        return error("cuda::hc_post_pre: a deferred Sinkhorn needs the workspace path (work and D > 0)");
    if (n == 0) return Status::ok();
    if (work == nullptr || D <= 0) {  // unfused composition (no workspace)
        DSV4_TRY(hc_post(X, F, post, comb, n, hc, D, Xout, s));
        return hc_pre(Xout, n, hc, D, fn, base, scale, sinkhorn_iters, hc_eps, norm_eps, y, post_out,
                      comb_out, s, nullptr, norm_w);
    }
    MixArgs a{};
    a.X = X, a.F = F, a.post = post, a.comb = comb, a.Xout = Xout;
    a.fn = fn, a.base = base, a.scale = scale, a.norm_w = norm_w;
    a.y = y, a.post_out = post_out, a.comb_out = comb_out, a.part = work;
    a.n = n, a.D = D, a.iters = sinkhorn_iters;
    a.eps = float(hc_eps), a.norm_eps = float(norm_eps);
    a.defer = defer_sinkhorn;
    return hc_fused_launch(a, hc, true, s);
}

Status hc_sinkhorn(float* comb, int64_t n, int64_t hc, int sinkhorn_iters, double hc_eps, cudaStream_t s) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_sinkhorn: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (n == 0) return Status::ok();
    const float eps = float(hc_eps);
    with_hc(hc, [&](auto c) { sinkhorn_launch<decltype(c)::value>(comb, n, sinkhorn_iters, eps, s); });
    DSV4_CUDA_LAUNCH_CHECK("hc_sinkhorn_kernel");
    return Status::ok();
}

Status hc_post(const float* X, const float* F, const float* post, const float* comb, int64_t n, int64_t hc,
               int64_t D, float* Xout, cudaStream_t s) {
    if (n * hc * D == 0) return Status::ok();
    launch_pdl(hc_post_kernel, ceil_div_u(n * hc * D, 256), 256, 0, s, X, F, post, comb, n, int(hc), D, Xout);
    DSV4_CUDA_LAUNCH_CHECK("hc_post_kernel");
    return Status::ok();
}

Status hc_head(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
               const float* scale, double hc_eps, double norm_eps, float* z, cudaStream_t s, float* work) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_head: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (n == 0) return Status::ok();
    if (work != nullptr && D > 0)
        return hc_head_split_launch(X, n, hc, D, fn, base, scale, hc_eps, norm_eps, z, work, s);
    launch_pdl(hc_head_kernel, unsigned(n), kThreads, 0, s, X, int(hc), D, fn, base, scale, float(hc_eps),
               float(norm_eps), z);
    DSV4_CUDA_LAUNCH_CHECK("hc_head_kernel");
    return Status::ok();
}

Status hc_expand(const float* h, int64_t n, int64_t hc, int64_t D, float* X, cudaStream_t s) {
    if (n * hc * D == 0) return Status::ok();
    launch_pdl(hc_expand_kernel, ceil_div_u(n * hc * D, 256), 256, 0, s, h, n, int(hc), D, X);
    DSV4_CUDA_LAUNCH_CHECK("hc_expand_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
