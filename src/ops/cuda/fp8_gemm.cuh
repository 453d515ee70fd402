// Shared by the two block-scaled FP8 GEMM kernels (fp8_gemm_sm90.cu: mma.sync; fp8_wgmma_sm90.cu: wgmma):
// the launch arguments and the shared-memory swizzles of the staged rows.
#pragma once

#include "ops/cuda/common.cuh"
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

// The CTA's token rows (blockIdx.y: a dense tile of T rows, or a chunk slot), in shared memory: x row and
// y row of each of the T tile rows (rows past the valid ones repeat the last, loaded and never stored).
// Sets w to the chunk's expert weight; returns the valid row count, 0 for a slot past *n_chunks (the CTA
// exits; block-uniform). The caller synchronizes before reading the rows.
__device__ __forceinline__ int tile_rows(const GemmArgs& a, int T, DevWeight& w, int32_t* s_xrow,
                                         int32_t* s_yrow) {
    const int tid = int(threadIdx.x), nt = int(blockDim.x);
    if (a.chunks) {
        const int c = int(blockIdx.y);
        if (c >= *a.n_chunks) return 0;
        const int32_t* ch = a.chunks + 3 * c;
        w = a.table[ch[0]];
        const int valid = ch[2];
        for (int r = tid; r < T; r += nt) {
            const int32_t p = a.perm[ch[1] + min(r, valid - 1)];
            s_xrow[r] = int32_t(p / a.x_div);
            s_yrow[r] = p;
        }
        return valid;
    }
    const int64_t m0 = int64_t(blockIdx.y) * T;
    const int valid = int(a.n - m0 < T ? a.n - m0 : T);
    for (int r = tid; r < T; r += nt) s_xrow[r] = s_yrow[r] = int32_t(m0 + min(r, valid - 1));
    return valid;
}

// One pipeline stage = one 128-K block of the tile: T token rows of codes (128 bytes each, swz8), 128
// weight rows (128 bytes FP8 / 64 bytes FP4, swz8 / swz4), the T activation scales and, for FP4, the four
// UE8M0 sub-scales of each weight row. Where each part lives is the kernel's layout.
struct StageParts {
    uint8_t* x;
    uint8_t* w;
    float* xs;
    uint8_t* ws;
};
constexpr int kStageWRows = 128;

// cp.async of K block kb into a stage, by the kThreads threads of the CTA (rows past N are loaded from row
// N − 1 and never stored).
template <DType WT, int T, int kThreads>
__device__ __forceinline__ void load_stage_parts(const StageParts& d, int kb, const GemmArgs& a,
                                                 const DevWeight& w, const int32_t* s_xrow, int64_t n0,
                                                 int tid) {
    constexpr bool kFp4 = WT == DType::fp4_e2m1;
    constexpr int RB = kFp4 ? 64 : 128, CPR = RB / 16;
    const int64_t N = w.n_rows, K = a.K;
    for (int id = tid; id < T * 8; id += kThreads) {
        const int r = id >> 3, c = id & 7;
        cp_async16(d.x + r * 128 + (swz8(r, c) << 4), a.xq + int64_t(s_xrow[r]) * K + kb * 128 + c * 16);
    }
    for (int id = tid; id < kStageWRows * CPR; id += kThreads) {
        const int r = id / CPR, c = id % CPR;
        const int64_t row = n0 + r < N ? n0 + r : N - 1;
        cp_async16(d.w + r * RB + ((kFp4 ? swz4(r, c) : swz8(r, c)) << 4),
                   w.data + row * (K / 128) * RB + kb * RB + c * 16);
    }
    for (int r = tid; r < T; r += kThreads) cp_async4(d.xs + r, a.xs + int64_t(kb) * a.lds + s_xrow[r]);
    if constexpr (kFp4)
        for (int r = tid; r < kStageWRows; r += kThreads) {
            const int64_t row = n0 + r < N ? n0 + r : N - 1;
            cp_async4(d.ws + r * 4, w.scale + (w.scale_row0 + row) * w.scale_cols + kb * 4);
        }
}

// The wgmma kernel (fp8_wgmma_sm90.cu): grid_y token tiles (dense) or chunk slots (grouped); false from
// fp8_wgmma_enabled() (DSV4_FP8_WGMMA=0) keeps the mma.sync kernel.
bool fp8_wgmma_enabled();
Status fp8_wgmma(const GemmArgs& a, int64_t rows_or_chunks, bool grouped, cudaStream_t s);

}  // namespace dsv4::cuda::fp8g
