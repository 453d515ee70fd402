// Block-scaled FP8 tensor-core GEMM for prefill under reference numerics (issue 6; hopper-kernels.md §1
// and §3): y = act_quant(x)·Wᵀ in fp32 with W in its stored format — FP8 e4m3 + 128x128 UE8M0, or packed
// FP4 e2m1 + UE8M0 per 32 (the routed experts; nibbles become e4m3 bytes in registers, exactly) — dense, or
// grouped over the routed-expert chunk table (no host round trip, so it also runs under graph capture).
// mma.sync m16n8k32 e4m3 with fp32 promotion per 128-K block (FP8 weights) or per 32-K sub-block (FP4):
// cpu::linear of the FP8-rounded x up to the summation order. Tested against cpu::linear on rounded x in
// tests/ops/op_cases_quant.cpp; note: docs/kernels/fp8_gemm.md.
#include <algorithm>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/fp8_gemm.cuh"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

using fp8g::GemmArgs;
using fp8g::swz4;
using fp8g::swz8;
using fp8g::tile_rows;

constexpr int kThreads = 256;           // 8 warps: 2 along the token rows × 4 along the weight rows
constexpr int kBN = fp8g::kStageWRows;  // weight rows per CTA: 4 warps × 32
constexpr int kBK = 128;                // K per pipeline stage = one activation scale block

template <DType WT>
constexpr int b_row_bytes() {
    return WT == DType::fp4_e2m1 ? kBK / 2 : kBK;
}

// Shared memory of one stage: token codes [BM][128] and weight codes [128][128 (FP8) | 64 (FP4)], both in
// 16-byte chunks XOR-swizzled by row (conflict-free fragment loads), the block's activation scales [BM]
// and, for FP4, each weight row's four UE8M0 sub-block scales. After the stages: the CTA's token rows.
template <DType WT, int BM, int kStages>
struct Smem {
    static constexpr int kA = BM * kBK;
    static constexpr int kB = kBN * b_row_bytes<WT>();
    static constexpr int kSx = BM * 4;
    static constexpr int kSw = WT == DType::fp4_e2m1 ? kBN * 4 : 0;
    static constexpr int kStage = kA + kB + kSx + kSw;
    static constexpr int kTotal = kStages * kStage + 2 * BM * 4;
};

// Eight e2m1 codes (nibble i = k i, low nibble first) → eight e4m3 bytes of the same values · 2^-6 (bit
// placement s·eem → s·000·eem·00, exact for normal and subnormal codes), as the two B registers of one
// mma: k 0..3 and k 4..7.
__device__ __forceinline__ uint2 fp4x8_to_e4m3(uint32_t u) {
    const uint32_t ev = ((u << 2) & 0x1c1c1c1cu) | ((u << 4) & 0x80808080u);  // k 0, 2, 4, 6
    const uint32_t od = ((u >> 2) & 0x1c1c1c1cu) | (u & 0x80808080u);         // k 1, 3, 5, 7
    return make_uint2(__byte_perm(ev, od, 0x5140), __byte_perm(ev, od, 0x7362));
}

// d = a·b + c, A 16×32 e4m3 (row), B 32×8 e4m3 (col), fp32 accumulators.
__device__ __forceinline__ void mma_e4m3(float (&d)[4], const uint32_t (&a)[4], uint2 b, float c0, float c1,
                                         float c2, float c3) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y), "f"(c0), "f"(c1), "f"(c2), "f"(c3));
}

// UE8M0 byte s of a packed word, times 64 (undoes the 2^-6 of fp4x8_to_e4m3): 2^(e − 127 + 6) as the
// float with exponent field e + 6 — exact for e ≤ 248 (e = 0, the subnormal 2^-127, included).
__device__ __forceinline__ float fp4_sub_scale(uint32_t packed, int s) {
    return __uint_as_float((((packed >> (8 * s)) & 0xffu) + 6u) << 23);
}

// cp.async of stage `stage` = K block kb (layout Smem: token codes, weight codes, scales).
template <DType WT, int BM, int S>
__device__ __forceinline__ void load_stage(uint8_t* smem, int stage, int kb, const GemmArgs& a,
                                           const DevWeight& w, const int32_t* s_xrow, int64_t n0, int tid) {
    using L = Smem<WT, BM, S>;
    uint8_t* sa = smem + stage * L::kStage;
    uint8_t* sb = sa + L::kA;
    const fp8g::StageParts d{sa, sb, reinterpret_cast<float*>(sb + L::kB), sb + L::kB + L::kSx};
    fp8g::load_stage_parts<WT, BM, kThreads>(d, kb, a, w, s_xrow, n0, tid);
}

