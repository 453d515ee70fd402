// Skinny linear on the tensor cores for decode batches (issue 6, hopper-kernels.md §2): y = x·Wᵀ for a few
// token rows (or routed-expert chunks of ≤ 8 pairs) with W in its stored format — FP8 e4m3 + 128x128
// UE8M0, packed FP4 e2m1 + UE8M0 per 32, or bf16 — at fp32 accuracy: every weight value times its scale is
// exact in bf16 (≤ 4 significant bits, fp32 exponent range), and x is split into three bf16 pieces
// (hi + mid + lo = x to 24 bits), so the bf16 mma.sync m16n8k16 with fp32 accumulation computes
// cpu::linear up to the summation order. Weights stream from HBM straight into registers (16 B per thread
// and row, next chunk prefetched); warps split K when the weight has few rows. Tested against cpu::linear
// in tests/ops (op "linear_mma"); note: docs/kernels/linear.md.
#include <cuda_bf16.h>

#include <algorithm>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kTargetWarps = 132 * 16;  // enough 16-row tiles × K splits to keep HBM busy

__device__ __forceinline__ uint32_t bf16x2(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
}
// Two e4m3 codes (low byte first) times s, as bf16x2 (exact: 4 significant bits).
__device__ __forceinline__ uint32_t e4m3x2_bf16(uint32_t two, float s) {
    const float2 f = e4m3x2_to_f32(uint16_t(two & 0xffffu));
    return bf16x2(f.x * s, f.y * s);
}

// Per format: values per 16-byte chunk and the chunk → bf16x2 words (k order, scale applied).
template <DType DT>
struct Mw;
template <>
struct Mw<DType::bf16> {
    static constexpr int kE = 8;
    __device__ static void words(const uint4& q, const uint8_t*, int64_t, uint32_t* v) {
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    }
};
template <>
struct Mw<DType::f8_e4m3> {
    static constexpr int kE = 16;
    __device__ static void words(const uint4& q, const uint8_t* srow, int64_t kb, uint32_t* v) {
        const float s = e8m0_to_f32_dev(__ldg(srow + kb));
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
            v[2 * i] = e4m3x2_bf16(u[i], s), v[2 * i + 1] = e4m3x2_bf16(u[i] >> 16, s);
    }
};
template <>
struct Mw<DType::fp4_e2m1> {
    static constexpr int kE = 32;  // one per-32 scale block
    __device__ static void words(const uint4& q, const uint8_t* srow, int64_t kb, uint32_t* v) {
        // e2m1 → e4m3 bytes of value·2^-6 (bit placement, exact), the 2^6 folded into the scale
        const float s = e8m0_to_f32_dev(__ldg(srow + kb)) * 64.0f;
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t ev = ((u[i] << 2) & 0x1c1c1c1cu) | ((u[i] << 4) & 0x80808080u);
            const uint32_t od = ((u[i] >> 2) & 0x1c1c1c1cu) | (u[i] & 0x80808080u);
            const uint32_t lo = __byte_perm(ev, od, 0x5140), hi = __byte_perm(ev, od, 0x7362);
            v[4 * i] = e4m3x2_bf16(lo, s), v[4 * i + 1] = e4m3x2_bf16(lo >> 16, s);
            v[4 * i + 2] = e4m3x2_bf16(hi, s), v[4 * i + 3] = e4m3x2_bf16(hi >> 16, s);
        }
    }
};

// x value → its three bf16 pieces (hi + mid + lo == x to 24 significant bits; each difference is exact).
__device__ __forceinline__ void split3(float x, float& hi, float& mid, float& lo) {
    hi = __bfloat162float(__float2bfloat16_rn(x));
    const float r = x - hi;
    mid = __bfloat162float(__float2bfloat16_rn(r));
    lo = r - mid;
}

