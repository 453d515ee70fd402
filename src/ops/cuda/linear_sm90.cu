// Linear y = x·Wᵀ over weights in their stored formats (f32/bf16/f16, FP8 e4m3 + 128x128 UE8M0,
// packed FP4 + per-32 UE8M0), fp32 accumulation throughout. Two paths: the GEMV kernel (one warp per
// output row, up to kTok tokens per pass, weights dequantized in registers) for few tokens, and for
// n ≥ kGemmMinTokens an exact dequantization of W into an f32 scratch followed by a true-fp32 cuBLAS
// SGEMM (no TF32). Routed experts take the same two paths per expert. Tested against cpu::linear in
// tests/ops (op "linear": op_cases.cpp, op_cases_linear.cpp); note: docs/kernels/linear.md.
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kWarps = 8;      // rows per CTA
constexpr int kLinearTok = 8;  // token rows per pass

// Per format: elements per 16-byte chunk, the chunk's raw load, its scale, its decoder, and the scalar
// decoder (shapes the 16-byte path cannot take).
template <DType DT>
struct Fmt;

struct Unscaled {
    __device__ static float scale(const DevWeight&, int64_t, int64_t) { return 1.0f; }
};
struct BlockScaled {
    __device__ static float scale(const DevWeight& w, int64_t r, int64_t k) {
        return e8m0_to_f32_dev(
            __ldg(w.scale + ((w.scale_row0 + r) / w.block_rows) * w.scale_cols + k / w.block_cols));
    }
};

template <>
struct Fmt<DType::f32> : Unscaled {
    static constexpr int kElems = 4;
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) * 4));
    }
    __device__ static void decode(uint4 q, float, float* v) {
        v[0] = __uint_as_float(q.x), v[1] = __uint_as_float(q.y), v[2] = __uint_as_float(q.z),
        v[3] = __uint_as_float(q.w);
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const float*>(w.data) + r * w.n_cols + k);
    }
};

template <>
struct Fmt<DType::bf16> : Unscaled {
    static constexpr int kElems = 8;
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) * 2));
    }
    __device__ static void decode(uint4 q, float, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
            v[2 * i] = __uint_as_float(u[i] << 16), v[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        return bf16_bits_to_f32(__ldg(reinterpret_cast<const uint16_t*>(w.data) + r * w.n_cols + k));
    }
};

template <>
struct Fmt<DType::f16> : Unscaled {
    static constexpr int kElems = 8;
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) * 2));
    }
    __device__ static void decode(uint4 q, float, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            __half2_raw hr;
            hr.x = uint16_t(u[i] & 0xffffu), hr.y = uint16_t(u[i] >> 16);
            float2 f = __half22float2(__half2(hr));
            v[2 * i] = f.x, v[2 * i + 1] = f.y;
        }
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        __half_raw hr;
        hr.x = __ldg(reinterpret_cast<const uint16_t*>(w.data) + r * w.n_cols + k);
        return __half2float(__half(hr));
    }
};

template <>
struct Fmt<DType::f8_e4m3> : BlockScaled {
    static constexpr int kElems = 16;  // needs block_cols % 16 == 0: one scale per chunk
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + r * w.n_cols + k));
    }
    __device__ static void decode(uint4 q, float s, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            float2 lo = e4m3x2_to_f32(uint16_t(u[i] & 0xffffu)), hi = e4m3x2_to_f32(uint16_t(u[i] >> 16));
            v[4 * i] = lo.x * s, v[4 * i + 1] = lo.y * s, v[4 * i + 2] = hi.x * s, v[4 * i + 3] = hi.y * s;
        }
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        return e4m3_to_f32_dev(__ldg(w.data + r * w.n_cols + k)) * scale(w, r, k);
    }
};

template <>
struct Fmt<DType::fp4_e2m1> : BlockScaled {
    static constexpr int kElems = 32;  // 16 bytes = 32 codes = one per-32 scale block
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) / 2));
    }
    __device__ static void decode(uint4 q, float s, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j) v[8 * i + j] = e2m1_to_f32_dev(u[i] >> (4 * j)) * s;
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        uint8_t b = __ldg(w.data + (r * w.n_cols + k) / 2);  // n_cols is even for packed FP4
        return e2m1_to_f32_dev((k & 1) ? (b >> 4) : (b & 15u)) * scale(w, r, k);
    }
};

// Scalar fallback for shapes the 16-byte path cannot take (K not a multiple of a chunk, unaligned x or
// scale blocks): grid (ceil(N / kWarps), ceil(n / kTok)); warp = one output row, lanes split K; token rows
// t0 .. t0+kTok−1. Grouped (chunks non-null): blockIdx.y is chunk c = {expert, start, count} of the pairs
// sorted by expert; its rows are perm[start ..] and its weight table[expert].
template <DType DT, int kTok>
__global__ void __launch_bounds__(kWarps * 32)
    linear_kernel(const float* __restrict__ x, int64_t n, int64_t ldx, int64_t x_div, DevWeight w,
                  const DevWeight* __restrict__ table, const int32_t* __restrict__ perm,
                  const int32_t* __restrict__ chunks, const int32_t* __restrict__ n_chunks,
                  float* __restrict__ y, int64_t ldy) {
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    RowBlock rb;
    if (!row_block(n, kTok, table, perm, chunks, n_chunks, w, rb)) return;  // block-uniform
    const int n_valid = rb.n_valid;
    int64_t row[kTok];
#pragma unroll
    for (int t = 0; t < kTok; ++t) {
        const int i = t < n_valid ? t : 0;
        row[t] = chunks ? int64_t(rb.prow[i]) : rb.t0 + i;
    }
    if (r >= w.n_rows) return;  // warp-uniform
    const int64_t K = w.n_cols;
    float acc[kTok];
    const float* xr[kTok];
#pragma unroll
    for (int t = 0; t < kTok; ++t) acc[t] = 0.0f, xr[t] = x + (row[t] / x_div) * ldx;
    for (int64_t k = lane; k < K; k += 32) {
        const float v = Fmt<DT>::one(w, r, k);
#pragma unroll
        for (int t = 0; t < kTok; ++t)
            if (t < n_valid) acc[t] += v * __ldg(xr[t] + k);
    }
#pragma unroll
    for (int t = 0; t < kTok; ++t) {
        float v = warp_sum(acc[t]);
        if (lane == 0 && t < n_valid) y[row[t] * ldy + r] = v;
    }
}

// ------------------------------------------------------------------ GEMV path (few tokens), vectorized
// The memory-bound kernel of decode (hopper-kernels.md §2, CUDA-core version, exact fp32 products). A CTA
// of kGemvThreads threads is split into groups of G threads (G = 32..256, chosen so that one 16-byte chunk
// per row per thread covers K); a group owns gemv_rows() consecutive rows and its threads stride over the
// rows' 16-byte chunks. Each thread loads the chunk of all its rows at once (and prefetches the next),
// decodes it in sub-blocks of 4 values, and reuses each float4 of x for all the rows: x traffic from L1 is
// 1/gemv_rows() of a warp-per-row kernel, which bound the FP4 case. Partial sums are reduced in a fixed
// order (warp shuffles, then the group's warps through shared memory): deterministic.
// Decoded values are unscaled codes (FP4: code·2^−6 through the exact e2m1 → e4m3 bit placement, then the
// hardware e4m3x2 → f16x2 conversion); a chunk's partial sum is multiplied by its power-of-two scale, which
// equals the sum of the dequantized products exactly (only the summation order differs from cpu::linear).
constexpr int kGemvThreads = 256;
// Rows per group: 4 (each float4 of x serves 4 rows); FP4 and 8-token passes take 2, as more would keep
// too many decoded values live (register spills).
template <DType DT, int T>
constexpr int gemv_rows() {
    return DT == DType::fp4_e2m1 || T == 8 ? 2 : 4;
}

__device__ __forceinline__ float2 e4m3x2_lo(uint32_t u) {
    return e4m3x2_to_f32(uint16_t(u & 0xffffu));
}
__device__ __forceinline__ float2 e4m3x2_hi(uint32_t u) {
    return e4m3x2_to_f32(uint16_t(u >> 16));
}

template <int I, int N, typename Fn>
__device__ __forceinline__ void static_for(Fn& fn) {
    if constexpr (I < N) {
        fn(std::integral_constant<int, I>{});
        static_for<I + 1, N>(fn);
    }
}

