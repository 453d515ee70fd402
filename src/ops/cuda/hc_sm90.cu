// Manifold-constrained hyper-connections (spec §5; HF DeepseekV4HyperConnection / HyperHead): pre-mix
// with Sinkhorn, post (stream update) and head collapse. Two paths for pre/head: the phase-A kernel (one
// CTA per token, a warp per mix row) when the caller passes no workspace, and the K-split pair
// (partial dot products over slices of hc·D by many CTAs, then a fixed-order reduction + Sinkhorn + y).
// Tested against cpu::hc_pre / hc_post / hc_head in tests/ops; note: docs/kernels/hc.md.
#include <algorithm>

#include "ops/cuda/common.cuh"
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

// pre [HC] (shared), post [HC] and comb [HC, HC] (global, skipped when null) from the mix logits mu [M];
// follows cpu::hc_pre step by step (softmax rows, +eps, column pass, iters−1 row/column pairs). P lives in
// registers (HC is a compile-time constant), so the 40 dependent passes do not round-trip shared memory.
// Used by the split path; phase A's hc_pre_kernel keeps the same steps on shared memory.
template <int HC>
__device__ __forceinline__ void hc_pre_weights_n(const float* mu, const float* base, const float* scale,
                                                 int iters, float eps, float* pre, float* post, float* comb) {
    float P[HC * HC];
#pragma unroll
    for (int j = 0; j < HC; ++j) {
        pre[j] = sigmoid_dev(scale[0] * mu[j] + base[j]) + eps;
        if (post) post[j] = 2.0f * sigmoid_dev(scale[1] * mu[HC + j] + base[HC + j]);
    }
#pragma unroll
    for (int j = 0; j < HC; ++j) {
        float mx = -INFINITY;
#pragma unroll
        for (int k = 0; k < HC; ++k) {
            const int m = 2 * HC + j * HC + k;
            P[j * HC + k] = scale[2] * mu[m] + base[m];
            mx = fmaxf(mx, P[j * HC + k]);
        }
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < HC; ++k) sum += (P[j * HC + k] = expf(P[j * HC + k] - mx));
#pragma unroll
        for (int k = 0; k < HC; ++k) P[j * HC + k] = P[j * HC + k] / sum + eps;
    }
    for (int it = 0; it < (iters < 1 ? 1 : iters); ++it) {  // cpu: one column pass even for iters = 0
        if (it > 0) {
#pragma unroll
            for (int j = 0; j < HC; ++j) {
                float s = 0.0f;
#pragma unroll
                for (int k = 0; k < HC; ++k) s += P[j * HC + k];
#pragma unroll
                for (int k = 0; k < HC; ++k) P[j * HC + k] /= (s + eps);
            }
        }
#pragma unroll
        for (int k = 0; k < HC; ++k) {
            float s = 0.0f;
#pragma unroll
            for (int j = 0; j < HC; ++j) s += P[j * HC + k];
#pragma unroll
            for (int j = 0; j < HC; ++j) P[j * HC + k] /= (s + eps);
        }
    }
    if (comb) {
#pragma unroll
        for (int e = 0; e < HC * HC; ++e) comb[e] = P[e];
    }
}

