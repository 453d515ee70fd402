// Model-side kernels of the CUDA forward pass that have no CPU op of their own: sliding-window ring and
// key-pool assembly, the per-query key lists of model/attention.cpp, the compressor's state machine of
// model/compressor.cpp done for a whole call at once, and the routed-expert combine. Every size is
// known on the host from the positions alone, so none of these needs a device->host copy. Tested
// through the whole model against the CPU path (tests/model/test_cuda_model.cpp).
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

__global__ void moe_combine_kernel(const float* y, const float* w, int64_t n, int64_t k, int64_t D,
                                   float* out) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n * D) return;
    const int64_t t = e / D, d = e % D;
    float acc = out[e];
    for (int64_t j = 0; j < k; ++j) acc += (w ? w[t * k + j] : 1.0f) * y[(t * k + j) * D + d];
    out[e] = acc;
}

__global__ void ring_write_kernel(const float* kv, int64_t n, int64_t d, int64_t p0, int64_t W, float* ring) {
    pdl_wait();
    const int64_t first = n > W ? n - W : 0;  // earlier tokens would be overwritten within this call
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= (n - first) * d) return;
    const int64_t i = first + e / d, c = e % d;
    ring[((p0 + i) % W) * d + c] = kv[i * d + c];
}

__global__ void attn_pool_kernel(const float* ring, int64_t W, int64_t p0, int64_t n_hist, const float* kv,
                                 int64_t n, int64_t d, float* pool) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= (n_hist + n) * d) return;
    const int64_t r = e / d, c = e % d;
    pool[e] = r < n_hist ? ring[((p0 - n_hist + r) % W) * d + c] : kv[(r - n_hist) * d + c];
}

// One thread per query: window keys p ∈ [max(0, t−W+1), t] as pool rows, then the compressed ones.
__global__ void build_attn_index_kernel(int64_t p0, int64_t n, int64_t W, int64_t n_hist, int64_t m,
                                        int64_t n_cmp, const int32_t* sel, int64_t topk, int64_t max_keys,
                                        int32_t* idx) {
    pdl_wait();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t t = p0 + i, hist0 = p0 - n_hist;
    int32_t* row = idx + i * max_keys;
    int64_t k = 0;
    for (int64_t p = (t - W + 1 > 0 ? t - W + 1 : 0); p <= t; ++p) row[k++] = int32_t(p - hist0);
    if (m != 0) {
        const int64_t avail = min((t + 1) / m, n_cmp);
        if (sel) {
            for (int64_t j = 0; j < topk; ++j) {
                const int32_t s = sel[i * topk + j];
                if (s >= 0 && s < avail) row[k++] = int32_t(n_hist + n + s);
            }
        } else {
            for (int64_t s = 0; s < avail; ++s) row[k++] = int32_t(n_hist + n + s);
        }
    }
    for (; k < max_keys; ++k) row[k] = -1;
}

// Where the compressor row (c·d values, z with ape added) of position p lives during this call.
struct RowSrc {
    const float* a;
    const float* z;
    const float* ape;  // added to z when non-null
};
__device__ __forceinline__ RowSrc row_of(int64_t p, const float* a, const float* z, const float* ape,
                                         const float* pend_a, const float* pend_z, int64_t p0, int64_t m,
                                         int64_t cd) {
    if (p >= p0) return {a + (p - p0) * cd, z + (p - p0) * cd, ape + (p % m) * cd};
    return {pend_a + (p % m) * cd, pend_z + (p % m) * cd, nullptr};  // still pending at the call's start
}

// grid (ceil(d / 128), n_emit): entry e = window w_first + e; follows cpu::compress_pool on the slots
// model/compressor.cpp assembles (CSA: previous window's A halves, then this window's B halves).
__global__ void compressor_emit_kernel(const float* a, const float* z, const float* ape, const float* pend_a,
                                       const float* pend_z, const float* prev_a, const float* prev_z,
                                       int64_t p0, int64_t m, int64_t c, int64_t d, int64_t w_first, float* C,
                                       int64_t* pos_out) {
    pdl_wait();
    const int64_t e = blockIdx.y, w = w_first + e, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i == 0) pos_out[e] = w * m;  // RoPE at the window's first token (spec §14.5)
    if (i >= d) return;
    const int64_t cd = c * d, win0 = (p0 / m) * m;  // first position of the window pending at call start
    // slot j of the pooled window: CSA (c = 2) with a previous window: j < m its A halves, then this
    // window's B halves; otherwise this window's (only) halves.
    const int64_t n_prev = (c == 2 && w > 0) ? m : 0, n_slots = n_prev + m;
    auto slot = [&](int64_t j, float& av, float& zv) {
        const int64_t p = j < n_prev ? (w - 1) * m + j : w * m + (j - n_prev);
        const int64_t half = (c == 2 && j >= n_prev) ? 1 : 0;
        if (p < win0) {  // the previous window, only its A halves are kept (CSA)
            av = prev_a[(p % m) * d + i];
            zv = prev_z[(p % m) * d + i];
        } else {
            RowSrc r = row_of(p, a, z, ape, pend_a, pend_z, p0, m, cd);
            av = r.a[half * d + i];
            zv = r.z[half * d + i] + (r.ape ? r.ape[half * d + i] : 0.0f);
        }
    };
    C[e * d + i] = pool_slots(n_slots, slot);
}

