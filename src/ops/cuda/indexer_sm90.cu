// Lightning-indexer scores for many queries at once (prefill): the q·k dots of a block of queries
// against all keys as one SGEMM in true fp32 (cuda::sgemm_f32, the handle of linear) (P [rows = token·Hi +
// head, keys] in the workspace), then one kernel applies ReLU, the per-head weights and the sum over heads,
// and masks keys a query may not see yet. Same result as cuda::indexer_scores (which stays the decode path)
// up to the summation order inside each dot. Tested against cpu::indexer_scores in
// tests/ops/op_cases_indexer.cpp.
#include <algorithm>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

// Workspace cap: the P block of one SGEMM (floats). 64 Mi floats = 256 MB.
constexpr int64_t kMaxWorkFloats = int64_t(64) << 20;

// scores[t·ld + s] = Σ_h w[t, h]·ReLU(P[(t·Hi + h)·nk + s]) for s < min(n_avail[t], nk); −inf for the
// other columns s < ld. grid (ceil(ld / 256), rows of this block).
__global__ void indexer_reduce_kernel(const float* P, const float* w, int64_t Hi, int64_t nk,
                                      const int64_t* n_avail, float* scores, int64_t ld) {
    pdl_wait();
    const int64_t t = blockIdx.y, s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (s >= ld) return;
    if (s >= nk || s >= n_avail[t]) {
        scores[t * ld + s] = -INFINITY;
        return;
    }
    const float* p = P + t * Hi * nk + s;
    const float* wt = w + t * Hi;
    float acc = 0.0f;
    for (int64_t h = 0; h < Hi; ++h) acc += wt[h] * fmaxf(p[h * nk], 0.0f);
    scores[t * ld + s] = acc;
}

}  // namespace

int64_t indexer_gemm_block(int64_t n, int64_t Hi, int64_t n_keys) {
    return std::clamp<int64_t>(kMaxWorkFloats / std::max<int64_t>(Hi * n_keys, 1), 1,
                               std::max<int64_t>(n, 1));
}

int64_t indexer_gemm_work_floats(int64_t n, int64_t Hi, int64_t n_keys) {
    return indexer_gemm_block(n, Hi, n_keys) * Hi * n_keys;
}

Status indexer_scores_gemm(const float* qi, const float* w, int64_t n, int64_t Hi, int64_t di,
                           const float* keys, int64_t n_keys, const int64_t* n_avail, float* scores,
                           int64_t ld, float* work, cudaStream_t s) {
    if (n == 0 || ld == 0) return Status::ok();
    if (ld < n_keys) return error("cuda::indexer_scores_gemm: ld {} < n_keys {}", ld, n_keys);
    const int64_t tb = indexer_gemm_block(n, Hi, n_keys);
    for (int64_t t0 = 0; t0 < n; t0 += tb) {
        const int64_t rows = std::min(tb, n - t0);
        if (n_keys > 0 && di > 0) {
            // P [rows·Hi, n_keys]: P[(t·Hi + h)·n_keys + s] = Σ_i q[t, h, i]·keys[s, i]
            DSV4_TRY(
                cuda::sgemm_f32(keys, di, qi + t0 * Hi * di, di, n_keys, rows * Hi, di, work, n_keys, s));
        } else if (n_keys > 0) {
            DSV4_CUDA_CHECK(cudaMemsetAsync(work, 0, size_t(rows * Hi * n_keys) * 4, s));
        }
        launch_pdl(indexer_reduce_kernel, dim3(ceil_div_u(ld, 256), unsigned(rows)), 256, 0, s, work,
                   w + t0 * Hi, Hi, n_keys, n_avail + t0, scores + t0 * ld, ld);
        DSV4_CUDA_LAUNCH_CHECK("indexer_reduce_kernel");
    }
    return Status::ok();
}

}  // namespace dsv4::cuda