// grid (ceil(row tiles / (kWarps / KS)), token blocks of 8·NT | chunk slots). Warp = one 16-row tile × one
// of KS K-ranges. Thread (g, t) loads rows r0+g and r0+g+8 at chunk t of each segment (4 chunks = 4·E k)
// and feeds its E values as E/4 mmas, slot pairs (2t, 2t+1) and (2t+8, 2t+9) of mma j holding k = 4j .. 4j+3
// of its chunk — the same permutation for the x pieces of token g, so the sum is unchanged.
template <DType DT, int NT>
__global__ void __launch_bounds__(kThreads)
    gemv_mma_kernel(const float* __restrict__ x, int64_t n, int64_t ldx, int64_t x_div, DevWeight w,
                    const DevWeight* __restrict__ table, const int32_t* __restrict__ perm,
                    const int32_t* __restrict__ chunks, const int32_t* __restrict__ n_chunks,
                    float* __restrict__ y, int64_t ldy, int KS) {
    pdl_wait();
    using F = Mw<DT>;
    constexpr int E = F::kE, T = 8 * NT;
    __shared__ float red[kWarps][16][T];
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
    RowBlock blk;
    if (!row_block(n, T, table, perm, chunks, n_chunks, w, blk)) return;  // block-uniform
    const int n_valid = blk.n_valid;
    const int64_t t0 = blk.t0;
    const int32_t* prow = blk.prow;
    const int64_t N = w.n_rows, K = w.n_cols;
    const int tiles_per_cta = kWarps / KS, ks = warp % KS;
    const int64_t r0 = (int64_t(blockIdx.x) * tiles_per_cta + warp / KS) * 16;
    const bool live = r0 < N;  // a warp past the last tile still joins the block's barriers
    const int64_t ra = r0 + g < N ? r0 + g : N - 1, rb = r0 + g + 8 < N ? r0 + g + 8 : N - 1;
    const int64_t segs = K / (4 * E), per = (segs + KS - 1) / KS;
    const int64_t s_begin = ks * per, s_end = s_begin + per < segs ? s_begin + per : segs;
    const int64_t row_bytes = K / E * 16;
    const uint8_t* wa = w.data + ra * row_bytes;
    const uint8_t* wb = w.data + rb * row_bytes;
    // scale rows and the k → scale column shift, once per thread (FP8 / FP4; bf16 has none)
    const uint8_t* sra = w.scale ? w.scale + ((w.scale_row0 + ra) / w.block_rows) * w.scale_cols : nullptr;
    const uint8_t* srb = w.scale ? w.scale + ((w.scale_row0 + rb) / w.block_rows) * w.scale_cols : nullptr;
    const int kshift = w.scale ? __ffs(w.block_cols) - 1 : 0;
    constexpr int64_t kChunkBytes = 16;

    for (int p0 = 0; p0 < n_valid; p0 += T) {
        const int nv = n_valid - p0 < T ? n_valid - p0 : T;
        // the x rows of tokens g and g + 8 of this pass (clamped to a valid one; results of the padding are
        // never stored)
        const float* xr[NT];
#pragma unroll
        for (int h = 0; h < NT; ++h) {
            const int i = p0 + (g + 8 * h < nv ? g + 8 * h : 0);
            const int64_t orow = chunks ? int64_t(prow[i]) : t0 + i;
            xr[h] = x + (orow / x_div) * ldx;
        }
        float acc[NT][4] = {};
        if (live && s_begin < s_end) {
            uint4 qa = __ldg(reinterpret_cast<const uint4*>(wa + (s_begin * 4 + t) * kChunkBytes));
            uint4 qb = __ldg(reinterpret_cast<const uint4*>(wb + (s_begin * 4 + t) * kChunkBytes));
            for (int64_t sg = s_begin; sg < s_end; ++sg) {
                const bool more = sg + 1 < s_end;
                uint4 na = qa, nb = qb;
                if (more) {
                    na = __ldg(reinterpret_cast<const uint4*>(wa + ((sg + 1) * 4 + t) * kChunkBytes));
                    nb = __ldg(reinterpret_cast<const uint4*>(wb + ((sg + 1) * 4 + t) * kChunkBytes));
                }
                const int64_t k0 = (sg * 4 + t) * E;  // the thread's chunk
                uint32_t va[E / 2], vb[E / 2];
                F::words(qa, sra, k0 >> kshift, va);
                F::words(qb, srb, k0 >> kshift, vb);
#pragma unroll
                for (int j = 0; j < E / 4; ++j) {
#pragma unroll
                    for (int h = 0; h < NT; ++h) {
                        const float4 xv = __ldg(reinterpret_cast<const float4*>(xr[h] + k0 + 4 * j));
                        float p[3][4];
                        split3(xv.x, p[0][0], p[1][0], p[2][0]);
                        split3(xv.y, p[0][1], p[1][1], p[2][1]);
                        split3(xv.z, p[0][2], p[1][2], p[2][2]);
                        split3(xv.w, p[0][3], p[1][3], p[2][3]);
#pragma unroll
                        for (int pc = 0; pc < 3; ++pc)
                            mma_m16n8k16<true>(acc[h], va[2 * j], vb[2 * j], va[2 * j + 1], vb[2 * j + 1],
                                               bf16x2(p[pc][0], p[pc][1]), bf16x2(p[pc][2], p[pc][3]));
                    }
                }
                qa = na, qb = nb;
            }
        }
        // acc[h]: rows g, g + 8 × tokens 8h + 2t, 8h + 2t + 1 of this pass
        auto store = [&](int row, int tok, float v) {
            if (r0 + row < N && tok < nv) {
                const int64_t orow = chunks ? int64_t(prow[p0 + tok]) : t0 + p0 + tok;
                y[orow * ldy + r0 + row] = v;
            }
        };
        if (KS == 1) {
            if (live)
#pragma unroll
                for (int h = 0; h < NT; ++h) {
                    store(g, 8 * h + 2 * t, acc[h][0]), store(g, 8 * h + 2 * t + 1, acc[h][1]);
                    store(g + 8, 8 * h + 2 * t, acc[h][2]), store(g + 8, 8 * h + 2 * t + 1, acc[h][3]);
                }
            continue;
        }
#pragma unroll
        for (int h = 0; h < NT; ++h) {
            red[warp][g][8 * h + 2 * t] = acc[h][0], red[warp][g][8 * h + 2 * t + 1] = acc[h][1];
            red[warp][g + 8][8 * h + 2 * t] = acc[h][2], red[warp][g + 8][8 * h + 2 * t + 1] = acc[h][3];
        }
        __syncthreads();
        if (ks == 0 && live)  // the tile's first warp sums the KS partial tiles in order
            for (int e = lane; e < 16 * T; e += 32) {
                const int row = e / T, tok = e % T;
                float s = 0.0f;
                for (int i = 0; i < KS; ++i) s += red[warp + i][row][tok];
                store(row, tok, s);
            }
        __syncthreads();
    }
}