// prev[s] = A half of position w_c·m + s, w_c the last window completed in this call.
__global__ void compressor_prev_kernel(const float* a, const float* z, const float* ape, const float* pend_a,
                                       const float* pend_z, float* prev_a, float* prev_z, int64_t p0,
                                       int64_t p_end, int64_t m, int64_t c, int64_t d) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= m * d) return;
    const int64_t s = e / d, i = e % d, p = (p_end / m - 1) * m + s;
    RowSrc r = row_of(p, a, z, ape, pend_a, pend_z, p0, m, c * d);
    prev_a[s * d + i] = r.a[i];
    prev_z[s * d + i] = r.z[i] + (r.ape ? r.ape[i] : 0.0f);
}

// pend[p % m] = row(p) for this call's positions of the last (possibly incomplete) window.
__global__ void compressor_pend_kernel(const float* a, const float* z, const float* ape, float* pend_a,
                                       float* pend_z, int64_t p0, int64_t p_begin, int64_t n_pos, int64_t m,
                                       int64_t cd) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n_pos * cd) return;
    const int64_t p = p_begin + e / cd, k = e % cd;
    pend_a[(p % m) * cd + k] = a[(p - p0) * cd + k];
    pend_z[(p % m) * cd + k] = z[(p - p0) * cd + k] + ape[(p % m) * cd + k];
}

__global__ void gather_rows_kernel(const float* src, int64_t w, const int64_t* rows, int64_t n, float* dst) {
    pdl_wait();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n * w) dst[i] = src[rows[i / w] * w + i % w];
}

}  // namespace

Status moe_combine(const float* y, const float* w, int64_t n, int64_t k, int64_t D, float* out,
                   cudaStream_t s) {
    if (n * D == 0) return Status::ok();
    launch_pdl(moe_combine_kernel, ceil_div_u(n * D, 256), 256, 0, s, y, w, n, k, D, out);
    DSV4_CUDA_LAUNCH_CHECK("moe_combine_kernel");
    return Status::ok();
}

Status ring_write(const float* kv, int64_t n, int64_t d, int64_t p0, int64_t W, float* ring, cudaStream_t s) {
    const int64_t rows = n < W ? n : W;
    if (rows * d == 0) return Status::ok();
    launch_pdl(ring_write_kernel, ceil_div_u(rows * d, 256), 256, 0, s, kv, n, d, p0, W, ring);
    DSV4_CUDA_LAUNCH_CHECK("ring_write_kernel");
    return Status::ok();
}

Status gather_rows(const float* src, int64_t w, const int64_t* rows, int64_t n, float* dst, cudaStream_t s) {
    if (n * w == 0) return Status::ok();
    launch_pdl(gather_rows_kernel, ceil_div_u(n * w, 256), 256, 0, s, src, w, rows, n, dst);
    DSV4_CUDA_LAUNCH_CHECK("gather_rows_kernel");
    return Status::ok();
}

Status attn_pool_build(const float* ring, int64_t W, int64_t p0, int64_t n_hist, const float* kv, int64_t n,
                       int64_t d, float* pool, cudaStream_t s) {
    if ((n_hist + n) * d == 0) return Status::ok();
    launch_pdl(attn_pool_kernel, ceil_div_u((n_hist + n) * d, 256), 256, 0, s, ring, W, p0, n_hist, kv, n, d,
               pool);
    DSV4_CUDA_LAUNCH_CHECK("attn_pool_kernel");
    return Status::ok();
}

Status build_attn_index(int64_t p0, int64_t n, int64_t W, int64_t n_hist, int64_t m, int64_t n_cmp,
                        const int32_t* sel, int64_t topk, int64_t max_keys, int32_t* idx, cudaStream_t s) {
    if (n == 0) return Status::ok();
    launch_pdl(build_attn_index_kernel, ceil_div_u(n, 128), 128, 0, s, p0, n, W, n_hist, m, n_cmp, sel, topk,
               max_keys, idx);
    DSV4_CUDA_LAUNCH_CHECK("build_attn_index_kernel");
    return Status::ok();
}

Status compressor_emit(const float* a, const float* z, const float* ape, const float* pend_a,
                       const float* pend_z, const float* prev_a, const float* prev_z, int64_t p0, int64_t n,
                       int64_t m, int64_t c, int64_t d, int64_t w_first, int64_t n_emit, float* C,
                       int64_t* pos_out, cudaStream_t s) {
    (void)n;
    if (n_emit == 0) return Status::ok();
    launch_pdl(compressor_emit_kernel, dim3(ceil_div_u(d, 128), unsigned(n_emit)), 128, 0, s, a, z, ape,
               pend_a, pend_z, prev_a, prev_z, p0, m, c, d, w_first, C, pos_out);
    DSV4_CUDA_LAUNCH_CHECK("compressor_emit_kernel");
    return Status::ok();
}

Status compressor_commit(const float* a, const float* z, const float* ape, float* pend_a, float* pend_z,
                         float* prev_a, float* prev_z, int64_t p0, int64_t n, int64_t m, int64_t c, int64_t d,
                         cudaStream_t s) {
    if (n == 0) return Status::ok();
    const int64_t p_end = p0 + n;
    if (c == 2 && p_end / m > p0 / m) {  // a window completed in this call
        launch_pdl(compressor_prev_kernel, ceil_div_u(m * d, 256), 256, 0, s, a, z, ape, pend_a, pend_z,
                   prev_a, prev_z, p0, p_end, m, c, d);
        DSV4_CUDA_LAUNCH_CHECK("compressor_prev_kernel");
    }
    const int64_t last0 = ((p_end - 1) / m) * m, p_begin = last0 > p0 ? last0 : p0;
    const int64_t n_pos = p_end - p_begin, cd = c * d;
    launch_pdl(compressor_pend_kernel, ceil_div_u(n_pos * cd, 256), 256, 0, s, a, z, ape, pend_a, pend_z, p0,
               p_begin, n_pos, m, cd);
    DSV4_CUDA_LAUNCH_CHECK("compressor_pend_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