// grid (ceil(N / 128), token tiles | chunk slots), kThreads. Dense: CTA y takes token rows y·BM ...;
// grouped: chunk c = {expert, start, count ≤ BM} of the pairs sorted by expert, rows p = perm[start ..],
// x row p / x_div, y row p. K % 128 == 0.
// Mma k-slot order: thread (g, t) feeds actual k = 8t .. 8t+7 of each 32-block as slots 4t..4t+3 and
// 16+4t..16+4t+3 of both operands (one 8-byte load per row), a permutation of the sum.
template <DType WT, int WM, int kStages, int kMinBlocks, int kUnrollS>
__global__ void __launch_bounds__(kThreads, kMinBlocks) fp8_mma_kernel(const __grid_constant__ GemmArgs a) {
    pdl_wait();
    constexpr int BM = 2 * WM * 16, RB = b_row_bytes<WT>();
    constexpr bool kFp4 = WT == DType::fp4_e2m1;
    using L = Smem<WT, BM, kStages>;
    extern __shared__ __align__(128) uint8_t smem[];
    int32_t* s_xrow = reinterpret_cast<int32_t*>(smem + kStages * L::kStage);
    int32_t* s_yrow = s_xrow + BM;
    const int tid = int(threadIdx.x);
    DevWeight w = a.w;
    const int valid = tile_rows(a, BM, w, s_xrow, s_yrow);
    if (valid == 0) return;  // a chunk slot past *n_chunks
    __syncthreads();
    const int64_t N = w.n_rows, K = a.K, n0 = int64_t(blockIdx.x) * kBN;
    const int nk = int(K / kBK);

    const int warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int wm = warp >> 2, wn = warp & 3;
    float acc[WM][4][4];
#pragma unroll
    for (int i = 0; i < WM; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

#pragma unroll
    for (int st = 0; st < kStages - 1; ++st) {
        if (st < nk) load_stage<WT, BM, kStages>(smem, st, st, a, w, s_xrow, n0, tid);
        cp_async_commit();
    }
    for (int kb = 0; kb < nk; ++kb) {
        cp_async_wait<kStages - 2>();
        __syncthreads();  // stage kb landed for all threads; stage kb − 1 is free again
        if (kb + kStages - 1 < nk)
            load_stage<WT, BM, kStages>(smem, (kb + kStages - 1) % kStages, kb + kStages - 1, a, w, s_xrow,
                                        n0, tid);
        cp_async_commit();
        const uint8_t* sa = smem + (kb % kStages) * L::kStage;
        const uint8_t* sb = sa + L::kA;
        const auto* sx = reinterpret_cast<const float*>(sb + L::kB);
        const uint8_t* sw = sb + L::kB + L::kSx;
        uint32_t swb[4][2];  // FP4: the sub-block scale bytes of the thread's two output columns per n8 tile
        if constexpr (kFp4)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    swb[j][h] = *reinterpret_cast<const uint32_t*>(sw + (wn * 32 + j * 8 + 2 * t + h) * 4);
        float blk[WM][4][4];
#pragma unroll kUnrollS
        for (int s = 0; s < 4; ++s) {
            uint32_t af[WM][4];
#pragma unroll
            for (int i = 0; i < WM; ++i) {
                const int r = wm * WM * 16 + i * 16 + g;
                const int off = (swz8(r, 2 * s + (t >> 1)) << 4) + (t & 1) * 8;
                const uint2 lo = *reinterpret_cast<const uint2*>(sa + r * 128 + off);
                const uint2 hi = *reinterpret_cast<const uint2*>(sa + (r + 8) * 128 + off);
                af[i][0] = lo.x, af[i][1] = hi.x, af[i][2] = lo.y, af[i][3] = hi.y;
            }
            uint2 bf[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int r = wn * 32 + j * 8 + g;
                if constexpr (kFp4)
                    bf[j] = fp4x8_to_e4m3(
                        *reinterpret_cast<const uint32_t*>(sb + r * RB + (swz4(r, s) << 4) + t * 4));
                else
                    bf[j] = *reinterpret_cast<const uint2*>(sb + r * RB + (swz8(r, 2 * s + (t >> 1)) << 4) +
                                                            (t & 1) * 8);
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                float w0 = 1.0f, w1 = 1.0f;
                if constexpr (kFp4) w0 = fp4_sub_scale(swb[j][0], s), w1 = fp4_sub_scale(swb[j][1], s);
#pragma unroll
                for (int i = 0; i < WM; ++i) {
                    float(&b)[4] = blk[i][j];
                    if constexpr (kFp4) {  // fresh product of the 32-block, promoted with its sub-scale
                        float c[4];
                        mma_e4m3(c, af[i], bf[j], 0.0f, 0.0f, 0.0f, 0.0f);
                        if (s == 0) {
                            b[0] = c[0] * w0, b[1] = c[1] * w1, b[2] = c[2] * w0, b[3] = c[3] * w1;
                        } else {
                            b[0] = fmaf(c[0], w0, b[0]), b[1] = fmaf(c[1], w1, b[1]);
                            b[2] = fmaf(c[2], w0, b[2]), b[3] = fmaf(c[3], w1, b[3]);
                        }
                    } else if (s == 0) {
                        mma_e4m3(b, af[i], bf[j], 0.0f, 0.0f, 0.0f, 0.0f);
                    } else {
                        mma_e4m3(b, af[i], bf[j], b[0], b[1], b[2], b[3]);
                    }
                }
            }
        }
        // promotion of the 128-block: · activation scale of the row (· the FP8 weight's block scale)
        float wsc = 1.0f;
        if constexpr (!kFp4)
            wsc = e8m0_to_f32_dev(__ldg(w.scale + ((w.scale_row0 + n0) / w.block_rows) * w.scale_cols + kb));
#pragma unroll
        for (int i = 0; i < WM; ++i) {
            const int r = wm * WM * 16 + i * 16 + g;
            const float x0 = sx[r] * wsc, x1 = sx[r + 8] * wsc;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                acc[i][j][0] = fmaf(blk[i][j][0], x0, acc[i][j][0]);
                acc[i][j][1] = fmaf(blk[i][j][1], x0, acc[i][j][1]);
                acc[i][j][2] = fmaf(blk[i][j][2], x1, acc[i][j][2]);
                acc[i][j][3] = fmaf(blk[i][j][3], x1, acc[i][j][3]);
            }
        }
    }
    cp_async_wait<0>();
#pragma unroll
    for (int i = 0; i < WM; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = wm * WM * 16 + i * 16 + g + 8 * h;
            if (r >= valid) continue;
            float* yr = a.y + int64_t(s_yrow[r]) * a.ldy;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int64_t col = n0 + wn * 32 + j * 8 + 2 * t;
                if (col < N) yr[col] = acc[i][j][2 * h];
                if (col + 1 < N) yr[col + 1] = acc[i][j][2 * h + 1];
            }
        }
}

