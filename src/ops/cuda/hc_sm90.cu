// Manifold-constrained hyper-connections (spec §5; HF DeepseekV4HyperConnection / HyperHead): pre-mix
// with Sinkhorn, post (stream update) and head collapse. Phase A: one CTA per token for pre/head (a
// warp per mix row, the tiny Sinkhorn on one thread in shared memory), one thread per output for post.
// Tested against cpu::hc_pre / hc_post / hc_head in tests/ops; note: docs/kernels/hc.md.
#include "ops/cuda/common.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kMaxHc = 8;
constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid_dev(float v) {
    return 1.0f / (1.0f + expf(-v));
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
    __shared__ float red[32], mu[(2 + kMaxHc) * kMaxHc], P[kMaxHc * kMaxHc], pre[kMaxHc];
    const int64_t t = blockIdx.x;
    const float* Xt = X + t * hc * D;
    const int M = (2 + hc) * hc;
    mix_logits(Xt, hc * D, fn, M, norm_eps, mu, red);
    if (threadIdx.x ==
        0) {  // follows cpu::hc_pre step by step (softmax rows, +eps, column pass, iters−1 pairs)
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

Status hc_pre(const float* X, int64_t n, int64_t hc, int64_t D, const float* fn, const float* base,
              const float* scale, int sinkhorn_iters, double hc_eps, double norm_eps, float* y, float* post,
              float* comb, cudaStream_t s) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_pre: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (n == 0) return Status::ok();
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
               const float* scale, double hc_eps, double norm_eps, float* z, cudaStream_t s) {
    if (hc < 1 || hc > kMaxHc) return error("cuda::hc_head: hc_mult {} outside [1, {}]", hc, kMaxHc);
    if (n == 0) return Status::ok();
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