template <DType DT>
struct Gemv;
template <>
struct Gemv<DType::f32> {
    static constexpr int kSub = 1;  // sub-blocks of 4 values per 16-byte chunk
    __device__ static float mult(const uint8_t*, int64_t) { return 1.0f; }
    template <int S>
    __device__ static void sub(const uint4& q, float* v) {
        v[0] = __uint_as_float(q.x), v[1] = __uint_as_float(q.y), v[2] = __uint_as_float(q.z),
        v[3] = __uint_as_float(q.w);
    }
};
template <>
struct Gemv<DType::bf16> {
    static constexpr int kSub = 2;
    __device__ static float mult(const uint8_t*, int64_t) { return 1.0f; }
    template <int S>
    __device__ static void sub(const uint4& q, float* v) {
        const uint32_t a = word<2 * S>(q), b = word<2 * S + 1>(q);
        v[0] = __uint_as_float(a << 16), v[1] = __uint_as_float(a & 0xffff0000u);
        v[2] = __uint_as_float(b << 16), v[3] = __uint_as_float(b & 0xffff0000u);
    }
};
template <>
struct Gemv<DType::f16> {
    static constexpr int kSub = 2;
    __device__ static float mult(const uint8_t*, int64_t) { return 1.0f; }
    template <int S>
    __device__ static void sub(const uint4& q, float* v) {
        const uint32_t u[2] = {word<2 * S>(q), word<2 * S + 1>(q)};
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            __half2_raw hr;
            hr.x = uint16_t(u[i] & 0xffffu), hr.y = uint16_t(u[i] >> 16);
            const float2 f = __half22float2(__half2(hr));
            v[2 * i] = f.x, v[2 * i + 1] = f.y;
        }
    }
};
template <>
struct Gemv<DType::f8_e4m3> {
    static constexpr int kSub = 4;
    __device__ static float mult(const uint8_t* srow, int64_t kb) {
        return e8m0_to_f32_dev(__ldg(srow + kb));
    }
    template <int S>
    __device__ static void sub(const uint4& q, float* v) {
        const uint32_t u = word<S>(q);
        const float2 a = e4m3x2_lo(u), b = e4m3x2_hi(u);
        v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
    }
};
template <>
struct Gemv<DType::fp4_e2m1> {
    static constexpr int kSub = 8;
    // decoded codes carry 2^−6 (e4m3 placement): the multiplier puts it back (exact, a power of two)
    __device__ static float mult(const uint8_t* srow, int64_t kb) {
        return e8m0_to_f32_dev(__ldg(srow + kb)) * 64.0f;
    }
    // e2m1 nibble s·eem → e4m3 byte s·000·eem·00 = the same value · 2^−6 (normal and subnormal codes);
    // even nibbles sit in the low half of each byte, odd nibbles in the high half.
    __device__ static uint32_t even(uint32_t u) {
        return ((u << 2) & 0x1c1c1c1cu) | ((u << 4) & 0x80808080u);
    }
    __device__ static uint32_t odd(uint32_t u) { return ((u >> 2) & 0x1c1c1c1cu) | (u & 0x80808080u); }
    template <int S>
    __device__ static void sub(const uint4& q, float* v) {
        const uint32_t u = word<S / 2>(q), ev = even(u), od = odd(u);
        // nibbles 0..3 (S even) or 4..7 (S odd) of the word, in order
        const float2 e = (S & 1) ? e4m3x2_hi(ev) : e4m3x2_lo(ev), o = (S & 1) ? e4m3x2_hi(od) : e4m3x2_lo(od);
        v[0] = e.x, v[1] = o.x, v[2] = e.y, v[3] = o.y;
    }
};

// grid (ceil(N / (kGemvThreads / G · gemv_rows)), token blocks of T or chunk slots). Grouped (chunks
// non-null): blockIdx.y is chunk c = {expert, start, count} of the pairs sorted by expert; its rows are
// perm[start ..] (any count: passes of T) and its weight table[expert].
// bx: the CTA's index among those of this weight (blockIdx.x, or its offset inside a multi-weight launch).
// Batch-1 passes (T == 1, SX) read x from shared memory: lane j's chunk c = j + i·G needs the E floats
// x[c·E ..], so a warp's float4 loads of x from global memory are E·4 bytes apart (for FP4, 32 lines per
// load: the L1 bound the FP4 experts at ~600 GB/s). The pass's x row is staged once per CTA, float4 unit u
// at u ^ ((u >> 3) & 7): the 8 lanes of a quarter-warp (consecutive chunks, one sub-block S) then hit 8
// different 16-byte bank groups for every E (checked for E/4 = 1, 2, 4, 8).
constexpr int64_t kGemvSxMaxBytes = 96 << 10;  // x rows up to 24576 floats; longer ones read global memory
__device__ __forceinline__ int sx_slot(int u) {
    return u ^ ((u >> 3) & 7);
}

template <DType DT, int T, bool SX>
__device__ __forceinline__ void gemv_body(const float* __restrict__ x, int64_t n, int64_t ldx, int64_t x_div,
                                          DevWeight w, const DevWeight* __restrict__ table,
                                          const int32_t* __restrict__ perm,
                                          const int32_t* __restrict__ chunks,
                                          const int32_t* __restrict__ n_chunks, float* __restrict__ y,
                                          int64_t ldy, int G, unsigned bx) {
    using F = Gemv<DT>;
    constexpr int R = gemv_rows<DT, T>(), E = Fmt<DT>::kElems;
    __shared__ float red[kGemvThreads / 32][R][T];
    extern __shared__ float4 sx[];  // SX: the pass's x row [K / 4] (swizzled, sx_slot)
    // G is a power of two (gemv_group_threads): shifts, not the ~20-instruction integer divisions (a batch-1
    // thread streams only ~256 weights, so per-thread setup counts: ncu saw ~7 instructions per weight)
    const int gsh = __ffs(G) - 1;
    const int tid = int(threadIdx.x), grp = tid >> gsh, j = tid & (G - 1);
    if (chunks) pdl_wait();  // grouped: the chunk table is the previous kernel's output
    RowBlock rb;
    if (!row_block(n, T, table, perm, chunks, n_chunks, w, rb)) return;  // block-uniform
    const int n_valid = rb.n_valid;
    const int64_t t0 = rb.t0;
    const int32_t* prow = rb.prow;
    const int64_t N = w.n_rows, cpr = w.n_cols / E;
    const int64_t r0 = (int64_t(bx) * (kGemvThreads >> gsh) + grp) * R;
    int64_t rr[R];
#pragma unroll
    for (int r = 0; r < R; ++r) rr[r] = r0 + r < N ? r0 + r : N - 1;  // rows past N: read, never written
    // each row's scale row and the shift from k to its scale column, once (not two 64-bit divisions per
    // chunk and row: they were the GEMV's bottleneck on FP8/FP4 weights)
    const uint8_t* srow[R];
    const int kshift = w.scale ? __ffs(w.block_cols) - 1 : 0;
#pragma unroll
    for (int r = 0; r < R; ++r)
        srow[r] = w.scale ? w.scale + block_of(w.scale_row0 + rr[r], w.block_rows) * w.scale_cols : nullptr;
    // The first chunk of every row, loaded before anything else: for a dense call even before pdl_wait()
    // (no kernel writes weights, and PDL only overlaps the immediately preceding kernel, which is done
    // with the ones before it), so its DRAM latency overlaps the previous kernel's tail and the x copy.
    uint4 q[R];
    if (j < cpr)
#pragma unroll
        for (int r = 0; r < R; ++r) q[r] = Fmt<DT>::raw(w, rr[r], j * E);
    if (!chunks) pdl_wait();
    for (int p0 = 0; p0 < n_valid; p0 += T) {
        const int nv = n_valid - p0 < T ? n_valid - p0 : T;
        int64_t orow[T];
        const float* xr[T];
#pragma unroll
        for (int t = 0; t < T; ++t) {
            const int i = p0 + (t < nv ? t : 0);
            orow[t] = chunks ? int64_t(prow[i]) : t0 + i;
            xr[t] = x + (x_div == 1 ? orow[t] : orow[t] / x_div) * ldx;
        }
        if constexpr (SX) {
            const int units = int(w.n_cols / 4);
            __syncthreads();  // the previous pass is done reading sx
            for (int u = tid; u < units; u += kGemvThreads)
                sx[sx_slot(u)] = __ldg(reinterpret_cast<const float4*>(xr[0]) + u);
            __syncthreads();
        }
        float acc[R][T];
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int t = 0; t < T; ++t) acc[r][t] = 0.0f;
        int64_t c = j;
        if (p0 > 0 && c < cpr)  // the next pass starts over on the same rows
#pragma unroll
            for (int r = 0; r < R; ++r) q[r] = Fmt<DT>::raw(w, rr[r], c * E);
        for (; c < cpr; c += G) {
            const bool more = c + G < cpr;
            uint4 qn[R];
            if (more)
#pragma unroll
                for (int r = 0; r < R; ++r) qn[r] = Fmt<DT>::raw(w, rr[r], (c + G) * E);
            float m[R];
#pragma unroll
            for (int r = 0; r < R; ++r) m[r] = F::mult(srow[r], (c * E) >> kshift);
            float ps[R][T];
#pragma unroll
            for (int r = 0; r < R; ++r)
#pragma unroll
                for (int t = 0; t < T; ++t) ps[r][t] = 0.0f;
            // SX: the chunk's first float4 unit and its swizzle, once (sx_slot(cb + S) == (cb + S) ^ sw, as
            // cb % 8 + S < 8 for every E)
            const int cb = int(c) * (E / 4), sw = (cb >> 3) & 7;
            auto step = [&](auto sub_c) {
                constexpr int S = decltype(sub_c)::value;
                float4 xv[T];
                if constexpr (SX) {
                    xv[0] = sx[(cb + S) ^ sw];
                } else {
#pragma unroll
                    for (int t = 0; t < T; ++t)
                        if (t < nv) xv[t] = __ldg(reinterpret_cast<const float4*>(xr[t] + c * E) + S);
                }
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    float v[4];
                    F::template sub<S>(q[r], v);
#pragma unroll
                    for (int t = 0; t < T; ++t)
                        if (t < nv) {  // FMA chain (a separate 4-term sum cost an FMUL + FADD per 4 values)
                            ps[r][t] = fmaf(v[0], xv[t].x, ps[r][t]);
                            ps[r][t] = fmaf(v[1], xv[t].y, ps[r][t]);
                            ps[r][t] = fmaf(v[2], xv[t].z, ps[r][t]);
                            ps[r][t] = fmaf(v[3], xv[t].w, ps[r][t]);
                        }
                }
            };
            static_for<0, F::kSub>(step);
#pragma unroll
            for (int r = 0; r < R; ++r)
#pragma unroll
                for (int t = 0; t < T; ++t) acc[r][t] = fmaf(ps[r][t], m[r], acc[r][t]);
            if (more)
#pragma unroll
                for (int r = 0; r < R; ++r) q[r] = qn[r];
        }
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int t = 0; t < T; ++t) acc[r][t] = warp_sum(acc[r][t]);
        if (G > 32) {  // the group's warps, in order
            const int warp = tid >> 5;
            if ((tid & 31) == 0)
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int t = 0; t < T; ++t) red[warp][r][t] = acc[r][t];
            __syncthreads();
            if (j == 0) {
                const int w0 = (grp * G) >> 5, nw = G >> 5;
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int t = 0; t < T; ++t) {
                        float s = 0.0f;
                        for (int i = 0; i < nw; ++i) s += red[w0 + i][r][t];
                        acc[r][t] = s;
                    }
            }
            __syncthreads();  // red is reused by the next pass
        }
        if (j == 0)