template <DType WT, int WM, int S, int MINB, int U = 4>
Status launch_v(const GemmArgs& a, int64_t N, int64_t grid_y, cudaStream_t s) {
    constexpr int bytes = Smem<WT, 2 * WM * 16, S>::kTotal;
    auto* k = fp8_mma_kernel<WT, WM, S, MINB, U>;
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    launch_pdl(k, dim3(ceil_div_u(N, kBN), unsigned(grid_y)), kThreads, bytes, s, a);
    DSV4_CUDA_LAUNCH_CHECK("fp8_mma_kernel");
    return Status::ok();
}

// Tile/pipeline variants (tuning, DSV4_FP8_MMA_VARIANT; grouped calls always take 64-row tiles):
// 0 (default) = 4: 4 stages, 1 CTA/SM; 1: 3 stages, 1 CTA/SM; 2: 4 stages, 2 CTAs/SM; 3: 3 stages, 2 CTAs/SM;
// 5 / 6: as 2 / 4 with the 32-K sub-steps not unrolled (fewer registers). Dense calls take 128-row tiles in
// variants 0, 1 and 4, 64-row tiles otherwise. H200 (2026-12-02, bench/NOTES.md): 1 and 4 best for dense.
int variant() {
    static const int v = env_choice("DSV4_FP8_MMA_VARIANT", 0, 6);
    return v;
}

template <DType WT>
Status launch(const GemmArgs& a, int64_t N, int64_t rows_or_chunks, bool grouped, cudaStream_t s) {
    const int v = variant();
    auto tiles = [&](int bm) { return grouped ? rows_or_chunks : (rows_or_chunks + bm - 1) / bm; };
    switch (v) {
        case 1:
            return grouped ? launch_v<WT, 2, 3, 1>(a, N, tiles(64), s)
                           : launch_v<WT, 4, 3, 1>(a, N, tiles(128), s);
        case 0:
        case 4:
            return grouped ? launch_v<WT, 2, 4, 1>(a, N, tiles(64), s)
                           : launch_v<WT, 4, 4, 1>(a, N, tiles(128), s);
        case 3:
            return launch_v<WT, 2, 3, 2>(a, N, tiles(64), s);
        case 5:
            return launch_v<WT, 2, 4, 2, 1>(a, N, tiles(64), s);
        case 6:
            return launch_v<WT, 2, 4, 1, 1>(a, N, tiles(64), s);
        case 2:
            return launch_v<WT, 2, 4, 2>(a, N, tiles(64), s);
        default:  // env_choice keeps v in 0..6
            return error("DSV4_FP8_MMA_VARIANT={}: expected 0-6", v);
    }
}

