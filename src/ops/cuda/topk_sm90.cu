// Selection kernels with dsv4's tie rule (score descending, ties to the LOWER index, −0 == +0): the
// indexer top-k and the MoE router (sqrtsoftplus, hash routing or top-k of score + bias, normalised
// weights). Phase A computes each element's rank by counting (O(n²) per row, exact and deterministic:
// the ranks form a permutation, so every output slot is written once). Tested against
// cpu::topk_lower_index / cpu::moe_route (bitwise indices) in tests/ops; note: docs/kernels/topk.md.
#include "ops/cuda/common.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

// a precedes b: greater score, or equal score (−0 == +0 under float compare) and lower index
__device__ __forceinline__ bool before(float sa, int64_t a, float sb, int64_t b) {
    return sa > sb || (sa == sb && a < b);
}

// grid (ceil(n_cols / 256), n): thread = element i of row t.
__global__ void topk_rank_kernel(const float* scores, int64_t n_cols, const int64_t* n_valid, int64_t k,
                                 int32_t* sel) {
    const int64_t t = blockIdx.y, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const float* row = scores + t * n_cols;
    const int64_t nv = min(n_valid[t], n_cols);
    if (i < nv) {
        const float si = row[i];
        int64_t rank = 0;
        for (int64_t j = 0; j < nv; ++j) rank += before(row[j], j, si, i);
        if (rank < k) sel[t * k + rank] = int32_t(i);
    }
    // slots no element can fill: ranks nv .. k−1
    for (int64_t j = nv + i; j < k; j += int64_t(gridDim.x) * blockDim.x) sel[t * k + j] = -1;
}

// PyTorch softplus (beta 1, threshold 20)
__device__ __forceinline__ float softplus_dev(float x) {
    return x > 20.0f ? x : log1pf(expf(x));
}

constexpr int kRouteThreads = 256;

// One CTA per token; scores in dynamic shared memory [E].
__global__ void __launch_bounds__(kRouteThreads)
    moe_route_kernel(const float* logits, int64_t E, int64_t k, const int32_t* ids, const int64_t* tid2eid,
                     int64_t n_vocab, const float* bias, float route_scale, int32_t* out_idx, float* out_w) {
    extern __shared__ float s[];  // [E]
    const int64_t t = blockIdx.x;
    int32_t* idx = out_idx + t * k;
    for (int64_t e = threadIdx.x; e < E; e += blockDim.x) s[e] = sqrtf(softplus_dev(logits[t * E + e]));
    __syncthreads();
    if (tid2eid) {
        const int64_t id = ids[t];
        for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
            const int64_t e = (id >= 0 && id < n_vocab) ? tid2eid[id * k + j] : -1;
            idx[j] = (e >= 0 && e < E) ? int32_t(e) : -1;  // the host validates ids and the table at load
        }
    } else {
        for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
            const float se = s[e] + (bias ? bias[e] : 0.0f);
            int64_t rank = 0;
            for (int64_t f = 0; f < E; ++f) rank += before(s[f] + (bias ? bias[f] : 0.0f), f, se, e);
            if (rank < k) idx[rank] = int32_t(e);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // sequential sum in slot order, as cpu::moe_route
        float sum = 0.0f;
        for (int64_t j = 0; j < k; ++j) sum += idx[j] >= 0 ? s[idx[j]] : __uint_as_float(0x7fc00000u);
        for (int64_t j = 0; j < k; ++j)
            out_w[t * k + j] =
                (idx[j] >= 0 ? s[idx[j]] : __uint_as_float(0x7fc00000u)) / (sum + 1e-20f) * route_scale;
    }
}

}  // namespace

Status topk_lower_index(const float* scores, int64_t n, int64_t n_cols, const int64_t* n_valid, int64_t k,
                        int32_t* sel, cudaStream_t s) {
    if (n == 0 || k == 0) return Status::ok();
    const int64_t cols = n_cols > k ? n_cols : k;
    topk_rank_kernel<<<dim3(ceil_div_u(cols, 256), unsigned(n)), 256, 0, s>>>(scores, n_cols, n_valid, k,
                                                                              sel);
    DSV4_CUDA_LAUNCH_CHECK("topk_rank_kernel");
    return Status::ok();
}

Status moe_route(const float* logits, int64_t n, int64_t E, int64_t k, const int32_t* ids,
                 const int64_t* tid2eid, int64_t n_vocab, const float* bias, double route_scale,
                 int32_t* out_idx, float* out_w, cudaStream_t s) {
    if (k > E) return error("cuda::moe_route: top-{} of {} experts", k, E);
    if (n == 0) return Status::ok();
    // NOTE(cuda): shared memory padded by 4 floats: compute-sanitizer saw 12-byte shared loads from the
    // unrolled rank loop read past s[E − 1] when E = 9 (the values read there are never used).
    const size_t smem = size_t(E + 4) * sizeof(float);
    moe_route_kernel<<<unsigned(n), kRouteThreads, smem, s>>>(logits, E, k, ids, tid2eid, n_vocab, bias,
                                                              float(route_scale), out_idx, out_w);
    DSV4_CUDA_LAUNCH_CHECK("moe_route_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