#pragma unroll
            for (int r = 0; r < R; ++r)
                if (r0 + r < N)
#pragma unroll
                    for (int t = 0; t < T; ++t)
                        if (t < nv) y[orow[t] * ldy + r0 + r] = acc[r][t];
    }
}

template <DType DT, int T, bool SX>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(const float* __restrict__ x, int64_t n, int64_t ldx, int64_t x_div, DevWeight w,
                const DevWeight* __restrict__ table, const int32_t* __restrict__ perm,
                const int32_t* __restrict__ chunks, const int32_t* __restrict__ n_chunks,
                float* __restrict__ y, int64_t ldy, int G) {
    // gemv_body calls pdl_wait()
    gemv_body<DT, T, SX>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy, G, blockIdx.x);
}

// Several weights of one format over the same token rows in one launch (linear_multi); extra = G.
constexpr int kMaxSegs = kMaxLinearSegs;
using GemvSegs = LinearSegs;
template <DType DT, int T, bool SX>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_multi_kernel(const __grid_constant__ GemvSegs sg, int64_t n) {
    // (gemv_body calls pdl_wait(): only the launch parameters are read before it)
    const LinearSeg1 g = pick_segment(sg);
    gemv_body<DT, T, SX>(g.x, n, g.ldx, 1, g.w, nullptr, nullptr, nullptr, nullptr, g.y, g.ldy, g.extra,
                         blockIdx.x - g.c0);
}

// Threads per row group: one warp (no cross-warp reduction, each lane streams its chunks with the next one
// prefetched) unless that leaves fewer than kGemvMinCtas CTAs for the whole launch (small N); then wider
// groups, up to the CTA, as long as a row still has a chunk per thread. ny: the launch's CTAs along y.
constexpr int64_t kGemvMinCtas = 2 * 132;
int gemv_group_threads(int64_t chunks_per_row, int64_t n_rows, int rows_per_group, int64_t ny) {
    int g = 32;
    auto ctas = [&](int gg) {
        return ((n_rows + (kGemvThreads / gg) * rows_per_group - 1) /
                ((kGemvThreads / gg) * rows_per_group)) *
               ny;
    };
    while (g < kGemvThreads && 2 * g <= std::max<int64_t>(chunks_per_row, 32) && ctas(g) < kGemvMinCtas)
        g *= 2;
    return g;
}

// One CTA: counting sort of the (token, slot) pairs by expert (stable: pair order within an expert),
// then the chunk table of at most kTok pairs per chunk. Sequential on one thread: Phase A, tiny next to
// the expert GEMVs (n_pairs = 6 at decode).
__global__ void moe_group_kernel(const int32_t* esel, int64_t n_pairs, int64_t E, int tok, int32_t* perm,
                                 int32_t* chunks, int32_t* n_chunks, int32_t* scratch /* [E + 1] */) {
    pdl_wait();
    if (threadIdx.x != 0) return;
    for (int64_t e = 0; e <= E; ++e) scratch[e] = 0;
    for (int64_t p = 0; p < n_pairs; ++p) ++scratch[esel[p] + 1];
    for (int64_t e = 0; e < E; ++e) scratch[e + 1] += scratch[e];  // scratch[e] = first slot of expert e
    int32_t nc = 0;
    for (int64_t e = 0; e < E; ++e)
        for (int32_t s = scratch[e]; s < scratch[e + 1]; s += tok, ++nc) {
            chunks[3 * nc] = int32_t(e);
            chunks[3 * nc + 1] = s;
            chunks[3 * nc + 2] = min(tok, scratch[e + 1] - s);
        }
    *n_chunks = nc;
    for (int64_t p = 0; p < n_pairs; ++p) perm[scratch[esel[p]]++] = int32_t(p);
}

// The same table from one CTA of kGroupThreads threads (decode: n_pairs ≤ kGroupParallelMaxPairs, E ≤
// kGroupThreads), in shared memory: expert histogram, two block scans (first slot, first chunk of each
// expert), then each pair's place = its expert's first slot + the number of earlier pairs of that expert
// (stable, so perm is the single-thread kernel's), and each expert writes its own chunks.
constexpr int kGroupThreads = 1024;
constexpr int64_t kGroupParallelMaxPairs = 2048;

// Exclusive prefix sum over the block of one value per thread (every thread of kGroupThreads calls it);
// *total gets the sum. wsum: __shared__ int[32].
__device__ int block_exclusive_scan(int v, int* wsum, int* total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int inc = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int u = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += u;
    }
    if (lane == 31) wsum[warp] = inc;
    __syncthreads();
    if (warp == 0) {
        int w = wsum[lane], wi = w;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int u = __shfl_up_sync(0xffffffffu, wi, o);
            if (lane >= o) wi += u;
        }
        wsum[lane] = wi - w;  // exclusive over warps
        if (lane == 31) *total = wi;
    }
    __syncthreads();
    const int r = wsum[warp] + inc - v;
    __syncthreads();  // wsum reusable
    return r;
}

// Both one-CTA grouping kernels, after the per-expert counts: c = thread tid's expert count (0 past E);
// writes expert tid's chunks of ≤ tok pairs and *n_chunks, returns the expert's first slot.
__device__ int chunk_table(int c, int E, int tok, int32_t* chunks, int32_t* n_chunks, int* wsum) {
    __shared__ int total_slots, total_chunks;
    const int tid = int(threadIdx.x), nch = (c + tok - 1) / tok;
    const int first = block_exclusive_scan(c, wsum, &total_slots);
    const int first_chunk = block_exclusive_scan(nch, wsum, &total_chunks);
    if (tid < E)
        for (int i = 0; i < nch; ++i) {
            int32_t* ch = chunks + 3 * (first_chunk + i);
            ch[0] = tid, ch[1] = first + i * tok, ch[2] = min(tok, c - i * tok);
        }
    if (tid == 0) *n_chunks = total_chunks;
    return first;
}

__global__ void __launch_bounds__(kGroupThreads)
    moe_group_parallel_kernel(const int32_t* __restrict__ esel, int n_pairs, int E, int tok,
                              int32_t* __restrict__ perm, int32_t* __restrict__ chunks,
                              int32_t* __restrict__ n_chunks) {
    pdl_wait();
    __shared__ int32_t s_e[kGroupParallelMaxPairs];
    __shared__ int cnt[kGroupThreads], first[kGroupThreads];
    __shared__ int wsum[32];
    const int tid = int(threadIdx.x);
    for (int p = tid; p < n_pairs; p += kGroupThreads) s_e[p] = esel[p];
    cnt[tid] = 0;
    __syncthreads();
    for (int p = tid; p < n_pairs; p += kGroupThreads) atomicAdd(&cnt[s_e[p]], 1);
    __syncthreads();
    first[tid] = chunk_table(tid < E ? cnt[tid] : 0, E, tok, chunks, n_chunks, wsum);
    __syncthreads();  // every expert's first slot in place
    for (int p = tid; p < n_pairs; p += kGroupThreads) {
        const int e = s_e[p];
        int rank = 0;
        for (int q = 0; q < p; ++q) rank += s_e[q] == e;
        perm[first[e] + rank] = p;
    }
}