int64_t round_up(int64_t a, int64_t b) {
    return (a + b - 1) / b * b;
}

}  // namespace

bool fp8_gemm_weight_ok(const WeightRef& w) {
    if (w.n_rows <= 0 || w.n_cols <= 0 || w.n_cols % kBK != 0 || !w.scale ||
        reinterpret_cast<uintptr_t>(w.data) % 16 != 0)
        return false;
    if (w.dtype == DType::f8_e4m3)
        return w.block_rows == 128 && w.block_cols == 128 && w.scale_row0 % 128 == 0 &&
               w.scale_cols == w.n_cols / 128;
    if (w.dtype == DType::fp4_e2m1)
        return w.block_rows == 1 && w.block_cols == 32 && w.scale_cols == w.n_cols / 32 &&
               reinterpret_cast<uintptr_t>(w.scale) % 4 == 0;
    return false;
}

int64_t fp8_gemm_work_bytes(int64_t rows, int64_t K) {
    return round_up(rows * K, 256) + (K / 128) * rows * 4 + 256;  // + 256: base alignment slack
}

Status fp8_gemm_q(const uint8_t* xq, const float* xs, int64_t lds, int64_t n, const WeightRef& w, float* y,
                  int64_t ldy, cudaStream_t s) {
    if (n <= 0) return Status::ok();
    if (!fp8_gemm_weight_ok(w) || lds < n || ldy < w.n_rows || ceil_div_u(n, 64) > 65535u)
        return error("fp8_gemm: unsupported call (n={}, N={}, K={}, lds={}, ldy={}, dtype {})", n, w.n_rows,
                     w.n_cols, lds, ldy, dtype_name(w.dtype));
    GemmArgs a{xq, xs, lds, n, 1, w.n_cols, DevWeight::from(w), nullptr, nullptr, nullptr, nullptr, y, ldy};
    if (fp8g::fp8_wgmma_enabled()) return fp8g::fp8_wgmma(a, n, false, s);
    if (w.dtype == DType::fp4_e2m1) return launch<DType::fp4_e2m1>(a, w.n_rows, n, false, s);
    return launch<DType::f8_e4m3>(a, w.n_rows, n, false, s);
}

Status fp8_gemm(const float* x, int64_t n, int64_t ldx, const WeightRef& w, float* y, int64_t ldy, void* work,
                cudaStream_t s) {
    if (n <= 0) return Status::ok();
    const int64_t K = w.n_cols;
    if (!fp8_gemm_weight_ok(w) || ldx < K)
        return error("fp8_gemm: unsupported call (n={}, N={}, K={}, ldx={}, dtype {})", n, w.n_rows, K, ldx,
                     dtype_name(w.dtype));
    auto* codes = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(work) + 255) & ~uintptr_t(255));
    auto* xs = reinterpret_cast<float*>(codes + round_up(n * K, 256));
    DSV4_TRY(fp8_quantize_act(x, n, ldx, K, n, codes, xs, s));
    return fp8_gemm_q(codes, xs, n, n, w, y, ldy, s);
}

Status fp8_gemm_grouped_q(const uint8_t* xq, const float* xs, int64_t lds, int64_t x_div,
                          const DevWeight* table, const WeightRef& proto, const int32_t* perm,
                          const int32_t* chunks, const int32_t* n_chunks, int64_t max_chunks, float* y,
                          int64_t ldy, cudaStream_t s) {
    if (max_chunks <= 0) return Status::ok();
    if (!fp8_gemm_weight_ok(proto) || x_div < 1 || ldy < proto.n_rows || max_chunks > 65535)
        return error("fp8_gemm_grouped: unsupported call (N={}, K={}, x_div={}, ldy={}, {} chunks, dtype {})",
                     proto.n_rows, proto.n_cols, x_div, ldy, max_chunks, dtype_name(proto.dtype));
    GemmArgs a{xq,    xs,   lds,    0,        x_div, proto.n_cols, DevWeight::from(proto),
               table, perm, chunks, n_chunks, y,     ldy};
    if (fp8g::fp8_wgmma_enabled()) return fp8g::fp8_wgmma(a, max_chunks, true, s);
    if (proto.dtype == DType::fp4_e2m1) return launch<DType::fp4_e2m1>(a, proto.n_rows, max_chunks, true, s);
    return launch<DType::f8_e4m3>(a, proto.n_rows, max_chunks, true, s);
}

}  // namespace dsv4::cuda