__device__ __forceinline__ void hc_pre_weights(int hc, const float* mu, const float* base, const float* scale,
                                               int iters, float eps, float* pre, float* post, float* comb) {
    switch (hc) {
        case 1:
            hc_pre_weights_n<1>(mu, base, scale, iters, eps, pre, post, comb);
            break;
        case 2:
            hc_pre_weights_n<2>(mu, base, scale, iters, eps, pre, post, comb);
            break;
        case 3:
            hc_pre_weights_n<3>(mu, base, scale, iters, eps, pre, post, comb);
            break;
        case 4:
            hc_pre_weights_n<4>(mu, base, scale, iters, eps, pre, post, comb);
            break;
        case 5:
            hc_pre_weights_n<5>(mu, base, scale, iters, eps, pre, post, comb);
            break;
        case 6:
            hc_pre_weights_n<6>(mu, base, scale, iters, eps, pre, post, comb);
            break;
        case 7:
            hc_pre_weights_n<7>(mu, base, scale, iters, eps, pre, post, comb);
            break;
        default:
            hc_pre_weights_n<8>(mu, base, scale, iters, eps, pre, post, comb);
            break;
    }
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

// Kernel 2, grid (n, Y): reduces token t's S partials (warp per row, lanes over slices, fixed order),
// then ρ, mu and the weights on one thread (pre/post/Sinkhorn for hc_pre, the sigmoid gate for hc_head),
// then its `cols` columns of y. Every CTA of a token computes the same weights; only blockIdx.y == 0
// writes post/comb. Token t's X columns are loaded before the reduction so their latency overlaps it.
template <bool kHead>
__global__ void __launch_bounds__(kThreads)
    hc_finish_kernel(const float* X, int hc, int64_t D, const float* part, int64_t S, const float* base,
                     const float* scale, int iters, float eps, float norm_eps, int64_t cols, float* y,
                     float* post, float* comb) {
    __shared__ float mu[kMaxM + 1], pre[kMaxHc];
    const int M = kHead ? hc : (2 + hc) * hc;
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
        for (int m = 0; m < M; ++m) mu[m] *= rho;
        if (kHead) {
            for (int j = 0; j < hc; ++j) pre[j] = sigmoid_dev(scale[0] * mu[j] + base[j]) + eps;
        } else {
            const bool first = blockIdx.y == 0;
            hc_pre_weights(hc, mu, base, scale, iters, eps, pre, first ? post + t * hc : nullptr,
                           first ? comb + t * hc * hc : nullptr);
        }
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

// Launches both kernels of the split path (M = mix rows; head: M = hc).
Status hc_split_launch(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
                       const float* scale, int iters, double hc_eps, double norm_eps, float* y, float* post,
                       float* comb, float* work, bool head, cudaStream_t s) {
    const HcPlan p = hc_plan(n, hc, D);
    const int M = int(head ? hc : (2 + hc) * hc);
    const dim3 g1(unsigned(p.tiles), unsigned(p.S));
    if (M <= kWarps)
        hc_mix_partial_kernel<1><<<g1, kThreads, 0, s>>>(X, n, hc * D, fn, M, p.chunk, work);
    else if (M <= 3 * kWarps)
        hc_mix_partial_kernel<3><<<g1, kThreads, 0, s>>>(X, n, hc * D, fn, M, p.chunk, work);
    else
        hc_mix_partial_kernel<kMaxM / kWarps><<<g1, kThreads, 0, s>>>(X, n, hc * D, fn, M, p.chunk, work);
    DSV4_CUDA_LAUNCH_CHECK("hc_mix_partial_kernel");
    const dim3 g2(unsigned(n), unsigned(p.Y));
    if (head)
        hc_finish_kernel<true><<<g2, kThreads, 0, s>>>(X, int(hc), D, work, p.S, base, scale, 0,
                                                       float(hc_eps), float(norm_eps), p.cols, y, nullptr,
                                                       nullptr);
    else
        hc_finish_kernel<false><<<g2, kThreads, 0, s>>>(X, int(hc), D, work, p.S, base, scale, iters,
                                                        float(hc_eps), float(norm_eps), p.cols, y, post,
                                                        comb);
    DSV4_CUDA_LAUNCH_CHECK("hc_finish_kernel");
    return Status::ok();
}

__global__ void hc_post_kernel(const float* X, const float* F, const float* post, const float* comb,
                               int64_t n, int hc, int64_t D, float* Xout) {
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

__global__ void hc_expand_kernel(const float* h, int64_t n, int hc, int64_t D, float* X) {
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n * hc * D) return;
    X[e] = h[(e / (D * hc)) * D + e % D];
}

}  // namespace

int64_t hc_work_floats(int64_t n, int64_t hc, int64_t D) {
    if (n <= 0 || hc < 1 || D <= 0) return 0;
    return n * ((2 + hc) * hc + 1) * hc_plan(n, hc, D).S;
}

Status hc_pre(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
              const float* scale, int sinkhorn_iters, double hc_eps, double norm_eps, float* y, float* post,
              float* comb, cudaStream_t s, float* work) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_pre: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (n == 0) return Status::ok();
    if (work != nullptr && D > 0)
        return hc_split_launch(X, n, hc, D, fn, base, scale, sinkhorn_iters, hc_eps, norm_eps, y, post, comb,
                               work, false, s);
    hc_pre_kernel<<<unsigned(n), kThreads, 0, s>>>(X, int(hc), D, fn, base, scale, sinkhorn_iters,
                                                   float(hc_eps), float(norm_eps), y, post, comb);
    DSV4_CUDA_LAUNCH_CHECK("hc_pre_kernel");
    return Status::ok();
}

Status hc_post(const float* X, const float* F, const float* post, const float* comb, int64_t n, int64_t hc,
               int64_t D, float* Xout, cudaStream_t s) {
    if (n * hc * D == 0) return Status::ok();
    hc_post_kernel<<<ceil_div_u(n * hc * D, 256), 256, 0, s>>>(X, F, post, comb, n, int(hc), D, Xout);
    DSV4_CUDA_LAUNCH_CHECK("hc_post_kernel");
    return Status::ok();
}

Status hc_head(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
               const float* scale, double hc_eps, double norm_eps, float* z, cudaStream_t s, float* work) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_head: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (n == 0) return Status::ok();
    if (work != nullptr && D > 0)
        return hc_split_launch(X, n, hc, D, fn, base, scale, 0, hc_eps, norm_eps, z, nullptr, nullptr, work,
                               true, s);
    hc_head_kernel<<<unsigned(n), kThreads, 0, s>>>(X, int(hc), D, fn, base, scale, float(hc_eps),
                                                    float(norm_eps), z);
    DSV4_CUDA_LAUNCH_CHECK("hc_head_kernel");
    return Status::ok();
}

Status hc_expand(const float* h, int64_t n, int64_t hc, int64_t D, float* X, cudaStream_t s) {
    if (n * hc * D == 0) return Status::ok();
    hc_expand_kernel<<<ceil_div_u(n * hc * D, 256), 256, 0, s>>>(h, n, int(hc), D, X);
    DSV4_CUDA_LAUNCH_CHECK("hc_expand_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
