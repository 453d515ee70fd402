// Attention-side kernels: sink attention over explicit key lists (spec §6.7), softmax-gated compressor
// pooling (spec §6.5) and Lightning-indexer scores (spec §6.6). Phase A: one CTA per (query, head) for
// attention with logits in shared memory, one warp per key for the indexer. Tested against the cpu::
// ops in tests/ops; note: docs/kernels/attention.md.
#include "ops/cuda/common.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kAttnThreads = 128;

// grid (H, n). Logits of the query's keys in dynamic shared memory [max_keys]; follows
// cpu::sink_attention: max over sink and logits, denom = exp(sink − max) + Σ exp(l − max), o = Σ p·k / denom.
__global__ void __launch_bounds__(kAttnThreads)
    sink_attention_kernel(const float* q, int64_t H, int64_t d, const float* kv, const float* kv2,
                          int64_t split, const int32_t* idx, int64_t max_keys, const float* sink, float scale,
                          float* out) {
    extern __shared__ float logit[];  // [max_keys]
    __shared__ float red[32];
    const int64_t h = blockIdx.x, t = blockIdx.y;
    const float* qh = q + (t * H + h) * d;
    const int32_t* keys = idx + t * max_keys;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    auto row = [&](int32_t r) { return r < split ? kv + int64_t(r) * d : kv2 + (int64_t(r) - split) * d; };

    for (int64_t j = warp; j < max_keys; j += n_warps) {
        const int32_t r = keys[j];
        if (r < 0) continue;
        const float* k = row(r);
        float acc = 0.0f;
        for (int64_t i = lane; i < d; i += 32) acc += qh[i] * k[i];
        acc = warp_sum(acc);
        if (lane == 0) logit[j] = acc * scale;
    }
    __syncthreads();
    float mx = sink[h];
    for (int64_t j = threadIdx.x; j < max_keys; j += blockDim.x)
        if (keys[j] >= 0) mx = fmaxf(mx, logit[j]);
    mx = block_max(mx, red);
    float part = 0.0f;
    for (int64_t j = threadIdx.x; j < max_keys; j += blockDim.x)
        if (keys[j] >= 0) part += (logit[j] = expf(logit[j] - mx));
    const float denom = expf(sink[h] - mx) + block_sum(part, red);  // block_sum's barrier publishes logit[]
    float* o = out + (t * H + h) * d;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float acc = 0.0f;
        for (int64_t j = 0; j < max_keys; ++j) {
            const int32_t r = keys[j];
            if (r >= 0) acc += logit[j] * row(r)[i];
        }
        o[i] = acc / denom;
    }
}

__global__ void compress_pool_kernel(const float* a, const float* z, int64_t slots, int64_t lda, int64_t ldz,
                                     int64_t d, float* C) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= d) return;
    float mx = -INFINITY;
    for (int64_t s = 0; s < slots; ++s) mx = fmaxf(mx, z[s * ldz + i]);
    float sum = 0.0f, acc = 0.0f;
    for (int64_t s = 0; s < slots; ++s) {
        const float e = expf(z[s * ldz + i] - mx);
        sum += e;
        acc += e * a[s * lda + i];
    }
    C[i] = acc / sum;
}

constexpr int kIdxWarps = 8;

// grid (ceil(n_keys / kIdxWarps), n): one warp per key s of token t.
__global__ void __launch_bounds__(kIdxWarps * 32)
    indexer_scores_kernel(const float* qi, const float* w, int64_t Hi, int64_t di, const float* keys,
                          int64_t n_keys, const int64_t* n_avail, float* scores) {
    const int lane = threadIdx.x & 31;
    const int64_t t = blockIdx.y, s = int64_t(blockIdx.x) * kIdxWarps + (threadIdx.x >> 5);
    if (s >= n_keys) return;
    if (s >= n_avail[t]) {
        if (lane == 0) scores[t * n_keys + s] = -INFINITY;
        return;
    }
    const float* k = keys + s * di;
    float acc = 0.0f;
    for (int64_t h = 0; h < Hi; ++h) {
        const float* qh = qi + (t * Hi + h) * di;
        float dot = 0.0f;
        for (int64_t i = lane; i < di; i += 32) dot += qh[i] * k[i];
        dot = warp_sum(dot);
        acc += w[t * Hi + h] * fmaxf(dot, 0.0f);
    }
    if (lane == 0) scores[t * n_keys + s] = acc;
}

}  // namespace

Status sink_attention(const float* q, int64_t n, int64_t H, int64_t d, const float* kv, const float* kv2,
                      int64_t split, const int32_t* idx, int64_t max_keys, const float* sink, float scale,
                      float* out, cudaStream_t s) {
    if (n == 0 || H == 0) return Status::ok();
    const size_t smem = size_t(max_keys) * sizeof(float);
    if (smem > 200 * 1024)
        return error("cuda::sink_attention: {} keys per query exceed shared memory", max_keys);
    if (smem > 48 * 1024)
        DSV4_CUDA_CHECK(cudaFuncSetAttribute(sink_attention_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    sink_attention_kernel<<<dim3(unsigned(H), unsigned(n)), kAttnThreads, smem, s>>>(
        q, H, d, kv, kv2, split, idx, max_keys, sink, scale, out);
    DSV4_CUDA_LAUNCH_CHECK("sink_attention_kernel");
    return Status::ok();
}

Status compress_pool(const float* a, const float* z, int64_t slots, int64_t lda, int64_t ldz, int64_t d,
                     float* C, cudaStream_t s) {
    if (d == 0) return Status::ok();
    compress_pool_kernel<<<ceil_div_u(d, 128), 128, 0, s>>>(a, z, slots, lda, ldz, d, C);
    DSV4_CUDA_LAUNCH_CHECK("compress_pool_kernel");
    return Status::ok();
}

Status indexer_scores(const float* qi, const float* w, int64_t n, int64_t Hi, int64_t di, const float* keys,
                      int64_t n_keys, const int64_t* n_avail, float* scores, cudaStream_t s) {
    if (n == 0 || n_keys == 0) return Status::ok();
    indexer_scores_kernel<<<dim3(ceil_div_u(n_keys, kIdxWarps), unsigned(n)), kIdxWarps * 32, 0, s>>>(
        qi, w, Hi, di, keys, n_keys, n_avail, scores);
    DSV4_CUDA_LAUNCH_CHECK("indexer_scores_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