// The same (stable) table for many pairs (prefill: chunk·6 pairs), one CTA of kGroupThreads: a histogram in
// shared memory and the two scans, then the pairs in tiles of kGroupThreads in order; a pair's place = its
// expert's cursor + the same expert's pairs in earlier warps of the tile (per-warp counts) + its rank among
// the warp's lanes with that expert (match_any). E ≤ kGroupLargeMaxExperts.
constexpr int kGroupLargeMaxExperts = 512;
__global__ void __launch_bounds__(kGroupThreads)
    moe_group_large_kernel(const int32_t* __restrict__ esel, int64_t n_pairs, int E, int tok,
                           int32_t* __restrict__ perm, int32_t* __restrict__ chunks,
                           int32_t* __restrict__ n_chunks) {
    pdl_wait();
    constexpr int kW = kGroupThreads / 32;
    __shared__ int cnt[kGroupThreads], cursor[kGroupLargeMaxExperts];
    __shared__ uint16_t wcnt[kW][kGroupLargeMaxExperts];
    __shared__ int wsum[32];
    const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
    cnt[tid] = 0;
    for (int i = tid; i < kW * kGroupLargeMaxExperts; i += kGroupThreads) (&wcnt[0][0])[i] = 0;
    __syncthreads();
    for (int64_t p = tid; p < n_pairs; p += kGroupThreads) atomicAdd(&cnt[esel[p]], 1);
    __syncthreads();
    const int first = chunk_table(tid < E ? cnt[tid] : 0, E, tok, chunks, n_chunks, wsum);
    if (tid < E) cursor[tid] = first;
    __syncthreads();
    const unsigned lt = (1u << lane) - 1u;
    for (int64_t p0 = 0; p0 < n_pairs; p0 += kGroupThreads) {
        const int64_t p = p0 + tid;
        const int e = p < n_pairs ? esel[p] : -1;
        const unsigned peers = __match_any_sync(0xffffffffu, e);
        if (e >= 0 && lane == __ffs(peers) - 1) wcnt[warp][e] = uint16_t(__popc(peers));
        __syncthreads();
        if (e >= 0) {
            int before = 0;
            for (int w = 0; w < warp; ++w) before += wcnt[w][e];
            perm[cursor[e] + before + __popc(peers & lt)] = int32_t(p);
        }
        __syncthreads();
        if (tid < E) {
            int tile = 0;
            for (int w = 0; w < kW; ++w) tile += wcnt[w][tid], wcnt[w][tid] = 0;
            cursor[tid] += tile;
        }
        __syncthreads();
    }
}

bool aligned16(const void* p) {
    return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

template <DType DT>
bool can_vectorize(const DevWeight& w, const float* x, int64_t ldx) {
    constexpr int E = Fmt<DT>::kElems;
    if (w.n_cols % E != 0 || !aligned16(w.data) || !aligned16(x) || ldx % 4 != 0) return false;
    if ((DT == DType::f8_e4m3 || DT == DType::fp4_e2m1) &&
        (w.block_cols % E != 0 || (w.block_cols & (w.block_cols - 1)) != 0))
        return false;
    return true;
}

// Token rows per pass of the GEMV kernel for `rows` tokens (a chunk of the grouped path holds at most
// kLinearTok pairs; more are handled in passes).
int gemv_tokens(int64_t rows) {
    return rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
}

template <DType DT, int T>
void launch_gemv(int64_t max_chunks, const float* x, int64_t n, int64_t ldx, int64_t x_div,
                 const DevWeight& w, const DevWeight* table, const int32_t* perm, const int32_t* chunks,
                 const int32_t* n_chunks, float* y, int64_t ldy, cudaStream_t s) {
    // grouped: the chunks that hold pairs are at most n (= n_pairs) of the max_chunks slots
    const int64_t ny = chunks ? std::min<int64_t>(max_chunks, n) : int64_t(ceil_div_u(n, T));
    const int G = gemv_group_threads(w.n_cols / Fmt<DT>::kElems, w.n_rows, gemv_rows<DT, T>(), ny);
    const dim3 grid(ceil_div_u(w.n_rows, (kGemvThreads / G) * gemv_rows<DT, T>()),
                    chunks ? unsigned(max_chunks) : ceil_div_u(n, T));
    if constexpr (T == 1) {
        const int64_t sx_bytes = w.n_cols * 4;
        if (sx_bytes <= kGemvSxMaxBytes &&
            allow_dynamic_smem<gemv_kernel<DT, 1, true>>(int(kGemvSxMaxBytes))) {
            launch_pdl(gemv_kernel<DT, 1, true>, grid, kGemvThreads, size_t(sx_bytes), s, x, n, ldx, x_div, w,
                       table, perm, chunks, n_chunks, y, ldy, G);
            return;
        }
    }
    launch_pdl(gemv_kernel<DT, T, false>, grid, kGemvThreads, 0, s, x, n, ldx, x_div, w, table, perm, chunks,
               n_chunks, y, ldy, G);
}

template <DType DT, int T>
void launch_gemv_multi(GemvSegs& sg, int64_t n, cudaStream_t s) {
    unsigned ctas = 0;
    for (int i = 0; i < sg.n; ++i) {
        sg.extra[i] = gemv_group_threads(sg.w[i].n_cols / Fmt<DT>::kElems, sg.w[i].n_rows, gemv_rows<DT, T>(),
                                         int64_t(ceil_div_u(n, T)) * sg.n);
        sg.cta0[i] = ctas;
        ctas += ceil_div_u(sg.w[i].n_rows, (kGemvThreads / sg.extra[i]) * gemv_rows<DT, T>());
    }
    sg.cta0[sg.n] = ctas;
    const dim3 grid(ctas, ceil_div_u(n, T));
    if constexpr (T == 1) {
        int64_t sx_bytes = 0;
        for (int i = 0; i < sg.n; ++i) sx_bytes = std::max(sx_bytes, sg.w[i].n_cols * 4);
        if (sx_bytes <= kGemvSxMaxBytes &&
            allow_dynamic_smem<gemv_multi_kernel<DT, 1, true>>(int(kGemvSxMaxBytes))) {
            launch_pdl(gemv_multi_kernel<DT, 1, true>, grid, kGemvThreads, size_t(sx_bytes), s, sg, n);
            return;
        }
    }
    launch_pdl(gemv_multi_kernel<DT, T, false>, grid, kGemvThreads, 0, s, sg, n);
}

template <DType DT>
Status launch_multi(GemvSegs& sg, int64_t n, cudaStream_t s) {
    const int T = std::min(gemv_tokens(n), DT == DType::fp4_e2m1 ? 4 : 8);
    switch (T) {
        case 1:
            launch_gemv_multi<DT, 1>(sg, n, s);
            break;
        case 2:
            launch_gemv_multi<DT, 2>(sg, n, s);
            break;
        case 4:
            launch_gemv_multi<DT, 4>(sg, n, s);
            break;
        default:
            if constexpr (DT != DType::fp4_e2m1) launch_gemv_multi<DT, 8>(sg, n, s);
    }
    DSV4_CUDA_LAUNCH_CHECK("gemv_multi_kernel");
    return Status::ok();
}

// tok_hint: the most token rows one chunk holds (grouped), or n (plain).
template <DType DT>
Status launch(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
              const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
              int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s, int64_t tok_hint) {
    if (can_vectorize<DT>(w, x, ldx)) {
        // FP4 passes of 8 tokens would spill: 4 at most (a chunk of more pairs takes two passes)
        const int T = std::min(gemv_tokens(chunks ? std::min<int64_t>(tok_hint, kLinearTok) : n),
                               DT == DType::fp4_e2m1 ? 4 : 8);
        switch (T) {
            case 1:
                launch_gemv<DT, 1>(max_chunks, x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy, s);
                break;
            case 2:
                launch_gemv<DT, 2>(max_chunks, x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy, s);
                break;
            case 4:
                launch_gemv<DT, 4>(max_chunks, x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy, s);
                break;
            default:
                if constexpr (DT != DType::fp4_e2m1)
                    launch_gemv<DT, 8>(max_chunks, x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy,
                                       s);
        }
        DSV4_CUDA_LAUNCH_CHECK("gemv_kernel");
        return Status::ok();
    }
    const dim3 block(kWarps * 32);
    const dim3 grid(ceil_div_u(w.n_rows, kWarps), chunks ? unsigned(max_chunks) : ceil_div_u(n, kLinearTok));
    launch_pdl(linear_kernel<DT, kLinearTok>, grid, block, 0, s, x, n, ldx, x_div, w, table, perm, chunks,
               n_chunks, y, ldy);
    DSV4_CUDA_LAUNCH_CHECK("linear_kernel");
    return Status::ok();
}

Status dispatch(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
                const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s, int64_t tok_hint) {
    if (n == 0 || w.n_rows == 0) return Status::ok();
    if ((chunks ? max_chunks : (n + kLinearTok - 1) / kLinearTok) > 65535)
        return error("cuda::linear: {} token rows is more than one launch covers", n);
    switch (w.dtype) {
        case DType::f32:
            return launch<DType::f32>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy,
                                      s, tok_hint);
        case DType::bf16:
            return launch<DType::bf16>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy,
                                       s, tok_hint);
        case DType::f16:
            return launch<DType::f16>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy,
                                      s, tok_hint);
        case DType::f8_e4m3:
            return launch<DType::f8_e4m3>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y,
                                          ldy, s, tok_hint);
        case DType::fp4_e2m1:
            return launch<DType::fp4_e2m1>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y,
                                           ldy, s, tok_hint);
        default:
            return error("cuda::linear: unsupported weight dtype {}", dtype_name(w.dtype));
    }
}

