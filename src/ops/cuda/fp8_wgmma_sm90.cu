// Block-scaled FP8 GEMM on Hopper's warpgroup tensor cores (wgmma.mma_async, issue 6; hopper-kernels.md §1):
// the same contract as the mma.sync kernel of fp8_gemm_sm90.cu (y = act_quant(x)·Wᵀ in fp32, W FP8 e4m3 +
// 128x128 UE8M0 or packed FP4 e2m1 + UE8M0 per 32, dense or grouped over the expert chunk table), about
// twice the tensor throughput per SM. Note: docs/kernels/fp8_gemm.md.
//
// CTA: 2 warpgroups × 64 weight rows (the wgmma M side) × NT token rows (the N side), 4-stage cp.async
// pipeline of 128-K blocks. Token codes are staged in the 128-byte-swizzled K-major layout wgmma reads
// through a shared-memory descriptor. FP8 weights are read the same way; FP4 weights are expanded into the
// A registers: per weight row and 32-K sub-block a byte table (prmt lookup) maps the nibble to an e4m3 of
// value · 2^(6 − v), v = how many powers of two its UE8M0 sub-scale lies below the row's largest in the
// 128-block, so the four sub-blocks share one fp32 promotion (exact while v ≤ 14 for every non-zero
// sub-block; beyond that the small sub-block rounds to e4m3 subnormals, error ≤ 2^-15 of the block's
// largest values). Each 128-K block runs 4 wgmma k32 into a fresh accumulator, then is promoted into the
// fp32 sum with the activation scale of its token and the weight scale.
#include <cuda_fp8.h>

#include <atomic>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/fp8_gemm.cuh"