template <DType DT, int NT>
Status launch_t(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
                const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s) {
    const int64_t tiles = (w.n_rows + 15) / 16, segs = w.n_cols / (4 * Mw<DT>::kE);
    int KS = 1;
    while (KS < kWarps && tiles * KS < kTargetWarps && 2 * KS <= segs) KS *= 2;
    const int64_t ny = chunks ? max_chunks : (n + 8 * NT - 1) / (8 * NT);
    if (ny > 65535) return error("cuda::linear_mma: {} token blocks is more than one launch covers", ny);
    const dim3 grid(ceil_div_u(tiles, kWarps / KS), unsigned(ny));
    launch_pdl(gemv_mma_kernel<DT, NT>, grid, kThreads, 0, s, x, n, ldx, x_div, w, table, perm, chunks,
               n_chunks, y, ldy, KS);
    DSV4_CUDA_LAUNCH_CHECK("gemv_mma_kernel");
    return Status::ok();
}

template <DType DT>
Status launch(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
              const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
              int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s, int64_t tok_hint) {
    if (!chunks && n > 8)  // chunks hold ≤ 8 pairs (moe_group's default); more take passes
        return launch_t<DT, 2>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy, s);
    return launch_t<DT, 1>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy, s);
}

}  // namespace

bool linear_mma_ok(const WeightRef& w, const float* x, int64_t ldx) {
    int E = 0;
    switch (w.dtype) {
        case DType::bf16:
            E = 8;
            break;
        case DType::f8_e4m3:
            E = w.block_cols % 16 == 0 && (w.block_cols & (w.block_cols - 1)) == 0 ? 16 : 0;
            break;
        case DType::fp4_e2m1:
            E = w.block_cols == 32 ? 32 : 0;
            break;
        default:
            break;
    }
    return E > 0 && w.n_rows > 0 && w.n_cols % (4 * E) == 0 &&
           reinterpret_cast<uintptr_t>(w.data) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
           ldx % 4 == 0;
}

Status linear_mma(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
                  const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                  int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s, int64_t tok_hint) {
    if (n == 0 || w.n_rows == 0) return Status::ok();
    switch (w.dtype) {
        case DType::bf16:
            return launch<DType::bf16>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy,
                                       s, tok_hint);
        case DType::f8_e4m3:
            return launch<DType::f8_e4m3>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y,
                                          ldy, s, tok_hint);
        case DType::fp4_e2m1:
            return launch<DType::fp4_e2m1>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y,
                                           ldy, s, tok_hint);
        default:
            return error("cuda::linear_mma: unsupported weight dtype {}", dtype_name(w.dtype));
    }
}

}  // namespace dsv4::cuda