// ------------------------------------------------------------------ GEMM path (many tokens / pairs)
// W is dequantized exactly into an f32 scratch (code·2^e is exact in fp32), then cuBLAS SGEMM in true fp32
// computes y. Only the summation order differs from cpu::linear. The scratch is bounded: weights in
// row slices of at most kWeightScratchBytes, grouped activations in windows of kActScratchBytes.

constexpr int64_t kGemmMinTokens = 16;                   // linear: n ≥ this takes the GEMM path
constexpr int64_t kGroupedGemmMinPairs = 128;            // linear_grouped: n_pairs ≥ this reads the chunks
constexpr int64_t kGroupedGemmMinRows = kGemmMinTokens;  // ... and experts with ≥ this many pairs use SGEMM
constexpr int64_t kWeightScratchBytes = int64_t(256) << 20;
constexpr int64_t kActScratchBytes = int64_t(64) << 20;
constexpr size_t kBlasWorkspaceBytes = size_t(32) << 20;

// out [rows, K] = rows r0 .. r0+rows−1 of w (of table[e] when table is non-null: grouped experts read
// their entry on the device, so the host never needs it). 16-byte loads when K, the data pointer and the
// scale blocks allow (decided on the device, uniform over the launch), else one element per thread.
template <DType DT>
__global__ void __launch_bounds__(256)
    dequant_rows_kernel(DevWeight w, const DevWeight* __restrict__ table, int32_t e, int64_t r0, int64_t rows,
                        float* __restrict__ out) {
    pdl_wait();
    if (table) w = table[e];
    constexpr int E = Fmt<DT>::kElems;
    constexpr bool kScaled = DT == DType::f8_e4m3 || DT == DType::fp4_e2m1;
    const int64_t K = w.n_cols, stride = int64_t(gridDim.x) * blockDim.x;
    const bool vec =
        K % E == 0 && (reinterpret_cast<uintptr_t>(w.data) & 15u) == 0 && (!kScaled || w.block_cols % E == 0);
    if (vec) {
        const int64_t per_row = K / E, total = rows * per_row;
        for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
            const int64_t r = i / per_row, k = (i - r * per_row) * E;
            float v[E];
            Fmt<DT>::decode(Fmt<DT>::raw(w, r0 + r, k), Fmt<DT>::scale(w, r0 + r, k), v);
            float4* o = reinterpret_cast<float4*>(out + r * K + k);  // K % 4 == 0: 16-byte aligned
#pragma unroll
            for (int j = 0; j < E / 4; ++j)
                o[j] = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
        }
    } else {
        const int64_t total = rows * K;
        for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
            const int64_t r = i / K;
            out[i] = Fmt<DT>::one(w, r0 + r, i - r * K);
        }
    }
}

// dst [rows, K] = x rows perm[j] / x_div (grouped SGEMM input). grid: rows.
__global__ void gather_pairs_kernel(const float* __restrict__ x, int64_t ldx, int64_t x_div,
                                    const int32_t* __restrict__ perm, int64_t K, float* __restrict__ dst) {
    pdl_wait();
    const int64_t j = blockIdx.x;
    const float* src = x + (int64_t(perm[j]) / x_div) * ldx;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) dst[j * K + k] = src[k];
}

// y rows perm[j] = src [rows, N] (grouped SGEMM output; every pair sits once in perm, so no two blocks
// write the same row). grid: rows.
__global__ void scatter_pairs_kernel(const float* __restrict__ src, int64_t N,
                                     const int32_t* __restrict__ perm, float* __restrict__ y, int64_t ldy) {
    pdl_wait();
    const int64_t j = blockIdx.x;
    float* dst = y + int64_t(perm[j]) * ldy;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) dst[r] = src[j * N + r];
}

// Per (device, stream): the cuBLAS handle and the grow-only scratch. One per stream, so that calls on two
// streams never share a buffer; `mu` is held for a whole call (host side), so two threads using the same
// stream queue their calls one after the other. Never freed: it lives as long as the process (freeing at
// static destruction would race the CUDA runtime's own teardown).
struct GemmContext {
    std::mutex mu;
    cublasHandle_t blas = nullptr;
    void* blas_ws = nullptr;  // [kBlasWorkspaceBytes], set as the handle's workspace on every call
    float* w_buf = nullptr;   // dequantized weight slice [rows, K]
    int64_t w_bytes = 0;
    float* a_buf = nullptr;  // grouped: gathered x rows [window, K], then their outputs [window, N]
    int64_t a_bytes = 0;
    int32_t* d_small = nullptr;   // grouped: {count, chunks...} of the experts left to the GEMV kernel
    int32_t* h_chunks = nullptr;  // pinned: {n_chunks, chunks...} read back, then the d_small upload
    int64_t chunk_ints = 0;       // ints of d_small, and of each of the two halves of h_chunks
};

Result<GemmContext*> gemm_context(cudaStream_t s) {
    struct All {
        std::mutex mu;
        std::map<std::pair<int, cudaStream_t>, std::unique_ptr<GemmContext>> m;
    };
    static All* all = new All;  // NOLINT: deliberately never destroyed (see GemmContext)
    int dev = 0;
    DSV4_CUDA_CHECK(cudaGetDevice(&dev));
    std::lock_guard<std::mutex> lock(all->mu);
    std::unique_ptr<GemmContext>& c = all->m[{dev, s}];
    if (!c) c = std::make_unique<GemmContext>();
    return c.get();
}

Status device_alloc(void** p, int64_t bytes, const char* what) {
    if (cudaMalloc(p, size_t(bytes)) == cudaSuccess) return Status::ok();
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    *p = nullptr;
    return error("cuda::linear: cannot allocate {} bytes of GEMM {} scratch ({} bytes free of {})", bytes,
                 what, free_b, total_b);
}

// Creates the handle and grows the buffers to at least the given sizes (bytes; ints for the chunk
// tables). Growing synchronizes the stream (the old buffers may still be in use by queued work) and
// allocates, so it must not happen during CUDA graph capture: it is refused there with a hint.
Status reserve(GemmContext& c, cudaStream_t s, int64_t w_bytes, int64_t a_bytes, int64_t chunk_ints) {
    if (c.blas && c.blas_ws && w_bytes <= c.w_bytes && a_bytes <= c.a_bytes && chunk_ints <= c.chunk_ints)
        return Status::ok();
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    DSV4_CUDA_CHECK(cudaStreamIsCapturing(s, &cap));
    if (cap != cudaStreamCaptureStatusNone)
        return error(
            "cuda::linear: the GEMM path would allocate scratch during CUDA graph capture ({} B weights, {} "
            "B "
            "activations); hint: run one call of the largest shape on this stream before capturing",
            w_bytes, a_bytes);
    DSV4_CUDA_CHECK(cudaStreamSynchronize(s));
    if (!c.blas) {
        const cublasStatus_t st = cublasCreate(&c.blas);
        if (st != CUBLAS_STATUS_SUCCESS) {
            c.blas = nullptr;
            return error("cuda::linear: cublasCreate failed: {}", cublasGetStatusString(st));
        }
        // true fp32: no TF32, no reduced-precision or emulated paths (the model's exact numerics)
        cublasSetMathMode(c.blas, CUBLAS_PEDANTIC_MATH);
    }
    if (!c.blas_ws) DSV4_TRY(device_alloc(&c.blas_ws, int64_t(kBlasWorkspaceBytes), "cuBLAS workspace"));
    auto grow = [&](void** p, int64_t& have, int64_t want, const char* what) -> Status {
        if (want <= have) return Status::ok();
        cudaFree(*p);
        *p = nullptr;
        have = 0;
        DSV4_TRY(device_alloc(p, want, what));
        have = want;
        return Status::ok();
    };
    DSV4_TRY(grow(reinterpret_cast<void**>(&c.w_buf), c.w_bytes, w_bytes, "weight"));
    DSV4_TRY(grow(reinterpret_cast<void**>(&c.a_buf), c.a_bytes, a_bytes, "activation"));
    if (chunk_ints > c.chunk_ints) {
        cudaFree(c.d_small);
        cudaFreeHost(c.h_chunks);
        c.d_small = nullptr, c.h_chunks = nullptr, c.chunk_ints = 0;
        DSV4_TRY(device_alloc(reinterpret_cast<void**>(&c.d_small), chunk_ints * 4, "chunk table"));
        DSV4_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&c.h_chunks), size_t(chunk_ints) * 8));
        c.chunk_ints = chunk_ints;
    }
    return Status::ok();
}

