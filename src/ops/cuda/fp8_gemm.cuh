// Shared by the two block-scaled FP8 GEMM kernels (fp8_gemm_sm90.cu: mma.sync; fp8_wgmma_sm90.cu: wgmma):
// the launch arguments and the shared-memory swizzles of the staged rows.
#pragma once

#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda::fp8g {

// x codes [rows][K] + scales [K/128][lds]; dense: n token rows on w; grouped: the chunk table of moe_group
// (chunk = {expert, start, count}), x row perm[p] / x_div, y row perm[p], weight table[expert].
struct GemmArgs {
    const uint8_t* xq;
    const float* xs;
    int64_t lds, n, x_div, K;
    DevWeight w;  // dense; grouped: the prototype (shape, format)
    const DevWeight* table;
    const int32_t *perm, *chunks, *n_chunks;
    float* y;
    int64_t ldy;
};

// Physical 16-byte chunk of logical chunk c in staged row r: 8 chunks per 128-byte row (the wgmma 128-byte
// swizzle when the tile is 1024-byte aligned), 4 per 64-byte row (FP4 rows, two rows per 128 bytes).
__device__ __forceinline__ int swz8(int r, int c) {
    return c ^ (r & 7);
}
__device__ __forceinline__ int swz4(int r, int c) {
    return c ^ ((r >> 1) & 3);
}

// The wgmma kernel (fp8_wgmma_sm90.cu): grid_y token tiles (dense) or chunk slots (grouped); false from
// fp8_wgmma_enabled() (DSV4_FP8_WGMMA=0) keeps the mma.sync kernel.
bool fp8_wgmma_enabled();
Status fp8_wgmma(const GemmArgs& a, int64_t rows_or_chunks, bool grouped, cudaStream_t s);

}  // namespace dsv4::cuda::fp8g