namespace dsv4::cuda {
namespace fp8g {

namespace {

constexpr int kThreads = 256;        // 2 warpgroups
constexpr int kWRows = kStageWRows;  // weight rows per CTA: 64 per warpgroup
constexpr int kBK = 128;             // K per stage = one activation scale block
constexpr int kStages = 4;
constexpr int kTabEntries = 16;  // v = 0 .. 15 (15: everything that far below rounds as 15)

constexpr int round_up_c(int a, int b) {
    return (a + b - 1) / b * b;
}

// One stage: token codes [NT][128] (swizzled, offset 0), weight codes [128][128 | 64] (offset kB), the
// activation scales of the NT tokens and, for FP4, the four UE8M0 sub-scales of each weight row. Stages are
// 1024-byte aligned (the swizzle pattern's period). After the stages: x / y rows of the tile, FP4 tables.
template <DType WT, int NT>
struct Layout {
    static constexpr bool kFp4 = WT == DType::fp4_e2m1;
    static constexpr int kRB = kFp4 ? kBK / 2 : kBK;
    static constexpr int kB = NT * kBK;
    static constexpr int kA = kWRows * kRB;
    static constexpr int kSx = NT * 4;
    static constexpr int kSw = kFp4 ? kWRows * 4 : 0;
    static constexpr int kStage = round_up_c(kB + kA + kSx + kSw, 1024);
    static constexpr int kTotal = kStages * kStage + 2 * NT * 4 + kTabEntries * 8 + 1024;  // + align slack
    static_assert(kB % 1024 == 0 && kA % 1024 == 0, "wgmma tiles must start on 1024 bytes");
};

// Shared-memory matrix descriptor of a K-major tile with 128-byte rows in the 128-byte swizzle: start
// address, leading offset 1 (unused for this layout), stride 1024 bytes between 8-row groups, swizzle mode 1.
// The k-th 32-byte step of the rows is the same descriptor + 2·k (the address field counts 16 bytes).
__device__ __forceinline__ uint64_t sw128_desc(const void* p) {
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
    return uint64_t((a & 0x3ffffu) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) |
           (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// cp.async writes go through the generic proxy, wgmma reads shared memory through the async proxy.
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// The accumulators are written by the asynchronous wgmma: no read of them may move above the wait.
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// d (+)= A·Bᵀ over one k32 step, A 64×32 e4m3 from registers (rs) or shared memory (ss), B N×32 e4m3 from
// shared memory; accumulate = 0 overwrites d. Fragments: d[4j + 2i + h] = (row 16·warp + g + 8i, column
// 8j + 2q + h); a[2c + i] = row 16·warp + g + 8i, k 16c + 4q .. +3 (g = lane / 4, q = lane % 4).
// Operands of the wgmma wrappers below: the register names %0..%31 / %0..%63 of the accumulators, and the
// accumulators d[i .. i+7].
#define DSV4_WG_R32                                                                                        \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
    "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define DSV4_WG_R64                                                                           \
    DSV4_WG_R32                                                                               \
    ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, " \
    "%49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define DSV4_WG_D8(i)                                                                           \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
        "+f"(d[i + 6]), "+f"(d[i + 7])
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t db,
                                             int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {" DSV4_WG_R32
        "}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1;\n}\n"
        : DSV4_WG_D8(0), DSV4_WG_D8(8), DSV4_WG_D8(16), DSV4_WG_D8(24)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {" DSV4_WG_R32
        "}, "
        "%32, %33, p, 1, 1;\n}\n"
        : DSV4_WG_D8(0), DSV4_WG_D8(8), DSV4_WG_D8(16), DSV4_WG_D8(24)
        : "l"(da), "l"(db), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t db,
                                              int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" DSV4_WG_R64
        "}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
        : DSV4_WG_D8(0), DSV4_WG_D8(8), DSV4_WG_D8(16), DSV4_WG_D8(24), DSV4_WG_D8(32), DSV4_WG_D8(40),
          DSV4_WG_D8(48), DSV4_WG_D8(56)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[64], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" DSV4_WG_R64
        "}, "
        "%64, %65, p, 1, 1;\n}\n"
        : DSV4_WG_D8(0), DSV4_WG_D8(8), DSV4_WG_D8(16), DSV4_WG_D8(24), DSV4_WG_D8(32), DSV4_WG_D8(40),
          DSV4_WG_D8(48), DSV4_WG_D8(56)
        : "l"(da), "l"(db), "r"(accumulate));
}

#undef DSV4_WG_D8
#undef DSV4_WG_R32
#undef DSV4_WG_R64

template <int NT>
__device__ __forceinline__ void wgmma_rs(float (&d)[NT / 2], const uint32_t (&a)[4], uint64_t db, int acc) {
    if constexpr (NT == 64)
        wgmma_rs_n64(d, a, db, acc);
    else
        wgmma_rs_n128(d, a, db, acc);
}
template <int NT>
__device__ __forceinline__ void wgmma_ss(float (&d)[NT / 2], uint64_t da, uint64_t db, int acc) {
    if constexpr (NT == 64)
        wgmma_ss_n64(d, da, db, acc);
    else
        wgmma_ss_n128(d, da, db, acc);
}

// Eight e2m1 codes (nibble i = k i of the fragment: k 4q..4q+3, then 16+4q..16+4q+3) → the two A registers,
// magnitudes looked up in the sub-block's table (codes 0-3 in tab.x, 4-7 in tab.y), signs placed as bit 7.
__device__ __forceinline__ uint2 fp4x8_lookup(uint32_t u, uint2 tab) {
    const uint32_t mag_lo = __byte_perm(tab.x, tab.y, u & 0x7777u);
    const uint32_t mag_hi = __byte_perm(tab.x, tab.y, (u >> 16) & 0x7777u);
    const uint32_t s_ev = (u << 4) & 0x80808080u;  // signs of nibbles 0, 2, 4, 6 as bytes 0..3
    const uint32_t s_od = u & 0x80808080u;         // 1, 3, 5, 7
    return make_uint2(mag_lo | __byte_perm(s_ev, s_od, 0x5140), mag_hi | __byte_perm(s_ev, s_od, 0x7362));
}

// 2^(e − 127) · 2^-6 (undoes the 2^6 of the tables) for the largest UE8M0 sub-scale e of a row's block.
__device__ __forceinline__ float fp4_block_scale(uint32_t e) {
    return e > 6 ? __uint_as_float((e - 6) << 23) : ldexpf(1.0f, int(e) - 133);  // e = 0: 2^-127 too
}

// cp.async of K block kb into stage st (layout Layout: token codes first, then weight codes, scales).
template <DType WT, int NT>
__device__ __forceinline__ void load_stage(uint8_t* st, int kb, const GemmArgs& a, const DevWeight& w,
                                           const int32_t* s_xrow, int64_t n0, int tid) {
    using L = Layout<WT, NT>;
    const StageParts d{st, st + L::kB, reinterpret_cast<float*>(st + L::kB + L::kA),
                       st + L::kB + L::kA + L::kSx};
    load_stage_parts<WT, NT, kThreads>(d, kb, a, w, s_xrow, n0, tid);
}

// grid (ceil(N / 128), token tiles | chunk slots), kThreads, Layout::kTotal bytes of shared memory.
template <DType WT, int NT, int kMinBlocks, bool kFine>
__global__ void __launch_bounds__(kThreads, kMinBlocks) fp8_wgmma_kernel(const __grid_constant__ GemmArgs a) {
    pdl_wait();
    using L = Layout<WT, NT>;
    constexpr int ND = NT / 2;
    extern __shared__ uint8_t smem_raw[];
    uint8_t* smem =
        reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    int32_t* s_xrow = reinterpret_cast<int32_t*>(smem + kStages * L::kStage);
    int32_t* s_yrow = s_xrow + NT;
    auto* s_tab = reinterpret_cast<uint2*>(s_yrow + NT);
    const int tid = int(threadIdx.x);
    DevWeight w = a.w;
    const int valid = tile_rows(a, NT, w, s_xrow, s_yrow);
    if (valid == 0) return;  // a chunk slot past *n_chunks
    if constexpr (L::kFp4)
        if (tid < kTabEntries * 8) {  // byte c of table v: e4m3 of |e2m1 code c| · 2^(6 − v)
            const int v = tid >> 3, c = tid & 7;
            const float mag = c < 2 ? 0.5f * float(c) : float((2 + (c & 1)) << ((c >> 1) - 1)) * 0.5f;
            reinterpret_cast<uint8_t*>(s_tab)[tid] =
                uint8_t(__nv_cvt_float_to_fp8(ldexpf(mag, 6 - v), __NV_SATFINITE, __NV_E4M3));
        }
    __syncthreads();
    const int64_t N = w.n_rows, K = a.K, n0 = int64_t(blockIdx.x) * kWRows;
    const int nk = int(K / kBK);
    const int wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, q = lane & 3;
    const int r0 = wg * 64 + warp * 16 + g;  // the thread's two weight rows of the tile: r0, r0 + 8

    float acc[ND], blk[ND];
#pragma unroll
    for (int i = 0; i < ND; ++i) acc[i] = 0.0f;

    // acc += blk · activation scale of the column · weight scale of the row (blk's group has completed).
    auto promote = [&](int kb, const float2 ws) {
        fence_regs(blk);
        const auto* sx = reinterpret_cast<const float*>(smem + (kb % kStages) * L::kStage + L::kB + L::kA);
#pragma unroll
        for (int j = 0; j < NT / 8; ++j) {
            const float2 x = *reinterpret_cast<const float2*>(sx + 8 * j + 2 * q);
            acc[4 * j + 0] = fmaf(blk[4 * j + 0], x.x * ws.x, acc[4 * j + 0]);
            acc[4 * j + 1] = fmaf(blk[4 * j + 1], x.y * ws.x, acc[4 * j + 1]);
            acc[4 * j + 2] = fmaf(blk[4 * j + 2], x.x * ws.y, acc[4 * j + 2]);
            acc[4 * j + 3] = fmaf(blk[4 * j + 3], x.y * ws.y, acc[4 * j + 3]);
        }
    };
    // K block kb of stage kb % kStages into blk (4 wgmma k32); FP4: A registers in af. Returns the weight
    // scales of rows r0, r0 + 8.
    auto issue = [&](int kb) {
        float2 ws;
        const uint8_t* sb = smem + (kb % kStages) * L::kStage;
        const uint8_t* sa = sb + L::kB;
        const uint8_t* sw = sa + L::kA + L::kSx;
        const uint64_t db = sw128_desc(sb);
        const uint64_t da = sw128_desc(sa + wg * 64 * kBK);  // FP8 weights
        uint32_t af[4][4];                                   // FP4 weights, expanded
        if constexpr (L::kFp4) {
            const uint32_t e0 = *reinterpret_cast<const uint32_t*>(sw + r0 * 4);
            const uint32_t e1 = *reinterpret_cast<const uint32_t*>(sw + (r0 + 8) * 4);
            const uint32_t m0 = __vmaxu4(e0, e0 >> 16), m1 = __vmaxu4(e1, e1 >> 16);
            const uint32_t emax0 = max(m0 & 0xffu, (m0 >> 8) & 0xffu),
                           emax1 = max(m1 & 0xffu, (m1 >> 8) & 0xffu);
            ws = make_float2(fp4_block_scale(emax0), fp4_block_scale(emax1));
#pragma unroll
            for (int s = 0; s < 4; ++s) {
                const uint2 t0 = s_tab[min(emax0 - ((e0 >> (8 * s)) & 0xffu), uint32_t(kTabEntries - 1))];
                const uint2 t1 = s_tab[min(emax1 - ((e1 >> (8 * s)) & 0xffu), uint32_t(kTabEntries - 1))];
                const uint8_t* p0 = sa + r0 * 64 + (swz4(r0, s) << 4) + 2 * q;
                const uint8_t* p1 = sa + (r0 + 8) * 64 + (swz4(r0 + 8, s) << 4) + 2 * q;
                const uint32_t u0 = uint32_t(*reinterpret_cast<const uint16_t*>(p0)) |
                                    (uint32_t(*reinterpret_cast<const uint16_t*>(p0 + 8)) << 16);
                const uint32_t u1 = uint32_t(*reinterpret_cast<const uint16_t*>(p1)) |
                                    (uint32_t(*reinterpret_cast<const uint16_t*>(p1 + 8)) << 16);
                const uint2 x0 = fp4x8_lookup(u0, t0), x1 = fp4x8_lookup(u1, t1);
                af[s][0] = x0.x, af[s][1] = x1.x, af[s][2] = x0.y, af[s][3] = x1.y;
            }
        } else {
            const float sc = e8m0_to_f32_dev(
                __ldg(w.scale + ((w.scale_row0 + n0 + wg * 64) / w.block_rows) * w.scale_cols + kb));
            ws = make_float2(sc, sc);
        }
        // k32 step s into blk (accumulate = 0: overwrite)
        auto mma = [&](int s, int accumulate) {
            if constexpr (L::kFp4)
                wgmma_rs<NT>(blk, af[s], db + 2 * s, accumulate);
            else
                wgmma_ss<NT>(blk, da + 2 * s, db + 2 * s, accumulate);
        };
        if constexpr (kFine) {  // each step on its own, promoted at once
#pragma unroll
            for (int s = 0; s < 4; ++s) {
                wgmma_fence();
                mma(s, 0);
                wgmma_commit();
                wgmma_wait<0>();
                promote(kb, ws);
            }
        } else {  // the block's 4 steps in one group; the caller waits and promotes
            wgmma_fence();
#pragma unroll
            for (int s = 0; s < 4; ++s) mma(s, s);
            wgmma_commit();
        }
        return ws;
    };
#pragma unroll
    for (int st = 0; st < kStages - 1; ++st) {
        if (st < nk) load_stage<WT, NT>(smem + st * L::kStage, st, a, w, s_xrow, n0, tid);
        cp_async_commit();
    }
    for (int kb = 0; kb < nk; ++kb) {
        cp_async_wait<kStages - 2>();
        fence_proxy_async();
        __syncthreads();  // stage kb landed for all threads; every warpgroup is done with stage kb - 1
        if (kb + kStages - 1 < nk)
            load_stage<WT, NT>(smem + ((kb + kStages - 1) % kStages) * L::kStage, kb + kStages - 1, a, w,
                               s_xrow, n0, tid);
        cp_async_commit();
        const float2 ws = issue(kb);
        if constexpr (!kFine) {
            wgmma_wait<0>();
            promote(kb, ws);
        }
    }
    cp_async_wait<0>();
#pragma unroll
    for (int j = 0; j < NT / 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int col = 8 * j + 2 * q + h;
            if (col >= valid) continue;
            float* yr = a.y + int64_t(s_yrow[col]) * a.ldy;
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int64_t row = n0 + r0 + 8 * i;
                if (row < N) yr[row] = acc[4 * j + 2 * i + h];
            }
        }
}

template <DType WT, int NT, int MINB, bool FINE = false>
Status launch(const GemmArgs& a, int64_t grid_y, cudaStream_t s) {
    constexpr int bytes = Layout<WT, NT>::kTotal;
    auto* k = fp8_wgmma_kernel<WT, NT, MINB, FINE>;
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    launch_pdl(k, dim3(ceil_div_u(a.w.n_rows, kWRows), unsigned(grid_y)), kThreads, bytes, s, a);
    DSV4_CUDA_LAUNCH_CHECK("fp8_wgmma_kernel");
    return Status::ok();
}

// DSV4_FP8_WGMMA: 0 (default) = the mma.sync kernel (fp32-exact accumulation); 1 = dense 128-token tiles,
// grouped 128-pair chunks in 128-token tiles, 1 CTA/SM (fastest on H200, bench/NOTES.md); 2 = dense
// 64-token tiles, 2 CTAs/SM; 3 = grouped 64-pair chunks, 2 CTAs/SM; 4 = grouped 64-pair chunks, 1 CTA/SM;
// 5 = as 1 with every k32 wgmma promoted on its own (more accurate, slower).
// (Overlapping block kb's wgmma with the promotion of kb - 1 in one warpgroup was tried: ptxas serializes
// wgmma whose accumulators are read inside a pipeline stage, C7514.)
constexpr int kMaxMode = 5;
std::atomic<int> g_mode_override{-1};

int wgmma_mode() {
    static const int env = env_choice("DSV4_FP8_WGMMA", 0, kMaxMode);
    const int o = g_mode_override.load(std::memory_order_relaxed);
    return o >= 0 ? o : env;
}

template <DType WT>
Status launch_dt(const GemmArgs& a, int64_t rows_or_chunks, bool grouped, cudaStream_t s) {
    const int m = wgmma_mode();
    if (grouped) {
        if (m == 3) return launch<WT, 64, 2>(a, rows_or_chunks, s);
        if (m == 4) return launch<WT, 64, 1>(a, rows_or_chunks, s);
        if (m == 5) return launch<WT, 128, 1, true>(a, rows_or_chunks, s);
        return launch<WT, 128, 1>(a, rows_or_chunks, s);
    }
    if (m == 2) return launch<WT, 64, 2>(a, (rows_or_chunks + 63) / 64, s);
    if (m == 5) return launch<WT, 128, 1, true>(a, (rows_or_chunks + 127) / 128, s);
    return launch<WT, 128, 1>(a, (rows_or_chunks + 127) / 128, s);
}

}  // namespace

bool fp8_wgmma_enabled() {
    return wgmma_mode() != 0;
}

Status fp8_wgmma(const GemmArgs& a, int64_t rows_or_chunks, bool grouped, cudaStream_t s) {
    if (a.w.dtype == DType::fp4_e2m1) return launch_dt<DType::fp4_e2m1>(a, rows_or_chunks, grouped, s);
    return launch_dt<DType::f8_e4m3>(a, rows_or_chunks, grouped, s);
}

}  // namespace fp8g

void fp8_gemm_set_kernel(int mode) {
    fp8g::g_mode_override.store(mode >= 0 && mode <= fp8g::kMaxMode ? mode : -1, std::memory_order_relaxed);
}

int64_t fp8_gemm_group_rows() {
    const int m = fp8g::wgmma_mode();
    return m == 1 || m == 2 || m == 5 ? 128 : 64;
}

}  // namespace dsv4::cuda