// Binds the handle to this call's stream (cublasSetStream resets the workspace, so set it after).
Status bind(GemmContext& c, cudaStream_t s) {
    cublasStatus_t st = cublasSetStream(c.blas, s);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetWorkspace(c.blas, c.blas_ws, kBlasWorkspaceBytes);
    if (st != CUBLAS_STATUS_SUCCESS)
        return error("cuda::linear: cuBLAS stream setup failed: {}", cublasGetStatusString(st));
    return Status::ok();
}

// Column-major view of y[i·ldc + r] = Σ_k B[i·ldb + k]·A[r·lda + k] (r < m, i < n): C = Aᵀ·B.
Status sgemm_tn(GemmContext& c, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B,
                int64_t ldb, float* C, int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;  // beta = 0: C is not read (it may hold NaN poison)
    const cublasStatus_t st = cublasSgemm(c.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(n), int(k), &one, A,
                                          int(lda), B, int(ldb), &zero, C, int(ldc));
    if (st != CUBLAS_STATUS_SUCCESS)
        return error("cuda::linear: cublasSgemm m={} n={} k={} failed: {}", m, n, k,
                     cublasGetStatusString(st));
    return Status::ok();
}

template <DType DT>
Status launch_dequant(const DevWeight& w, const DevWeight* table, int32_t e, int64_t r0, int64_t rows,
                      float* out, cudaStream_t s) {
    const int64_t blocks = std::clamp<int64_t>((rows * w.n_cols + 1023) / 1024, 1, 132 * 16);
    launch_pdl(dequant_rows_kernel<DT>, unsigned(blocks), 256, 0, s, w, table, e, r0, rows, out);
    DSV4_CUDA_LAUNCH_CHECK("dequant_rows_kernel");
    return Status::ok();
}

Status dequant(const DevWeight& w, const DevWeight* table, int32_t e, int64_t r0, int64_t rows, float* out,
               cudaStream_t s) {
    switch (w.dtype) {
        case DType::f32:
            return launch_dequant<DType::f32>(w, table, e, r0, rows, out, s);
        case DType::bf16:
            return launch_dequant<DType::bf16>(w, table, e, r0, rows, out, s);
        case DType::f16:
            return launch_dequant<DType::f16>(w, table, e, r0, rows, out, s);
        case DType::f8_e4m3:
            return launch_dequant<DType::f8_e4m3>(w, table, e, r0, rows, out, s);
        case DType::fp4_e2m1:
            return launch_dequant<DType::fp4_e2m1>(w, table, e, r0, rows, out, s);
        default:
            return error("cuda::linear: unsupported weight dtype {}", dtype_name(w.dtype));
    }
}

bool fits_int(int64_t v) {
    return v >= 0 && v <= INT_MAX;
}

bool known_dtype(DType dt) {
    return dt == DType::f32 || dt == DType::bf16 || dt == DType::f16 || dt == DType::f8_e4m3 ||
           dt == DType::fp4_e2m1;
}

// Weight rows per dequantized slice.
int64_t weight_slice_rows(int64_t N, int64_t K) {
    return std::clamp<int64_t>(kWeightScratchBytes / (K * 4), 1, N);
}

Status linear_gemm(const float* x, int64_t n, int64_t ldx, const DevWeight& w, float* y, int64_t ldy,
                   cudaStream_t s) {
    const int64_t N = w.n_rows, K = w.n_cols;
    const bool direct = w.dtype == DType::f32;  // already f32 [N, K]: SGEMM reads it in place
    const int64_t slice = direct ? N : weight_slice_rows(N, K);
    DSV4_TRY_ASSIGN(GemmContext * c, gemm_context(s));
    std::lock_guard<std::mutex> lock(c->mu);
    DSV4_TRY(reserve(*c, s, direct ? 0 : slice * K * 4, 0, 0));
    DSV4_TRY(bind(*c, s));
    for (int64_t r0 = 0; r0 < N; r0 += slice) {
        const int64_t rows = std::min(slice, N - r0);
        const float* A = reinterpret_cast<const float*>(w.data) + r0 * K;
        if (!direct) {
            DSV4_TRY(dequant(w, nullptr, 0, r0, rows, c->w_buf, s));
            A = c->w_buf;
        }
        DSV4_TRY(sgemm_tn(*c, rows, n, K, A, K, x, ldx, y + r0, ldy));
    }
    return Status::ok();
}

// Experts with ≥ kGroupedGemmMinRows pairs: windows of consecutive sorted pairs are gathered into the
// activation scratch, each expert's rows multiplied by its dequantized weight, and the results scattered
// back. The other experts' chunks go to the GEMV kernel through a chunk table of their own. Costs one
// stream synchronization (the chunk table read back), hence prefill only.
template <DType DT>
Status grouped_gemm(const float* x, int64_t n_pairs, int64_t ldx, int64_t x_div, const DevWeight* table,
                    const DevWeight& proto, const int32_t* perm, const int32_t* chunks,
                    const int32_t* n_chunks, int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s) {
    const int64_t N = proto.n_rows, K = proto.n_cols;
    DSV4_TRY_ASSIGN(GemmContext * c, gemm_context(s));
    std::lock_guard<std::mutex> lock(c->mu);
    const int64_t table_ints = 1 + 3 * max_chunks;
    DSV4_TRY(reserve(*c, s, 0, 0, table_ints));
    int32_t* h_read = c->h_chunks;                   // {n_chunks, chunks...} from the device
    int32_t* h_small = c->h_chunks + c->chunk_ints;  // {count, chunks...} for the GEMV kernel
    DSV4_CUDA_CHECK(cudaMemcpyAsync(h_read, n_chunks, 4, cudaMemcpyDeviceToHost, s));
    DSV4_CUDA_CHECK(cudaMemcpyAsync(h_read + 1, chunks, size_t(max_chunks) * 12, cudaMemcpyDeviceToHost, s));
    DSV4_CUDA_CHECK(cudaStreamSynchronize(s));

    // The chunks of one expert are consecutive and cover its pairs in perm order: merge them into groups.
    struct Group {
        int32_t e;
        int64_t start, count, first_chunk, n_chunk;
    };
    std::vector<Group> groups;
    const int64_t nc = h_read[0];
    if (nc < 0 || nc > max_chunks)
        return error("cuda::linear_grouped: {} chunks in a table of {}", nc, max_chunks);
    int64_t covered = 0;
    for (int64_t i = 0; i < nc; ++i) {
        const int32_t* ch = h_read + 1 + 3 * i;
        if (ch[0] < 0 || ch[1] != covered || ch[2] <= 0 || ch[2] > n_pairs - covered)
            return error(
                "cuda::linear_grouped: chunk {} = {{{}, {}, {}}} does not continue the table at pair {}", i,
                ch[0], ch[1], ch[2], covered);
        if (!groups.empty() && groups.back().e == ch[0]) {
            groups.back().count += ch[2];
            ++groups.back().n_chunk;
        } else {
            groups.push_back({ch[0], ch[1], ch[2], i, 1});
        }
        covered += ch[2];
    }
    if (covered != n_pairs)
        return error("cuda::linear_grouped: the chunk table covers {} of {} pairs", covered, n_pairs);

    // GEMV for the small experts (their chunk entries copied verbatim: rows come from perm through start)
    int32_t n_small = 0;
    for (const Group& g : groups)
        if (g.count < kGroupedGemmMinRows)
            for (int64_t i = g.first_chunk; i < g.first_chunk + g.n_chunk; ++i, ++n_small)
                for (int j = 0; j < 3; ++j) h_small[1 + 3 * n_small + j] = h_read[1 + 3 * i + j];
    if (n_small > 65535)
        return error("cuda::linear_grouped: {} small-expert chunks is more than one launch covers", n_small);
    if (n_small > 0) {
        h_small[0] = n_small;
        DSV4_CUDA_CHECK(
            cudaMemcpyAsync(c->d_small, h_small, size_t(1 + 3 * n_small) * 4, cudaMemcpyHostToDevice, s));
        DSV4_TRY(launch<DT>(x, n_pairs, ldx, x_div, proto, table, perm, c->d_small + 1, c->d_small, n_small,
                            y, ldy, s, kLinearTok));
    }
    if (n_small == nc) return Status::ok();

    // SGEMM for the large ones
    const int64_t slice = weight_slice_rows(N, K);
    const int64_t window = std::clamp<int64_t>(kActScratchBytes / ((K + N) * 4), 1, n_pairs);
    DSV4_TRY(reserve(*c, s, slice * K * 4, window * (K + N) * 4, table_ints));
    DSV4_TRY(bind(*c, s));
    float* Xg = c->a_buf;               // [window, K]: row j holds pair perm[w0 + j]
    float* Yg = c->a_buf + window * K;  // [window, N]
    int32_t cached_e = -1;              // expert whose whole weight sits in w_buf (slice == N only)
    size_t gi = 0;
    for (int64_t w0 = 0; w0 < n_pairs; w0 += window) {
        const int64_t w1 = std::min(n_pairs, w0 + window);
        // the large groups overlapping [w0, w1): gather their span once
        size_t g_end = gi;
        int64_t lo = -1, hi = -1;
        for (size_t g = gi; g < groups.size() && groups[g].start < w1; ++g, g_end = g)
            if (groups[g].count >= kGroupedGemmMinRows) {
                if (lo < 0) lo = std::max(groups[g].start, w0);
                hi = std::min(groups[g].start + groups[g].count, w1);
            }
        if (lo >= 0) {
            launch_pdl(gather_pairs_kernel, unsigned(hi - lo), 256, 0, s, x, ldx, x_div, perm + lo, K,
                       Xg + (lo - w0) * K);
            DSV4_CUDA_LAUNCH_CHECK("gather_pairs_kernel");
        }
        int64_t run_lo = -1;  // start of the current run of consecutive large groups (for the scatter)
        auto flush = [&](int64_t run_hi) -> Status {
            if (run_lo < 0) return Status::ok();
            launch_pdl(scatter_pairs_kernel, unsigned(run_hi - run_lo), 256, 0, s, Yg + (run_lo - w0) * N, N,
                       perm + run_lo, y, ldy);
            DSV4_CUDA_LAUNCH_CHECK("scatter_pairs_kernel");
            run_lo = -1;
            return Status::ok();
        };
        for (size_t g = gi; g < g_end; ++g) {
            const Group& G = groups[g];
            const int64_t a = std::max(G.start, w0), b = std::min(G.start + G.count, w1);
            if (G.count < kGroupedGemmMinRows) {
                DSV4_TRY(flush(a));
                continue;
            }
            if (run_lo < 0) run_lo = a;
            for (int64_t r0 = 0; r0 < N; r0 += slice) {
                const int64_t rows = std::min(slice, N - r0);
                if (slice < N || cached_e != G.e) {
                    DSV4_TRY(dequant(proto, table, G.e, r0, rows, c->w_buf, s));
                    cached_e = slice < N ? -1 : G.e;
                }
                DSV4_TRY(sgemm_tn(*c, rows, b - a, K, c->w_buf, K, Xg + (a - w0) * K, K,
                                  Yg + (a - w0) * N + r0, N));
            }
        }
        DSV4_TRY(flush(hi));
        // a group that runs past w1 is taken up again by the next window
        gi = g_end;
        if (gi > 0 && groups[gi - 1].start + groups[gi - 1].count > w1) --gi;
    }
    return Status::ok();
}

Status grouped_gemm_dispatch(const float* x, int64_t n_pairs, int64_t ldx, int64_t x_div,
                             const DevWeight* table, const DevWeight& proto, const int32_t* perm,
                             const int32_t* chunks, const int32_t* n_chunks, int64_t max_chunks, float* y,
                             int64_t ldy, cudaStream_t s) {
    switch (proto.dtype) {
        case DType::f32:
            return grouped_gemm<DType::f32>(x, n_pairs, ldx, x_div, table, proto, perm, chunks, n_chunks,
                                            max_chunks, y, ldy, s);
        case DType::bf16:
            return grouped_gemm<DType::bf16>(x, n_pairs, ldx, x_div, table, proto, perm, chunks, n_chunks,
                                             max_chunks, y, ldy, s);
        case DType::f16:
            return grouped_gemm<DType::f16>(x, n_pairs, ldx, x_div, table, proto, perm, chunks, n_chunks,
                                            max_chunks, y, ldy, s);
        case DType::f8_e4m3:
            return grouped_gemm<DType::f8_e4m3>(x, n_pairs, ldx, x_div, table, proto, perm, chunks, n_chunks,
                                                max_chunks, y, ldy, s);
        case DType::fp4_e2m1:
            return grouped_gemm<DType::fp4_e2m1>(x, n_pairs, ldx, x_div, table, proto, perm, chunks, n_chunks,
                                                 max_chunks, y, ldy, s);
        default:
            return error("cuda::linear_grouped: unsupported weight dtype {}", dtype_name(proto.dtype));
    }
}

// DSV4_LINEAR_MMA: 0 = GEMV only; 1 (default) = linear_mma for 2..15 token rows (and grouped calls whose
// hint allows ≥ 2 pairs per expert); 2 = linear_mma from 1 row.
int mma_mode() {
    static const int m = env_choice("DSV4_LINEAR_MMA", 1, 2);
    return m;
}
bool use_mma(int64_t rows, const WeightRef& w, const float* x, int64_t ldx) {
    const int m = mma_mode();
    return m > 0 && (rows >= 2 || m >= 2) && linear_mma_ok(w, x, ldx);
}

// DSV4_FP4_B1: 1 (default) = one-row FP4 linears (and grouped calls with one pair per expert) on the
// tensor-core kernel of gemv_b1_sm90.cu; 0 = the GEMV kernel. DSV4_FP8_B1: the same for FP8, 2 (default)
// = for weights of ≥ kB1MinRowsFp8 rows (H200 graph-timed: wq_b 12.8 → 11.3 µs, wo_b 12.5 → 11.9, shared
// w1 6.1 → 5.0, but wq_a's 1024 rows 3.5 → 4.2), 1 = every FP8 weight, 0 = none.
// linear_multi takes its one-row FP8 segments together when there are ≥ 2 of them or ≥ 2048 rows in all
// (wo_a's 8 groups of 1024 rows; wq_a + wkv: slice b=1 1.106 / 1.085 → 1.089 / 1.071 ms with every FP8
// segment on the b1 kernel).
constexpr int64_t kB1MinRowsFp8 = 2048;
int b1_fp8_mode() {
    static const int fp8 = env_choice("DSV4_FP8_B1", 2, 2);
    return fp8;
}
bool use_b1(int64_t rows, const WeightRef& w, const float* x, int64_t ldx) {
    static const int fp4 = env_choice("DSV4_FP4_B1", 1, 1);
    const int fp8 = b1_fp8_mode();
    bool on = false;
    if (w.dtype == DType::fp4_e2m1) on = fp4 == 1;
    if (w.dtype == DType::f8_e4m3) on = fp8 == 1 || (fp8 == 2 && w.n_rows >= kB1MinRowsFp8);
    return on && rows == 1 && linear_b1_ok(w, x, ldx);
}

bool capturing(cudaStream_t s) {
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(s, &cap) != cudaSuccess) {
        cudaGetLastError();
        return true;  // cannot tell: take the path that is safe under capture
    }
    return cap != cudaStreamCaptureStatusNone;
}

}  // namespace

Status linear(const float* x, int64_t n, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
              cudaStream_t s) {
    const DevWeight dw = DevWeight::from(w);
    if (n == 0 || dw.n_rows == 0) return Status::ok();
    if (n >= kGemmMinTokens && known_dtype(dw.dtype) && dw.n_cols > 0 && ldx >= dw.n_cols &&
        ldy >= dw.n_rows && fits_int(n) && fits_int(ldx) && fits_int(ldy) && fits_int(dw.n_rows) &&
        fits_int(dw.n_cols))
        return linear_gemm(x, n, ldx, dw, y, ldy, s);
    if (use_b1(n, w, x, ldx))
        return linear_b1(x, n, ldx, 1, dw, nullptr, nullptr, nullptr, nullptr, 0, y, ldy, s);
    if (use_mma(n, w, x, ldx))
        return linear_mma(x, n, ldx, 1, dw, nullptr, nullptr, nullptr, nullptr, 0, y, ldy, s, n);
    return dispatch(x, n, ldx, 1, dw, nullptr, nullptr, nullptr, nullptr, 0, y, ldy, s, n);
}

Status linear_multi(const LinearSeg* segs, int n_segs, int64_t n, cudaStream_t s) {
    if (n == 0) return Status::ok();
    // Segments the multi-weight GEMV takes (few tokens, 16-byte path, non-empty, not FP4: routed experts go
    // through linear_grouped), in launches of one format
    // and at most kMaxSegs; the others through linear.
    std::vector<int> rest;
    std::map<DType, std::vector<int>> by_format;
    // One token row: the FP8 segments the b1 kernel takes, together, when DSV4_FP8_B1 allows their rows
    std::vector<LinearSeg> b1;
    int64_t b1_rows = 0;
    std::vector<bool> taken(size_t(n_segs), false);
    if (n == 1 && b1_fp8_mode() != 0) {
        for (int i = 0; i < n_segs; ++i)
            if (segs[i].w.dtype == DType::f8_e4m3 && segs[i].w.n_rows > 0 &&
                linear_b1_ok(segs[i].w, segs[i].x, segs[i].ldx))
                b1.push_back(segs[i]), b1_rows += segs[i].w.n_rows, taken[size_t(i)] = true;
        if (b1_fp8_mode() == 2 && b1_rows < kB1MinRowsFp8 && b1.size() < 2) {
            b1.clear();
            std::fill(taken.begin(), taken.end(), false);
        }
        for (size_t b = 0; b < b1.size(); b += kMaxSegs)
            DSV4_TRY(linear_b1_multi(b1.data() + b, int(std::min<size_t>(kMaxSegs, b1.size() - b)), n, s));
    }
    for (int i = 0; i < n_segs; ++i) {
        if (taken[size_t(i)]) continue;
        const DevWeight w = DevWeight::from(segs[i].w);
        bool vec = false;
        switch (w.dtype) {
            case DType::f32:
                vec = can_vectorize<DType::f32>(w, segs[i].x, segs[i].ldx);
                break;
            case DType::bf16:
                vec = can_vectorize<DType::bf16>(w, segs[i].x, segs[i].ldx);
                break;
            case DType::f16:
                vec = can_vectorize<DType::f16>(w, segs[i].x, segs[i].ldx);
                break;
            case DType::f8_e4m3:
                vec = can_vectorize<DType::f8_e4m3>(w, segs[i].x, segs[i].ldx);
                break;
            default:
                break;
        }
        if (n < kGemmMinTokens && vec && w.n_rows > 0 && !use_mma(n, segs[i].w, segs[i].x, segs[i].ldx))
            by_format[w.dtype].push_back(i);
        else
            rest.push_back(i);
    }
    for (auto& [dt, idx] : by_format)
        for (size_t b = 0; b < idx.size(); b += kMaxSegs) {
            GemvSegs sg{};
            sg.n = int(std::min<size_t>(kMaxSegs, idx.size() - b));
            for (int k = 0; k < sg.n; ++k) {
                const LinearSeg& g = segs[idx[b + size_t(k)]];
                sg.w[k] = DevWeight::from(g.w), sg.x[k] = g.x, sg.y[k] = g.y, sg.ldx[k] = g.ldx,
                sg.ldy[k] = g.ldy;
            }
            switch (dt) {
                case DType::f32:
                    DSV4_TRY(launch_multi<DType::f32>(sg, n, s));
                    break;
                case DType::bf16:
                    DSV4_TRY(launch_multi<DType::bf16>(sg, n, s));
                    break;
                case DType::f16:
                    DSV4_TRY(launch_multi<DType::f16>(sg, n, s));
                    break;
                case DType::f8_e4m3:
                    DSV4_TRY(launch_multi<DType::f8_e4m3>(sg, n, s));
                    break;
                default:
                    return error("cuda::linear_multi: no multi-weight GEMV for {}", dtype_name(dt));
            }
        }
    for (int i : rest) DSV4_TRY(linear(segs[i].x, n, segs[i].ldx, segs[i].w, segs[i].y, segs[i].ldy, s));
    return Status::ok();
}

int64_t moe_max_chunks(int64_t n_pairs, int64_t E, int64_t rows_per_chunk) {
    // every chunk holds ≥ 1 pair; experts split at most once per rows_per_chunk pairs
    return std::max<int64_t>(1, std::min(n_pairs, (n_pairs + rows_per_chunk - 1) / rows_per_chunk + E));
}

Status moe_group(const int32_t* esel, int64_t n_pairs, int64_t E, int32_t* perm, int32_t* chunks,
                 int32_t* n_chunks, int32_t* scratch, cudaStream_t s, int rows_per_chunk) {
    if (rows_per_chunk < 1) return error("cuda::moe_group: rows_per_chunk = {}", rows_per_chunk);
    if (n_pairs <= kGroupParallelMaxPairs && E <= kGroupThreads) {
        launch_pdl(moe_group_parallel_kernel, 1, kGroupThreads, 0, s, esel, int(n_pairs), int(E),
                   rows_per_chunk, perm, chunks, n_chunks);
        DSV4_CUDA_LAUNCH_CHECK("moe_group_parallel_kernel");
        return Status::ok();
    }
    if (E <= kGroupLargeMaxExperts && n_pairs <= INT32_MAX) {
        launch_pdl(moe_group_large_kernel, 1, kGroupThreads, 0, s, esel, n_pairs, int(E), rows_per_chunk,
                   perm, chunks, n_chunks);
        DSV4_CUDA_LAUNCH_CHECK("moe_group_large_kernel");
        return Status::ok();
    }
    launch_pdl(moe_group_kernel, 1, 32, 0, s, esel, n_pairs, E, rows_per_chunk, perm, chunks, n_chunks,
               scratch);
    DSV4_CUDA_LAUNCH_CHECK("moe_group_kernel");
    return Status::ok();
}

Status linear_grouped(const float* x, int64_t n_pairs, int64_t ldx, int64_t x_div, const DevWeight* table,
                      const WeightRef& proto, const int32_t* perm, const int32_t* chunks,
                      const int32_t* n_chunks, int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s,
                      int64_t max_per_expert) {
    const DevWeight dp = DevWeight::from(proto);
    if (n_pairs == 0 || dp.n_rows == 0) return Status::ok();
    // The read-back of the chunk table synchronizes the stream: big (prefill) batches only, never under
    // graph capture.
    if (n_pairs >= kGroupedGemmMinPairs && known_dtype(dp.dtype) && dp.n_cols > 0 && fits_int(n_pairs) &&
        fits_int(dp.n_rows) && fits_int(dp.n_cols) && !capturing(s))
        return grouped_gemm_dispatch(x, n_pairs, ldx, x_div, table, dp, perm, chunks, n_chunks, max_chunks, y,
                                     ldy, s);
    const int64_t hint = max_per_expert > 0 ? max_per_expert : kLinearTok;
    if (use_b1(hint, proto, x, ldx))
        return linear_b1(x, n_pairs, ldx, x_div, dp, table, perm, chunks, n_chunks, max_chunks, y, ldy, s);
    if (use_mma(hint, proto, x, ldx))
        return linear_mma(x, n_pairs, ldx, x_div, dp, table, perm, chunks, n_chunks, max_chunks, y, ldy, s,
                          hint);
    return dispatch(x, n_pairs, ldx, x_div, dp, table, perm, chunks, n_chunks, max_chunks, y, ldy, s, hint);
}

Status linear_grouped_glu(const float* x, int64_t n_pairs, int64_t ldx, int64_t x_div,
                          const DevWeight* table1, const DevWeight* table3, const WeightRef& proto,
                          const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                          int64_t max_chunks, double limit, float* g, float* u, float* h, cudaStream_t s,
                          int64_t max_per_expert) {
    const int64_t I = proto.n_rows;
    if (n_pairs == 0 || I == 0) return Status::ok();
    if (max_per_expert == 1 && use_b1(1, proto, x, ldx)) {
        const DevWeight dp = DevWeight::from(proto);
        return linear_b1_glu(x, n_pairs, ldx, x_div, dp, dp, table1, table3, perm, chunks, n_chunks,
                             max_chunks, limit, h, I, s);
    }
    DSV4_TRY(linear_grouped(x, n_pairs, ldx, x_div, table1, proto, perm, chunks, n_chunks, max_chunks, g, I,
                            s, max_per_expert));
    DSV4_TRY(linear_grouped(x, n_pairs, ldx, x_div, table3, proto, perm, chunks, n_chunks, max_chunks, u, I,
                            s, max_per_expert));
    return swiglu_clamp(g, u, n_pairs, I, I, limit, h, s);
}

Status linear_glu(const float* x, int64_t n, int64_t ldx, const WeightRef& w1, const WeightRef& w3,
                  double limit, float* g, float* u, float* h, cudaStream_t s) {
    const int64_t I = w1.n_rows;
    if (n == 1 && w3.dtype == w1.dtype && w3.n_rows == I && w3.n_cols == w1.n_cols && use_b1(1, w1, x, ldx) &&
        use_b1(1, w3, x, ldx))
        return linear_b1_glu(x, 1, ldx, 1, DevWeight::from(w1), DevWeight::from(w3), nullptr, nullptr,
                             nullptr, nullptr, nullptr, 0, limit, h, I, s);
    const LinearSeg segs[2] = {{x, ldx, w1, g, I}, {x, ldx, w3, u, w3.n_rows}};
    DSV4_TRY(linear_multi(segs, 2, n, s));
    return swiglu_clamp(g, u, n, I, I, limit, h, s);
}

Status sgemm_f32(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t m, int64_t n, int64_t k,
                 float* C, int64_t ldc, cudaStream_t s) {
    if (m == 0 || n == 0) return Status::ok();
    DSV4_TRY_ASSIGN(GemmContext * c, gemm_context(s));
    std::lock_guard<std::mutex> lock(c->mu);
    DSV4_TRY(reserve(*c, s, 0, 0, 0));
    DSV4_TRY(bind(*c, s));
    return sgemm_tn(*c, m, n, k, A, lda, B, ldb, C, ldc);
}

}  // namespace dsv4::cuda
